/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The arena's allocator: see arena.h.  Everything it knows lives in the
 * root page, so a restored image continues allocating where the saved
 * server stopped.  The state is plain addresses (the arena never moves).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "arena.h"

#define SLAB_BYTES	(256UL << 10)
#define NSMALL_FINE	8		/* 16..128 in 16-byte steps */

struct free_run {
	uint64_t next;
	uint64_t pages;
};

_Static_assert(sizeof(struct arena_root) <= ARENA_PAGE, "the root is one page");

static int size_class(size_t n)
{
	int p;

	if (n <= 128)
		return n ? (int)((n + 15) / 16) - 1 : 0;
	p = 63 - __builtin_clzll(n - 1);	/* 2^p < n <= 2^(p+1) */
	return NSMALL_FINE + (p - 7) * 4 +
	       (int)((n - (1UL << p) + (1UL << (p - 2)) - 1) >> (p - 2)) - 1;
}

static size_t class_size(int c)
{
	int g, p;

	if (c < NSMALL_FINE)
		return 16 * (c + 1);
	g = (c - NSMALL_FINE) / 4;
	p = 7 + g;
	return (1UL << p) + (size_t)((c - NSMALL_FINE) % 4 + 1) * (1UL << (p - 2));
}

_Static_assert(ARENA_NCLASSES >= NSMALL_FINE + (15 - 7) * 4, "classes up to 32 KiB");

size_t arena_usable(size_t n)
{
	if (n <= ARENA_SMALL_MAX)
		return class_size(size_class(n));
	return (n + ARENA_PAGE - 1) & ~(ARENA_PAGE - 1);
}

static void *addr(uint64_t a)
{
	return (void *)(uintptr_t)a;
}

/* Map [base + mapped, + bytes): 0 or -errno. */
static int grow(struct arena *a, uint64_t bytes)
{
	struct arena_root *r = a->root;
	uint64_t g = bytes < ARENA_SEGMENT ? ARENA_SEGMENT : (bytes + ARENA_SEGMENT - 1) &
							      ~(ARENA_SEGMENT - 1);
	void *want = addr(r->base + r->mapped), *p;

	if (a->limit && r->mapped + g > a->limit) {
		if (r->mapped + bytes > a->limit)
			return -ENOMEM;
		g = (bytes + ARENA_PAGE - 1) & ~(ARENA_PAGE - 1);
	}
	p = mmap(want, g, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (p != want) {
		munmap(p, g);
		return -EEXIST;
	}
	r->mapped += g;
	a->grows++;
	return 0;
}

int arena_reserve(struct arena *a, uint64_t n)
{
	struct arena_root *r = a->root;

	if (r->brk + n <= r->mapped)
		return 0;
	return grow(a, r->brk + n - r->mapped);
}

/* Bytes from the end of what was carved (page-aligned when asked). */
static void *carve(struct arena *a, uint64_t n, bool page_aligned)
{
	struct arena_root *r = a->root;
	uint64_t at = r->brk;

	if (page_aligned)
		at = (at + ARENA_PAGE - 1) & ~(ARENA_PAGE - 1);
	if (at + n > r->mapped && grow(a, at + n - r->mapped))
		return NULL;
	r->brk = at + n;
	return addr(r->base + at);
}

static void *alloc_small(struct arena *a, size_t n)
{
	struct arena_root *r = a->root;
	int c = size_class(n);
	size_t sz = class_size(c);
	uint64_t obj = r->free_small[c];

	if (obj) {
		r->free_small[c] = *(uint64_t *)addr(obj);
	} else {
		if (r->slab_pos[c] + sz > r->slab_end[c]) {
			uint64_t slab = SLAB_BYTES > sz * 8 ? SLAB_BYTES : sz * 8;
			char *s = carve(a, slab, false);

			if (!s)
				return NULL;
			r->slab_pos[c] = (uintptr_t)s;
			r->slab_end[c] = (uintptr_t)s + slab;
		}
		obj = r->slab_pos[c];
		r->slab_pos[c] += sz;
	}
	r->used += sz;
	return addr(obj);
}

static void push_run(struct arena *a, uint64_t at, uint64_t pages)
{
	struct arena_root *r = a->root;
	int l = pages < ARENA_LARGE_LISTS - 1 ? (int)pages : ARENA_LARGE_LISTS - 1;
	struct free_run *f = addr(at);

	arena_touch(a, f, sizeof(*f));
	f->next = r->free_large[l];
	f->pages = pages;
	r->free_large[l] = at;
}

static void *alloc_large(struct arena *a, size_t n)
{
	struct arena_root *r = a->root;
	uint64_t pages = (n + ARENA_PAGE - 1) / ARENA_PAGE, *prev, at;
	void *p = NULL;

	if (pages < ARENA_LARGE_LISTS - 1 && r->free_large[pages]) {
		at = r->free_large[pages];
		r->free_large[pages] = ((struct free_run *)addr(at))->next;
		p = addr(at);
	} else {
		/* first fit among the big runs, the rest put back */
		for (prev = &r->free_large[ARENA_LARGE_LISTS - 1]; *prev;
		     prev = &((struct free_run *)addr(*prev))->next) {
			struct free_run *f = addr(*prev);

			if (f->pages < pages)
				continue;
			at = *prev;
			*prev = f->next;
			if (f->pages > pages)
				push_run(a, at + pages * ARENA_PAGE, f->pages - pages);
			p = addr(at);
			break;
		}
	}
	if (!p)
		p = carve(a, pages * ARENA_PAGE, true);
	if (p)
		r->used += pages * ARENA_PAGE;
	return p;
}

void *arena_alloc(struct arena *a, size_t n)
{
	if (!n)
		n = 1;
	return n <= ARENA_SMALL_MAX ? alloc_small(a, n) : alloc_large(a, n);
}

void arena_free(struct arena *a, void *p, size_t n)
{
	struct arena_root *r = a->root;

	if (!p)
		return;
	if (!n)
		n = 1;
	if (n <= ARENA_SMALL_MAX) {
		int c = size_class(n);

		arena_touch(a, p, sizeof(uint64_t));
		*(uint64_t *)p = r->free_small[c];
		r->free_small[c] = (uintptr_t)p;
		r->used -= class_size(c);
	} else {
		uint64_t pages = (n + ARENA_PAGE - 1) / ARENA_PAGE;

		push_run(a, (uintptr_t)p, pages);
		r->used -= pages * ARENA_PAGE;
	}
}

static void init_root(struct arena_root *r, uint64_t base, uint64_t mapped)
{
	memset(r, 0, sizeof(*r));
	r->magic = ARENA_MAGIC;
	r->base = base;
	r->mapped = mapped;
	r->brk = ARENA_PAGE;
	r->dict.rehash_idx = -1;
}

int arena_create(struct arena *a, uint64_t base, uint64_t initial, uint64_t limit)
{
	void *want, *p;

	if (!base)
		base = ARENA_DEFAULT_BASE;
	if (base % ARENA_PAGE)
		return -EINVAL;
	initial = initial < ARENA_SEGMENT ? ARENA_SEGMENT : (initial + ARENA_SEGMENT - 1) &
							     ~(ARENA_SEGMENT - 1);
	if (limit && initial > limit)
		initial = (limit + ARENA_PAGE - 1) & ~(ARENA_PAGE - 1);
	if (initial < 2 * ARENA_PAGE)
		return -EINVAL;
	want = addr(base);
	p = mmap(want, initial, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (p != want) {
		munmap(p, initial);
		return -EEXIST;
	}
	memset(a, 0, sizeof(*a));
	a->root = p;
	a->limit = limit;
	init_root(a->root, base, initial);
	return 0;
}

int arena_adopt(struct arena *a, void *base, uint64_t len, uint64_t limit)
{
	struct arena_root *r = base;

	if (r->magic != ARENA_MAGIC || r->base != (uintptr_t)base || r->mapped != len ||
	    r->brk > r->mapped || r->brk < ARENA_PAGE)
		return -EBADMSG;
	memset(a, 0, sizeof(*a));
	a->root = r;
	a->limit = limit;
	return 0;
}

void arena_destroy(struct arena *a)
{
	if (a->root)
		munmap(a->root, a->root->mapped);
	a->root = NULL;
}

void arena_reset(struct arena *a)
{
	struct arena_root *r = a->root;

	init_root(r, r->base, r->mapped);
}
