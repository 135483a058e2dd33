// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode (uffd/pager.h) under a small buffer: two threads scan
 * their halves of a map in order (read-ahead windows read in their own
 * faults, groups read ahead by the pager's threads, the parked mark of
 * each group mapped back by a fault), two read random pages, and the main
 * thread meanwhile evicts random ranges and prefetches others with the
 * API - pages taken away and brought in under the faulting threads.
 * Every word read is exact, read-ahead ran, nothing passes the buffer,
 * and the pager's invariants hold after.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"

#define NPAGES		2048
#define BUFFER		(128 * PAGE)
#define SCANS		2		/* passes of each scanner */
#define TOUCHES		3000		/* pages each random reader reads */
#define SEED		45

struct worker {
	pthread_t thread;
	int n;
	const char *map;
	unsigned long bad;
};

static int running;	/* atomic: workers not done */

static void check_page(struct worker *w, size_t page)
{
	const uint64_t *pg = (const uint64_t *)(w->map + page * PAGE);
	size_t k;

	for (k = 0; k < PAGE / 8; k += 7)
		if (pg[k] != t_word(page * PAGE + k * 8, SEED))
			w->bad++;
}

static void *scan(void *arg)
{
	struct worker *w = arg;
	size_t half = NPAGES / 2, i;
	int pass;

	for (pass = 0; pass < SCANS; pass++)
		for (i = 0; i < half; i++)
			check_page(w, w->n * half + i);
	__atomic_fetch_sub(&running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *random_reads(void *arg)
{
	struct worker *w = arg;
	uint64_t rnd = 0x853c49e6748fea9bULL * (w->n + 1);
	int i;

	for (i = 0; i < TOUCHES; i++) {
		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		check_page(w, (rnd >> 33) % NPAGES);
	}
	__atomic_fetch_sub(&running, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .in_thread = true);
	struct t_store *ts = t_store_new(NPAGES * PAGE, SEED);
	struct uffd_pager_stats st;
	struct worker w[4];
	struct uffd_pager *p;
	uint64_t rnd = 77;
	long prefetched = 0, got;
	char why[256] = "";
	int i, ret, rounds = 0;
	char *map;

	t_require_in_thread();
	t_require(UFFD_FEAT_SIGBUS);
	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	__atomic_store_n(&running, 4, __ATOMIC_RELAXED);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ .n = i % 2, .map = map };
		CHECK_OK(-pthread_create(&w[i].thread, NULL, i < 2 ? scan : random_reads, &w[i]));
	}
	while (__atomic_load_n(&running, __ATOMIC_ACQUIRE)) {
		size_t at, n;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		at = (rnd >> 33) % NPAGES;
		n = 1 + (rnd >> 20) % 8;
		if (at + n > NPAGES)
			n = NPAGES - at;
		if (rounds++ % 2) {
			CHECK_OK(uffd_pager_evict(p, map + at * PAGE, n * PAGE));
		} else {
			struct uffd_pager_range r = { map + at * PAGE, n * PAGE };

			got = uffd_pager_prefetch(p, &r, 1, 0);
			CHECK(got >= 0 && got <= (long)n);
			prefetched += got;
		}
	}
	for (i = 0; i < 4; i++) {
		CHECK_OK(-pthread_join(w[i].thread, NULL));
		CHECK_EQ(w[i].bad, 0);
	}
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.read_ahead > 0);
	CHECK(st.evictions > 0);
	CHECK(st.hits > 0);		/* parked marks mapped back, at least */
	CHECK_EQ(st.read_errors, 0);
	CHECK(st.resident_peak_bytes <= BUFFER);
	ret = uffd__pager_check(p, why, sizeof(why));
	if (ret)
		FAIL("invariants: %s (%s)", why, t_errname(ret));
	printf("%d rounds of evict and prefetch (%ld pages prefetched), faults %llu hits %llu "
	       "fills %llu read-ahead %llu evictions %llu\n", rounds, prefetched,
	       (unsigned long long)st.faults, (unsigned long long)st.hits,
	       (unsigned long long)st.fills, (unsigned long long)st.read_ahead,
	       (unsigned long long)st.evictions);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return T_EXIT_PASS;
}
