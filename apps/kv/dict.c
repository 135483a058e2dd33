/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hash table: see dict.h.  Chains are singly linked through the
 * entries; buckets are arrays of entry addresses allocated in the arena.
 */
#include <errno.h>
#include <string.h>

#include "dict.h"

#define DICT_INITIAL	16
#define EMPTY_VISITS	10	/* per bucket asked to move: empty ones skipped */

static void *addr(uint64_t a)
{
	return (void *)(uintptr_t)a;
}

/* A 64-bit hash of the key: 8 bytes at a time, multiply-xorshift mixing. */
static uint64_t hash_key(const char *k, size_t n, uint64_t seed)
{
	const uint64_t m = 0x9fb21c651e98df25ULL;
	uint64_t h = seed ^ (n * m);
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, k + i, 8);
		h = (h ^ (w * m)) * m;
		h ^= h >> 29;
	}
	if (i < n) {
		uint64_t w = 0;

		memcpy(&w, k + i, n - i);
		h = (h ^ (w * m)) * m;
		h ^= h >> 29;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

void dict_init(struct arena *a)
{
	struct dict *d = &a->root->dict;

	memset(d, 0, sizeof(*d));
	d->rehash_idx = -1;
	d->seed = 0x5eed0f0c0ffee123ULL;
}

uint64_t dict_size(const struct arena *a)
{
	const struct dict *d = &a->root->dict;

	return d->t[0].used + d->t[1].used;
}

static int table_alloc(struct arena *a, struct dict_table *t, uint64_t size)
{
	uint64_t *b = arena_alloc(a, size * sizeof(uint64_t));

	if (!b)
		return -ENOMEM;
	arena_touch(a, b, size * sizeof(uint64_t));
	memset(b, 0, size * sizeof(uint64_t));
	t->buckets = (uintptr_t)b;
	t->size = size;
	t->used = 0;
	return 0;
}

static void table_free(struct arena *a, struct dict_table *t)
{
	if (t->buckets)
		arena_free(a, addr(t->buckets), t->size * sizeof(uint64_t));
	memset(t, 0, sizeof(*t));
}

int dict_rehash(struct arena *a, int n)
{
	struct dict *d = &a->root->dict;
	int empty = n * EMPTY_VISITS;

	if (d->rehash_idx < 0)
		return 0;
	if (a->no_resize)
		return 1;
	while (n-- > 0 && d->t[0].used) {
		uint64_t *src = addr(d->t[0].buckets), *dst = addr(d->t[1].buckets), e;

		while (!src[d->rehash_idx]) {
			d->rehash_idx++;
			if (--empty == 0)
				return 1;
		}
		e = src[d->rehash_idx];
		while (e) {
			struct kv_entry *ent = addr(e);
			uint64_t next = ent->next, i = ent->hash & (d->t[1].size - 1);

			arena_touch(a, &ent->next, sizeof(ent->next));
			arena_touch(a, &dst[i], sizeof(dst[i]));
			ent->next = dst[i];
			dst[i] = e;
			d->t[0].used--;
			d->t[1].used++;
			e = next;
		}
		arena_touch(a, &src[d->rehash_idx], sizeof(src[0]));
		src[d->rehash_idx++] = 0;
	}
	if (d->t[0].used)
		return 1;
	table_free(a, &d->t[0]);
	d->t[0] = d->t[1];
	memset(&d->t[1], 0, sizeof(d->t[1]));
	d->rehash_idx = -1;
	return 0;
}

/* Start growing when the table is full; a failed allocation just waits. */
static void maybe_grow(struct arena *a)
{
	struct dict *d = &a->root->dict;

	if (d->rehash_idx >= 0)
		return;
	if (!d->t[0].size) {
		table_alloc(a, &d->t[0], DICT_INITIAL);
		return;
	}
	if (d->t[0].used < d->t[0].size)
		return;
	/* Redis' rule while a child saves: grow only when far too full */
	if (a->no_resize && d->t[0].used < 4 * d->t[0].size)
		return;
	if (table_alloc(a, &d->t[1], d->t[0].size * 2) == 0)
		d->rehash_idx = 0;
}

/* The link that points at the key's entry, and the table it is in. */
static uint64_t *find_link(struct arena *a, const char *key, size_t klen, uint64_t h,
			   int *table)
{
	struct dict *d = &a->root->dict;
	int t;

	for (t = 0; t < 2; t++) {
		uint64_t *link;

		if (!d->t[t].size)
			continue;
		link = (uint64_t *)addr(d->t[t].buckets) + (h & (d->t[t].size - 1));
		while (*link) {
			struct kv_entry *e = addr(*link);

			if (e->hash == h && e->klen == klen && !memcmp(e->data, key, klen)) {
				*table = t;
				return link;
			}
			link = &e->next;
		}
		if (d->rehash_idx < 0)
			break;
	}
	return NULL;
}

struct kv_entry *dict_find(struct arena *a, const char *key, size_t klen)
{
	uint64_t *link;
	int t;

	if (a->root->dict.rehash_idx >= 0)
		dict_rehash(a, 1);
	link = find_link(a, key, klen, hash_key(key, klen, a->root->dict.seed), &t);
	return link ? addr(*link) : NULL;
}

int dict_set(struct arena *a, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct dict *d = &a->root->dict;
	uint64_t h, *link;
	struct kv_entry *e, *old = NULL;
	struct dict_table *tab;
	uint64_t *b;
	size_t size;
	int t;

	if (klen > KV_MAX_VALUE || vlen > KV_MAX_VALUE)
		return -E2BIG;
	if (d->rehash_idx >= 0)
		dict_rehash(a, 1);
	h = hash_key(key, klen, d->seed);
	size = kv_entry_size(klen, vlen);
	link = find_link(a, key, klen, h, &t);
	if (link) {
		old = addr(*link);
		if (arena_usable(kv_entry_size(old->klen, old->vlen)) == arena_usable(size)) {
			/* the same size class: in place */
			arena_touch(a, old, size);
			memcpy(kv_value(old), val, vlen);
			old->vlen = vlen;
			return 0;
		}
	}
	e = arena_alloc(a, size);
	if (!e)
		return -ENOMEM;
	arena_touch(a, e, size);
	e->hash = h;
	e->klen = klen;
	e->vlen = vlen;
	memcpy(e->data, key, klen);
	memcpy(e->data + klen, val, vlen);
	if (old) {
		e->next = old->next;
		arena_touch(a, link, sizeof(*link));
		*link = (uintptr_t)e;
		arena_free(a, old, kv_entry_size(old->klen, old->vlen));
		return 0;
	}
	maybe_grow(a);
	if (!d->t[0].size) {
		arena_free(a, e, size);
		return -ENOMEM;
	}
	tab = d->rehash_idx >= 0 ? &d->t[1] : &d->t[0];
	b = (uint64_t *)addr(tab->buckets) + (h & (tab->size - 1));
	e->next = *b;
	arena_touch(a, b, sizeof(*b));
	*b = (uintptr_t)e;
	tab->used++;
	return 0;
}

int dict_del(struct arena *a, const char *key, size_t klen)
{
	struct dict *d = &a->root->dict;
	uint64_t *link;
	struct kv_entry *e;
	int t;

	if (d->rehash_idx >= 0)
		dict_rehash(a, 1);
	link = find_link(a, key, klen, hash_key(key, klen, d->seed), &t);
	if (!link)
		return 0;
	e = addr(*link);
	arena_touch(a, link, sizeof(*link));
	*link = e->next;
	d->t[t].used--;
	arena_free(a, e, kv_entry_size(e->klen, e->vlen));
	return 1;
}

int dict_foreach(struct arena *a, int (*fn)(struct kv_entry *e, void *arg), void *arg)
{
	struct dict *d = &a->root->dict;
	int t, ret;

	for (t = 0; t < 2; t++) {
		uint64_t i, *b = addr(d->t[t].buckets);

		for (i = 0; i < d->t[t].size; i++) {
			uint64_t c = b[i];

			while (c) {
				struct kv_entry *e = addr(c);

				c = e->next;
				if ((ret = fn(e, arg)))
					return ret;
			}
		}
	}
	return 0;
}
