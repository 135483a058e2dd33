// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode (uffd/pager.h): eight threads read random pages of a map
 * sixteen times the buffer, every word of every page they touch checked,
 * while eviction runs all along - in the evictor, and in the faulting
 * threads' own signal handlers when it is behind.  Each page read from
 * the store is read by the thread that faulted on it: the store records
 * the reader, and with read-ahead off every read is a fault's, so every
 * reader must be one of the eight (none a pager thread).  Nothing passes
 * the buffer, a page is read again only after it was evicted (reads =
 * faults - hits), and the pager's invariants hold after.  The pager's
 * configuration says it is in-thread.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"

#define NPAGES		1024
#define BUFFER		(64 * PAGE)
#define THREADS		8
#define TOUCHES		1500		/* pages each thread reads */
#define SEED		21

/* The test store, and who read from it. */
struct rec_store {
	struct uffd_store store;
	struct t_store *ts;
	pid_t tids[THREADS];		/* the readers allowed */
	int foreign_reads;		/* atomic: by any other thread */
};

static struct rec_store rs;

static ssize_t rec_read(void *store, void *buf, size_t len, uint64_t off)
{
	struct rec_store *s = store;
	pid_t me = gettid();
	int i;

	for (i = 0; i < THREADS && __atomic_load_n(&s->tids[i], __ATOMIC_RELAXED) != me; i++)
		;
	if (i == THREADS)
		__atomic_fetch_add(&s->foreign_reads, 1, __ATOMIC_RELAXED);
	return s->ts->store.ops->read(s->ts->store.data, buf, len, off);
}

static int64_t rec_size(void *store)
{
	struct rec_store *s = store;

	return s->ts->store.ops->size(s->ts->store.data);
}

static const struct uffd_store_ops rec_ops = { .read = rec_read, .size = rec_size };

struct worker {
	pthread_t thread;
	int n;
	const char *map;
	int *go;
	unsigned long bad;
};

static void *reader(void *arg)
{
	struct worker *w = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL * (w->n + 1);
	int i, k;

	__atomic_store_n(&rs.tids[w->n], gettid(), __ATOMIC_RELAXED);
	while (!__atomic_load_n(w->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (i = 0; i < TOUCHES; i++) {
		size_t page;
		const uint64_t *pg;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		page = rnd % NPAGES;
		pg = (const uint64_t *)(w->map + page * PAGE);
		for (k = 0; k < (int)(PAGE / 8); k++)
			if (pg[k] != t_word(page * PAGE + k * 8, SEED))
				w->bad++;
	}
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .in_thread = true,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	UFFD_OPTS(uffd_pager_opts, got);
	struct worker w[THREADS];
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	char why[256] = "";
	int i, go = 0, ret;
	char *map;

	t_require_in_thread();
	t_require(UFFD_FEAT_SIGBUS);
	rs.ts = t_store_new(NPAGES * PAGE, SEED);
	rs.store = (struct uffd_store){ .ops = &rec_ops, .data = &rs, .kind = "test" };
	p = t_pager_new(&o);
	CHECK_OK(uffd_pager_config(p, &got));
	CHECK(got.in_thread);
	map = uffd_pager_map(p, &rs.store, 0, NPAGES * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .n = i, .map = map, .go = &go };
		CHECK_OK(-pthread_create(&w[i].thread, NULL, reader, &w[i]));
	}
	for (i = 0; i < THREADS; i++)
		while (!__atomic_load_n(&rs.tids[i], __ATOMIC_RELAXED))
			sched_yield();
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (i = 0; i < THREADS; i++) {
		CHECK_OK(-pthread_join(w[i].thread, NULL));
		CHECK_EQ(w[i].bad, 0);
	}

	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK_EQ(__atomic_load_n(&rs.foreign_reads, __ATOMIC_RELAXED), 0);
	CHECK_EQ(t_store_reads(rs.ts), st.fills);
	CHECK_EQ(st.fills, st.faults - st.hits);
	CHECK_EQ(st.read_ahead, 0);
	CHECK(st.fills >= NPAGES / 2);		/* 12000 touches of 1024 pages */
	CHECK(st.evictions > 0);
	CHECK(st.resident_peak_bytes <= BUFFER);
	CHECK_EQ(st.read_errors, 0);
	ret = uffd__pager_check(p, why, sizeof(why));
	if (ret)
		FAIL("invariants: %s (%s)", why, t_errname(ret));
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(rs.ts);
	return T_EXIT_PASS;
}
