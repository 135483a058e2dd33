/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Data written through the pager reaches the store byte for byte, with a
 * buffer 16x smaller than the data: two threads read every page (checking
 * it), then rewrite words of half the pages at random while eviction runs,
 * and after unmap the store holds exactly the expected bytes.  The buffer
 * is never exceeded.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"

#define DATA	(16UL << 20)
#define BUFFER	(1UL << 20)
#define SEED	7

struct worker {
	char *map;
	size_t first, npages;
	unsigned rnd;
	unsigned long bad;
};

static uint64_t new_word(uint64_t off)
{
	return t_word(off, SEED + 100);
}

/* Pages this test rewrites: a fixed pseudo-random half. */
static bool rewritten(size_t page)
{
	return t_word(page, 99) & 1;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	size_t i, k;

	for (i = w->first; i < w->first + w->npages; i++) {
		uint64_t *pg = (uint64_t *)(w->map + i * PAGE);

		for (k = 0; k < PAGE / 8; k += 61)
			if (pg[k] != t_word(i * PAGE + k * 8, SEED))
				w->bad++;
	}
	/* Rewrite in a scattered order so pages come and go under pressure. */
	for (i = 0; i < w->npages; i++) {
		size_t page = w->first + (i * 7919) % w->npages;
		uint64_t *pg = (uint64_t *)(w->map + page * PAGE);

		if (!rewritten(page))
			continue;
		for (k = 0; k < PAGE / 8; k += 3)
			pg[k] = new_word(page * PAGE + k * 8);
	}
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .fillers = 2);
	struct t_store *ts = t_store_new(DATA, SEED);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	struct worker w[2];
	pthread_t th[2];
	size_t i, k, half = DATA / PAGE / 2;
	unsigned long bad = 0;
	char *map;

	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, DATA, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	for (i = 0; i < 2; i++) {
		w[i] = (struct worker){ .map = map, .first = i * half, .npages = half };
		CHECK_EQ(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		CHECK_EQ(pthread_join(th[i], NULL), 0);
		CHECK_EQ(w[i].bad, 0);
	}
	CHECK_OK(uffd_pager_stats(p, &st));
	if (st.resident_peak_bytes > BUFFER)
		FAIL("peak %lu > buffer %lu (fills %lu evictions %lu resident %lu deact %lu)", (unsigned long)st.resident_peak_bytes, BUFFER, (unsigned long)st.fills, (unsigned long)st.evictions, (unsigned long)st.resident_bytes, (unsigned long)st.deactivations);
	CHECK(st.evictions > 0);
	CHECK(st.writebacks > 0);
	CHECK_OK(uffd_pager_unmap(p, map));
	for (i = 0; i < DATA / PAGE; i++) {
		const uint64_t *pg = (const uint64_t *)(ts->data + i * PAGE);

		for (k = 0; k < PAGE / 8; k++) {
			uint64_t off = i * PAGE + k * 8;
			uint64_t want = rewritten(i) && k % 3 == 0 ? new_word(off)
								   : t_word(off, SEED);
			if (pg[k] != want)
				bad++;
		}
		/* Clean pages are never written back. */
		if (!rewritten(i))
			CHECK_EQ(t_writes(ts, i), 0);
	}
	CHECK_EQ(bad, 0);
	printf("fills %lu evictions %lu writebacks %lu deactivations %lu hits %lu\n",
	       (unsigned long)st.fills, (unsigned long)st.evictions,
	       (unsigned long)st.writebacks, (unsigned long)st.deactivations,
	       (unsigned long)st.hits);
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return 0;
}
