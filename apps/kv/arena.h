/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The arena: all of uffd-kv's data - the hash table, every key and value,
 * and the allocator's own state - in one run of anonymous memory at a fixed
 * address.
 *
 * That is what makes fork-less persistence simple.  A snapshot of
 * [base, base + mapped) is the whole database, and restoring the image at
 * the same address brings back every pointer as it was: no serialization,
 * no pointer fix-up, and a lazy restore can answer a GET before the rest of
 * the memory has arrived.  The arena grows by mapping the next segment
 * right after the last one (MAP_FIXED_NOREPLACE), so it stays one range.
 *
 * The first page is the root: a magic, the layout, the allocator's free
 * lists and the table's header.  Small objects come from size classes
 * (16-byte steps to 128, then four per power of two) carved from slabs;
 * large ones are runs of pages with free lists by page count.  Freed
 * memory is kept for reuse, never given back.
 */
#ifndef UFFD_KV_ARENA_H
#define UFFD_KV_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARENA_MAGIC		0x3130564b44464655ULL	/* "UFFDKV01" */
/* 32 TiB: far from the heap, libraries, stacks.  ThreadSanitizer keeps
 * that part of the address space for itself and lets a program map only
 * its own ranges: there, 256 GiB, in the low one (512 GiB). */
#if defined(__SANITIZE_THREAD__)
#define ARENA_DEFAULT_BASE	0x004000000000ULL
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ARENA_DEFAULT_BASE	0x004000000000ULL
#endif
#endif
#ifndef ARENA_DEFAULT_BASE
#define ARENA_DEFAULT_BASE	0x200000000000ULL
#endif
#define ARENA_SEGMENT		(64UL << 20)		/* grown by at least this */
#define ARENA_PAGE		4096UL

#define ARENA_SMALL_MAX		(32 * 1024)		/* larger: page runs */
#define ARENA_NCLASSES		40
#define ARENA_LARGE_LISTS	64			/* runs of 1..63 pages, then
							   one first-fit list */

/* The hash table's header (dict.c owns it; it lives in the root). */
struct dict_table {
	uint64_t buckets;		/* address of uint64_t[size] */
	uint64_t size;			/* power of 2, or 0 */
	uint64_t used;
};

struct dict {
	struct dict_table t[2];		/* t[1] while rehashing */
	int64_t rehash_idx;		/* -1: not rehashing */
	uint64_t seed;
};

struct arena_root {
	uint64_t magic;
	uint64_t base;			/* where it must live */
	uint64_t mapped;		/* bytes mapped from base */
	uint64_t brk;			/* bytes carved from base */
	uint64_t used;			/* bytes handed out (by class size) */
	uint64_t free_small[ARENA_NCLASSES];	/* heads, addresses */
	uint64_t slab_pos[ARENA_NCLASSES];	/* current slab: next object */
	uint64_t slab_end[ARENA_NCLASSES];
	uint64_t free_large[ARENA_LARGE_LISTS];
	struct dict dict;
};

struct arena {
	struct arena_root *root;
	uint64_t limit;			/* maxmemory: mapped may not pass it (0: none) */
	/* Growing while a save is being set up makes its image inconsistent:
	 * counted, so the save can tell and start again. */
	uint64_t grows;
	/*
	 * Called before the table writes arena memory (a value, an entry, a
	 * bucket, a chain link; not the root page): persistence announces the
	 * write to libuffd, which saves and un-protects the pages in this
	 * thread instead of taking a fault to another one.  NULL: nothing to
	 * announce.
	 */
	void (*touch)(void *arg, void *p, size_t n);
	void *touch_arg;
	/* A save is running: no rehashing, no table growth (they would write
	 * pages of every entry), unless the table is far too full. */
	bool no_resize;
};

static inline void arena_touch(struct arena *a, void *p, size_t n)
{
	if (a->touch)
		a->touch(a->touch_arg, p, n);
}

/*
 * Map a new, empty arena at base (0: the default) with initial bytes.
 * 0 or -errno (-EEXIST: something is mapped there).
 */
int arena_create(struct arena *a, uint64_t base, uint64_t initial, uint64_t limit);
/*
 * Adopt an arena already mapped at its base (a restored image): checks the
 * root.  0 or -EBADMSG.
 */
int arena_adopt(struct arena *a, void *base, uint64_t len, uint64_t limit);
/* Unmap it (tests). */
void arena_destroy(struct arena *a);

/* Memory for n bytes (n > 0), or NULL (the limit, or mmap failed). */
void *arena_alloc(struct arena *a, size_t n);
void arena_free(struct arena *a, void *p, size_t n);
/* The bytes really handed out for a request of n (its class). */
size_t arena_usable(size_t n);
/* Make sure at least n more bytes can be carved without growing. */
int arena_reserve(struct arena *a, uint64_t n);

/* Everything freed: an empty arena in the same mapping (FLUSHALL). */
void arena_reset(struct arena *a);

static inline uint64_t arena_base(const struct arena *a)
{
	return (uint64_t)(uintptr_t)a->root;
}

static inline uint64_t arena_mapped(const struct arena *a)
{
	return a->root->mapped;
}

#endif
