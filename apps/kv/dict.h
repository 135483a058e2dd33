/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The key space: a chained hash table in the arena, grown by incremental
 * rehashing as Redis does it (two tables; each operation moves a bucket,
 * and the event loop moves more when idle), so no single command pays for
 * moving millions of keys.
 *
 * An entry is one allocation: its chain link, the key's hash, the lengths,
 * then the key and the value bytes.  A SET that fits the entry's size
 * class overwrites the value in place, so a steady write load dirties the
 * pages of the values it writes and nothing else.
 */
#ifndef UFFD_KV_DICT_H
#define UFFD_KV_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct kv_entry {
	uint64_t next;		/* chain link (address, 0: end) */
	uint64_t hash;
	uint32_t klen;
	uint32_t vlen;
	char data[];		/* key, then value */
};

#define KV_MAX_VALUE	0xffffffffULL

static inline const char *kv_key(const struct kv_entry *e)
{
	return e->data;
}

static inline char *kv_value(struct kv_entry *e)
{
	return e->data + e->klen;
}

static inline size_t kv_entry_size(uint32_t klen, uint32_t vlen)
{
	return sizeof(struct kv_entry) + (size_t)klen + vlen;
}

void dict_init(struct arena *a);
uint64_t dict_size(const struct arena *a);
struct kv_entry *dict_find(struct arena *a, const char *key, size_t klen);
/* Set key to value: 0, -ENOMEM (the arena is full), -E2BIG. */
int dict_set(struct arena *a, const char *key, size_t klen, const char *val, size_t vlen);
/* 1 if the key was there (now gone), 0 if not. */
int dict_del(struct arena *a, const char *key, size_t klen);
/* Move up to n buckets to the new table; 1 if there is more to move. */
int dict_rehash(struct arena *a, int n);
/* Visit every entry (tests, checks): fn returns non-zero to stop. */
int dict_foreach(struct arena *a, int (*fn)(struct kv_entry *e, void *arg), void *arg);

#endif
