/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv's arena and hash table agree with a plain model through 300k
 * random operations on 50k keys: SETs of every size class and of page runs
 * (sizes changing, so entries move), DELs, lookups of absent keys, with
 * the table growing through incremental rehashes.  After each phase every
 * key's value is what the model says, DBSIZE and a walk of the table count
 * the live keys, and the bytes the allocator says are in use are exactly
 * the live entries' size classes plus the buckets.  FLUSHALL's reset
 * leaves an empty table that fills again, and the arena refuses to map
 * past its limit (NULL, the table intact).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/harness.h"
#include "../apps/kv/arena.h"
#include "../apps/kv/dict.h"

#define NKEYS	50000
#define NOPS	300000

struct model {
	uint32_t len;		/* 0: absent */
	uint32_t seed;
};

static struct model model[NKEYS];
static char buf[200000];

static size_t pick_size(unsigned r)
{
	switch (r % 8) {
	case 0: return r % 16 + 1;
	case 1: return r % 128 + 1;
	case 2: return r % 1024 + 1;
	case 3: return 1000 + r % 100;
	case 4: return r % 32768 + 1;
	case 5: return r % 4 ? r % 2048 + 1 : 32768 + r % 100000;	/* page runs */
	default: return r % 4096 + 1;
	}
}

static void make_value(char *v, size_t n, uint32_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i < n; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(v + i, &x, n - i < 8 ? n - i : 8);
	}
}

static int key_of(char *k, int i)
{
	return snprintf(k, 32, "key:%d", i);
}

static int count_entry(struct kv_entry *e, void *arg)
{
	(*(uint64_t *)arg)++;
	(*((uint64_t *)arg + 1)) += arena_usable(kv_entry_size(e->klen, e->vlen));
	return 0;
}

static void check_all(struct arena *a)
{
	uint64_t live = 0, walk[2] = { 0, 0 }, buckets;
	const struct dict *d = &a->root->dict;
	char k[32];
	int i;

	for (i = 0; i < NKEYS; i++) {
		int kl = key_of(k, i);
		struct kv_entry *e = dict_find(a, k, kl);

		if (!model[i].len) {
			if (e)
				FAIL("key %d: present, want absent", i);
			continue;
		}
		live++;
		if (!e)
			FAIL("key %d: absent, want %u bytes", i, model[i].len);
		make_value(buf, model[i].len, model[i].seed);
		if (e->vlen != model[i].len || memcmp(kv_value(e), buf, e->vlen))
			FAIL("key %d: %u bytes differ (want %u)", i, e->vlen, model[i].len);
	}
	CHECK_EQ(dict_size(a), live);
	dict_foreach(a, count_entry, walk);
	CHECK_EQ(walk[0], live);
	buckets = arena_usable(d->t[0].size * 8) * (d->t[0].size > 0) +
		  arena_usable(d->t[1].size * 8) * (d->t[1].size > 0);
	CHECK_EQ(a->root->used, walk[1] + buckets);
}

int main(void)
{
	struct arena a;
	char k[32];
	unsigned r = 1;
	int i, op, ret;

	CHECK_OK(arena_create(&a, 0, 0, 0));
	dict_init(&a);
	for (op = 0; op < NOPS; op++) {
		int kl;

		r = r * 1664525u + 1013904223u;
		i = (r >> 8) % NKEYS;
		kl = key_of(k, i);
		if (r % 10 < 7) {
			size_t n = pick_size(r >> 3);

			model[i].len = (uint32_t)n;
			model[i].seed = r;
			make_value(buf, n, r);
			CHECK_OK(dict_set(&a, k, kl, buf, n));
		} else if (r % 10 < 9) {
			CHECK_EQ(dict_del(&a, k, kl), model[i].len ? 1 : 0);
			model[i].len = 0;
		} else {
			struct kv_entry *e = dict_find(&a, k, kl);

			CHECK_EQ(e != NULL, model[i].len != 0);
		}
		if (op % 100000 == 99999)
			check_all(&a);
	}
	while (dict_rehash(&a, 1000))
		;
	CHECK_EQ(a.root->dict.rehash_idx, -1);
	check_all(&a);

	/* FLUSHALL: empty, then it fills again */
	arena_reset(&a);
	dict_init(&a);
	memset(model, 0, sizeof(model));
	check_all(&a);
	for (i = 0; i < 1000; i++) {
		int kl = key_of(k, i);

		model[i].len = 100;
		model[i].seed = i;
		make_value(buf, 100, i);
		CHECK_OK(dict_set(&a, k, kl, buf, 100));
	}
	check_all(&a);
	arena_destroy(&a);

	/* a limit: 128 MiB, then NULL and -ENOMEM, what is there stays */
	CHECK_OK(arena_create(&a, 0, 0, 128UL << 20));
	dict_init(&a);
	memset(model, 0, sizeof(model));
	for (i = 0; i < 2000; i++) {
		int kl = key_of(k, i);

		make_value(buf, 100000, i);
		ret = dict_set(&a, k, kl, buf, 100000);
		if (ret) {
			CHECK_EQ(ret, -ENOMEM);
			break;
		}
		model[i].len = 100000;
		model[i].seed = i;
	}
	CHECK(i > 1000 && i < 1400);
	CHECK(a.root->mapped <= 128UL << 20);
	CHECK(arena_alloc(&a, 1 << 20) == NULL);
	check_all(&a);
	arena_destroy(&a);
	return T_EXIT_PASS;
}
