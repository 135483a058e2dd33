/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv's periodic persistence (--checkpoint-every): live incremental
 * checkpoints of the arena, a base and deltas, while clients write.
 *
 * With writes going on, checkpoints follow every 100 ms: INFO counts them
 * and their chain; a checkpoint after a few SETs holds a few pages, not
 * the arena; after --checkpoint-chain 2 deltas a new generation starts with
 * a base, and once it is durable the older generation's files are gone;
 * BGSAVE and SAVE take the next checkpoint at once.  Growing the arena
 * (100 MiB of new values) starts a new generation too (its new pages were
 * not tracked).  After SAVE and SHUTDOWN NOSAVE the server restarts from
 * the newest checkpoint lazily, every key exactly as saved, and goes on
 * checkpointing in a new generation.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/kv-server.h"

#define NKEYS 5000

static void value_of(char *v, size_t n, int i, int round)
{
	size_t j;

	for (j = 0; j < n; j++)
		v[j] = 'a' + (char)((i * 7 + j * 3 + round) % 26);
}

static size_t size_of(int i)
{
	return 100 + (size_t)(i * 37) % 3000;
}

/* SET k:i for i in [from, to) with round's values, pipelined. */
static void set_range(struct t_kv *kv, int from, int to, int round)
{
	char key[32], v[4096];
	const char *argv[3] = { "SET", key, v };
	size_t lens[3] = { 3, 0, 0 };
	struct kvc_reply r;
	int i;

	for (i = from; i < to; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		lens[1] = strlen(key);
		lens[2] = size_of(i);
		value_of(v, lens[2], i, round);
		CHECK_OK(kvc_append(&kv->c, 3, argv, lens));
	}
	CHECK_OK(kvc_flush(&kv->c));
	for (i = from; i < to; i++) {
		CHECK_OK(kvc_read(&kv->c, &r));
		CHECK(r.type == KVC_STATUS);
	}
}

static void check_all(struct t_kv *kv, const int *round)
{
	char key[32], v[4096];
	const char *argv[2] = { "GET", key };
	struct kvc_reply r;
	int i;

	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		CHECK_OK(kvc_append(&kv->c, 2, argv, NULL));
	}
	CHECK_OK(kvc_flush(&kv->c));
	for (i = 0; i < NKEYS; i++) {
		CHECK_OK(kvc_read(&kv->c, &r));
		value_of(v, size_of(i), i, round[i]);
		if (r.type != KVC_BULK || r.len != size_of(i) || memcmp(r.str, v, r.len))
			FAIL("k:%d differs from its round %d value", i, round[i]);
	}
}

/*
 * Wait until a checkpoint holds every change, and the table is not being
 * rehashed (which writes entries without a command): the checkpoint count.
 */
static long long settle(struct t_kv *kv)
{
	int i;

	for (i = 0; t_kv_info(kv, "uffd_rehashing") || t_kv_info(kv, "rdb_bgsave_in_progress") ||
		    t_kv_info(kv, "rdb_changes_since_last_save") ||
		    t_kv_info(kv, "uffd_bgsave_scheduled"); i++) {
		CHECK(i < 20000);
		usleep(1000);
	}
	return t_kv_info(kv, "uffd_checkpoints");
}

/* The generations of checkpoint files in dir: the lowest and the highest. */
static void generations(const char *dir, unsigned *lo, unsigned *hi)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned g, s;

	*lo = ~0u;
	*hi = 0;
	CHECK(d);
	while ((e = readdir(d)))
		if (sscanf(e->d_name, "ckpt-%8u-%4u.uffd", &g, &s) == 2) {
			if (g < *lo)
				*lo = g;
			if (g > *hi)
				*hi = g;
		}
	closedir(d);
}

int main(void)
{
	const char *const args[] = { "--checkpoint-every", "100", "--checkpoint-chain", "2",
				     NULL };
	static int round[NKEYS];
	char dir[256], words[64], restored[256], *big;
	const char *argv[3];
	size_t lens[3];
	struct kvc_reply r;
	unsigned lo, hi;
	long long n, m, gen, chain, g, c;
	struct t_kv kv;
	int i, step, new_gens = 0;

	t_kv_mkdir(dir, sizeof(dir));
	t_kv_start(&kv, dir, args);
	set_range(&kv, 0, NKEYS, 0);
	CHECK(settle(&kv) >= 1);
	/* the rehash may have ended after the last instant: one more */
	t_kv_expect(&kv, "BGSAVE", "+Background saving started");
	n = settle(&kv);
	gen = t_kv_info(&kv, "uffd_checkpoint_generation");
	chain = t_kv_info(&kv, "uffd_checkpoint_chain");

	/*
	 * One checkpoint per step (3 SETs, or BGSAVE with nothing changed):
	 * a delta of a few pages while the chain has room (a base and 2
	 * deltas), then a new generation whose base, once durable, leaves
	 * no older file.
	 */
	for (step = 0; step < 6; step++) {
		if (step == 2) {
			t_kv_expect(&kv, "BGSAVE", "+Background saving started");
		} else {
			set_range(&kv, step * 3, step * 3 + 3, step + 1);
			for (i = step * 3; i < step * 3 + 3; i++)
				round[i] = step + 1;
		}
		m = settle(&kv);
		CHECK_EQ(m, n + 1);
		n = m;
		g = t_kv_info(&kv, "uffd_checkpoint_generation");
		c = t_kv_info(&kv, "uffd_checkpoint_chain");
		if (chain < 3) {
			CHECK_EQ(g, gen);
			CHECK_EQ(c, chain + 1);
			CHECK(t_kv_info(&kv, "uffd_last_checkpoint_pages") <= 16);
		} else {
			CHECK_EQ(g, gen + 1);
			CHECK_EQ(c, 1);
			generations(dir, &lo, &hi);
			CHECK_EQ(lo, g);
			CHECK_EQ(hi, g);
			new_gens++;
		}
		gen = g;
		chain = c;
	}
	CHECK(new_gens >= 1);

	/* the arena grows: a new generation */
	big = calloc(1, 1 << 20);
	CHECK(big);
	argv[0] = "SET";
	argv[1] = words;
	argv[2] = big;
	lens[0] = 3;
	lens[2] = 1 << 20;
	for (i = 0; i < 100; i++) {
		memset(big, 'A' + i % 26, 1 << 20);
		snprintf(words, sizeof(words), "big:%d", i);
		lens[1] = strlen(words);
		CHECK_OK(kvc_append(&kv.c, 3, argv, lens));
		CHECK_OK(kvc_flush(&kv.c));
		CHECK_OK(kvc_read(&kv.c, &r));
		CHECK(r.type == KVC_STATUS);
	}
	settle(&kv);
	CHECK(t_kv_info(&kv, "uffd_checkpoint_generation") > gen);

	/* SAVE, SHUTDOWN NOSAVE, restart from the newest checkpoint */
	set_range(&kv, 300, 400, 9);
	for (i = 300; i < 400; i++)
		round[i] = 9;
	t_kv_expect(&kv, "SAVE", "+OK");
	check_all(&kv, round);
	gen = t_kv_info(&kv, "uffd_checkpoint_generation");
	CHECK_EQ(kvc_cmdf(&kv.c, &r, "SHUTDOWN NOSAVE"), -ECONNRESET);
	CHECK_EQ(t_kv_wait_exit(&kv, 20000), 0);
	t_kv_start(&kv, dir, args);
	CHECK_OK(kvc_info_str(&kv.c, NULL, "uffd_restored_from", restored, sizeof(restored)));
	snprintf(words, sizeof(words), "/ckpt-%08lld-", gen);
	if (!strstr(restored, words))
		FAIL("restored from %s, not generation %lld", restored, gen);
	check_all(&kv, round);
	for (i = 0; i < 100; i++) {
		snprintf(words, sizeof(words), "GET big:%d", i);
		CHECK_OK(kvc_cmdf(&kv.c, &r, words));
		CHECK(r.type == KVC_BULK && r.len == (1 << 20) && r.str[0] == 'A' + i % 26 &&
		      r.str[(1 << 20) - 1] == 'A' + i % 26);
	}
	snprintf(words, sizeof(words), ":%d", NKEYS + 100);
	t_kv_expect(&kv, "DBSIZE", words);

	/* and it goes on, in a new generation */
	set_range(&kv, 0, 10, 10);
	for (i = 0; i < 10; i++)
		round[i] = 10;
	CHECK_EQ(settle(&kv), 1);
	CHECK_EQ(t_kv_info(&kv, "uffd_checkpoint_generation"), gen + 1);
	generations(dir, &lo, &hi);
	CHECK_EQ(lo, gen + 1);
	CHECK_EQ(hi, gen + 1);
	check_all(&kv, round);
	CHECK_EQ(t_kv_stop(&kv), 0);
	free(big);
	t_kv_rmdir(dir);
	return T_EXIT_PASS;
}
