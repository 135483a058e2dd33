/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv restarts from its BGSAVE image with every key exactly as it was
 * at the save's instant, and answers before the image is all in.
 *
 * The dataset has small and large values (1 byte to 2 MiB: every size
 * class and page runs), overwrites that changed size, deleted keys and
 * counters.  BGSAVE is sent while a second client writes keys w:0, w:1,
 * ... in order, pipelined, for as long as the save runs: the instant falls
 * between two of its commands, so after the restart the w: keys present
 * are exactly a prefix.  INFO reports the save (status ok, one save, the
 * pause) and LASTSAVE moves.  Writes after the save (a new key, a DEL, an
 * overwrite) must be absent after SHUTDOWN NOSAVE and the restart.
 *
 * The restart maps the image lazily: the first GET, pipelined with INFO,
 * must be answered with its value while INFO still says loading:1 (the
 * prefetch of ~200 MiB is still streaming).  Then every key is compared,
 * DBSIZE too, and the restarted server saves again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/kv-server.h"

#define NKEYS		20000
#define NBIG		96
#define BIG_BYTES	(2 << 20)
#define NCOUNTERS	500
#define BATCH		500

static size_t key_size(int i, int version)
{
	size_t n = ((unsigned)i * 2654435761u + version * 977u) % 3000 + 1;

	if (i % 97 == 0)
		n += 40000;		/* past the small classes: page runs */
	return n;
}

static bool deleted(int i)
{
	return i % 13 == 0;
}

static bool overwritten(int i)
{
	return i % 11 == 0;
}

static void fill_value(char *v, size_t n, int i, int version)
{
	uint32_t x = (uint32_t)i * 2246822519u + (uint32_t)version * 3266489917u + 1;
	size_t j;

	for (j = 0; j < n; j++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		v[j] = (char)x;
	}
}

static void set_raw(struct kvc *c, const char *key, const char *v, size_t n)
{
	const char *argv[3] = { "SET", key, v };
	size_t lens[3] = { 3, strlen(key), n };

	CHECK_OK(kvc_append(c, 3, argv, lens));
}

static void expect_ok_replies(struct kvc *c, int n)
{
	struct kvc_reply r;
	int i;

	CHECK_OK(kvc_flush(c));
	for (i = 0; i < n; i++) {
		CHECK_OK(kvc_read(c, &r));
		if (r.type != KVC_STATUS && r.type != KVC_INT)
			FAIL("reply %d of a batch: type %c %.*s", i, r.type, (int)r.len, r.str);
	}
}

static void load(struct kvc *c, char *v)
{
	char key[32];
	const char *incr[2] = { "INCR", key };
	int i, k, n = 0;

	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		fill_value(v, key_size(i, 0), i, 0);
		set_raw(c, key, v, key_size(i, 0));
		if (++n == BATCH) {
			expect_ok_replies(c, n);
			n = 0;
		}
	}
	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		if (overwritten(i)) {
			fill_value(v, key_size(i, 1), i, 1);
			set_raw(c, key, v, key_size(i, 1));
			n++;
		}
		if (deleted(i)) {
			const char *del[2] = { "DEL", key };

			CHECK_OK(kvc_append(c, 2, del, NULL));
			n++;
		}
		if (n >= BATCH) {
			expect_ok_replies(c, n);
			n = 0;
		}
	}
	for (i = 0; i < NCOUNTERS; i++) {
		snprintf(key, sizeof(key), "c:%d", i);
		for (k = 0; k < i % 7 + 1; k++) {
			CHECK_OK(kvc_append(c, 2, incr, NULL));
			n++;
		}
	}
	expect_ok_replies(c, n);
	for (i = 0; i < NBIG; i++) {
		snprintf(key, sizeof(key), "big:%d", i);
		fill_value(v, BIG_BYTES, i, 7);
		set_raw(c, key, v, BIG_BYTES);
		expect_ok_replies(c, 1);
	}
}

/* The w: writer: w:seq = seq, in order, 32 at a time, until told to stop. */
struct writer {
	pthread_t thread;
	int port;
	int stop;		/* atomic */
	long written;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char key[32], val[32];
	struct kvc c;
	int k;

	CHECK_OK(kvc_connect(&c, NULL, w->port, 20000));
	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		for (k = 0; k < 32; k++) {
			snprintf(key, sizeof(key), "w:%ld", w->written + k);
			snprintf(val, sizeof(val), "%ld", w->written + k);
			set_raw(&c, key, val, strlen(val));
		}
		expect_ok_replies(&c, 32);
		__atomic_add_fetch(&w->written, 32, __ATOMIC_RELAXED);
	}
	kvc_close(&c);
	return NULL;
}

/* GET key: the reply must be the value (or nil when want is NULL). */
static void check_value(struct kvc_reply *r, const char *key, const char *want, size_t n)
{
	if (!want) {
		if (r->type != KVC_NIL)
			FAIL("%s: present (%zu bytes), want absent", key, r->len);
		return;
	}
	if (r->type != KVC_BULK)
		FAIL("%s: reply type %c, want a value", key, r->type);
	if (r->len != n || memcmp(r->str, want, n))
		FAIL("%s: %zu bytes differ from the %zu saved", key, r->len, n);
}

static void get(struct kvc *c, const char *key, struct kvc_reply *r)
{
	const char *argv[2] = { "GET", key };

	CHECK_OK(kvc_append(c, 2, argv, NULL));
	CHECK_OK(kvc_flush(c));
	CHECK_OK(kvc_read(c, r));
}

/*
 * GET fmt(i) for i in [0, n), pipelined: check(i, reply) for each.  The
 * value to compare with is made by check (into v).
 */
static void get_all(struct kvc *c, const char *fmt, long n, char *v,
		    void (*check)(long i, struct kvc_reply *r, char *v))
{
	char key[32];
	const char *argv[2] = { "GET", key };
	struct kvc_reply r;
	long i, j;

	for (i = 0; i < n; i += BATCH) {
		long m = n - i < BATCH ? n - i : BATCH;

		for (j = 0; j < m; j++) {
			snprintf(key, sizeof(key), fmt, i + j);
			CHECK_OK(kvc_append(c, 2, argv, NULL));
		}
		CHECK_OK(kvc_flush(c));
		for (j = 0; j < m; j++) {
			CHECK_OK(kvc_read(c, &r));
			check(i + j, &r, v);
		}
	}
}

static void check_k(long i, struct kvc_reply *r, char *v)
{
	int version = overwritten(i) ? 1 : 0;
	char key[32];

	snprintf(key, sizeof(key), "k:%ld", i);
	if (deleted(i)) {
		check_value(r, key, NULL, 0);
		return;
	}
	fill_value(v, key_size(i, version), i, version);
	check_value(r, key, v, key_size(i, version));
}

static void check_c(long i, struct kvc_reply *r, char *v)
{
	char key[32];

	snprintf(key, sizeof(key), "c:%ld", i);
	snprintf(v, 32, "%ld", i % 7 + 1);
	check_value(r, key, v, strlen(v));
}

static void check_big(long i, struct kvc_reply *r, char *v)
{
	char key[32];

	snprintf(key, sizeof(key), "big:%ld", i);
	fill_value(v, BIG_BYTES, i, 7);
	check_value(r, key, v, BIG_BYTES);
}

/* The w: keys: a prefix present (counted), the rest absent. */
static long w_prefix, w_present;

static void check_w(long i, struct kvc_reply *r, char *v)
{
	char key[32];

	snprintf(key, sizeof(key), "w:%ld", i);
	if (r->type == KVC_NIL) {
		if (w_prefix < 0)
			w_prefix = i;
		return;
	}
	if (w_prefix >= 0)
		FAIL("%s is back but w:%ld is not: not one instant", key, w_prefix);
	snprintf(v, 32, "%ld", i);
	check_value(r, key, v, strlen(v));
	w_present++;
}

static void verify(struct kvc *c, char *v)
{
	get_all(c, "k:%ld", NKEYS, v, check_k);
	get_all(c, "c:%ld", NCOUNTERS, v, check_c);
	get_all(c, "big:%ld", NBIG, v, check_big);
}

static long long expected_keys(long prefix)
{
	long long n = NCOUNTERS + NBIG + prefix;
	int i;

	for (i = 0; i < NKEYS; i++)
		n += !deleted(i);
	return n;
}

int main(void)
{
	char dir[256], *v, info[2048];
	struct writer w = { 0 };
	struct kvc_reply r;
	struct t_kv kv;
	long long before, last, loading;
	long prefix, i;
	const char *first[2] = { "GET", "k:3" };
	const char *inf[2] = { "INFO", "persistence" };

	v = malloc(BIG_BYTES);
	CHECK(v);
	t_kv_mkdir(dir, sizeof(dir));
	t_kv_start(&kv, dir, NULL);
	load(&kv.c, v);
	before = time(NULL);
	sleep(1);		/* LASTSAVE counts seconds */

	/* BGSAVE under the writer */
	w.port = kv.port;
	CHECK_OK(-pthread_create(&w.thread, NULL, writer_main, &w));
	while (__atomic_load_n(&w.written, __ATOMIC_RELAXED) < 1000)
		usleep(1000);
	t_kv_expect(&kv, "BGSAVE", "+Background saving started");
	for (i = 0; t_kv_info(&kv, "rdb_bgsave_in_progress"); i++) {
		CHECK(i < 60000);
		usleep(1000);
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
	pthread_join(w.thread, NULL);
	CHECK(kvc_info_str(&kv.c, NULL, "rdb_last_bgsave_status", info, sizeof(info)) == 0);
	if (strcmp(info, "ok"))
		FAIL("rdb_last_bgsave_status:%s", info);
	CHECK_EQ(t_kv_info(&kv, "rdb_saves"), 1);
	t_kv_info(&kv, "uffd_last_bgsave_pause_usec");
	CHECK(kvc_cmdf(&kv.c, &r, "LASTSAVE") == 0 && r.type == KVC_INT);
	last = r.integer;
	CHECK(last > before);

	/* after the instant: none of this may come back */
	t_kv_expect(&kv, "SET post:1 x", "+OK");
	t_kv_expect(&kv, "DEL k:1", ":1");
	t_kv_expect(&kv, "SET k:2 changed", "+OK");
	CHECK_EQ(kvc_cmdf(&kv.c, &r, "SHUTDOWN NOSAVE"), -ECONNRESET);	/* no reply */
	CHECK_EQ(t_kv_wait_exit(&kv, 20000), 0);

	/* the restart: the first GET is answered while the image streams in */
	t_kv_start(&kv, dir, NULL);
	CHECK_OK(kvc_append(&kv.c, 2, first, NULL));
	CHECK_OK(kvc_append(&kv.c, 2, inf, NULL));
	CHECK_OK(kvc_flush(&kv.c));
	CHECK_OK(kvc_read(&kv.c, &r));
	fill_value(v, key_size(3, 0), 3, 0);
	check_value(&r, "k:3", v, key_size(3, 0));
	CHECK_OK(kvc_read(&kv.c, &r));
	CHECK(r.type == KVC_BULK);
	if (!memmem(r.str, r.len, "\nloading:1\r", 11) && !memmem(r.str, r.len, "loading:1\r", 10))
		FAIL("the first GET came after the restore was done: %.*s", (int)r.len, r.str);
	for (i = 0; (loading = t_kv_info(&kv, "loading")); i++) {
		CHECK(i < 60000);
		usleep(1000);
	}
	CHECK(t_kv_info(&kv, "uffd_restore_pages_prefetched") > 0);

	/* every key as it was at the instant; of w:, exactly a prefix */
	w_prefix = -1;
	get_all(&kv.c, "w:%ld", w.written + 32, v, check_w);
	prefix = w_present;
	CHECK(prefix >= 1000);		/* all that was written before BGSAVE */
	verify(&kv.c, v);
	get(&kv.c, "post:1", &r);
	check_value(&r, "post:1", NULL, 0);
	snprintf(info, sizeof(info), ":%lld", expected_keys(prefix));
	t_kv_expect(&kv, "DBSIZE", info);

	/* and it saves again */
	t_kv_expect(&kv, "SET after 1", "+OK");
	t_kv_expect(&kv, "SAVE", "+OK");
	CHECK_EQ(t_kv_info(&kv, "rdb_saves"), 1);
	CHECK_EQ(t_kv_stop(&kv), 0);
	t_kv_rmdir(dir);
	free(v);
	return T_EXIT_PASS;
}
