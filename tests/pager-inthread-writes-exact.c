// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode (uffd/pager.h): four threads read and write words of a
 * writable map eight times the buffer, each thread its own pages, while
 * dirty pages are evicted and written back all along (first writes are
 * write-protect faults marked dirty in the writing thread).  Every word
 * read is the last one written there, or the store's; after a flush the
 * store holds exactly every word written and the original elsewhere,
 * pages never written were never written back, reads through the map
 * still agree, and unmap then writes nothing more.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"

#define NPAGES		512
#define WORDS		(PAGE / 8)
#define BUFFER		(64 * PAGE)
#define THREADS		4
#define STEPS		6000		/* words each thread reads and writes */
#define SEED		33

static uint64_t *model;			/* what each word should hold */

/* A third of the pages are only ever read. */
static bool writable(size_t page)
{
	return page % 3 != 0;
}

struct worker {
	pthread_t thread;
	int n;
	uint64_t *map;
	unsigned long bad;
};

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t rnd = 0x2545f4914f6cdd1dULL * (w->n + 1);
	int i;

	for (i = 0; i < STEPS; i++) {
		/* One of this thread's pages (page % THREADS == n). */
		size_t page = next(&rnd) % (NPAGES / THREADS) * THREADS + w->n;
		size_t k = next(&rnd) % WORDS, at = page * WORDS + k;

		if (w->map[at] != model[at])
			w->bad++;
		/* and a word of it at the other end */
		if (w->map[page * WORDS + WORDS - 1 - k] != model[page * WORDS + WORDS - 1 - k])
			w->bad++;
		if (!writable(page))
			continue;
		model[at] = next(&rnd);
		w->map[at] = model[at];
	}
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .in_thread = true);
	struct t_store *ts = t_store_new(NPAGES * PAGE, SEED);
	struct uffd_pager_stats st;
	struct worker w[THREADS];
	unsigned long writes;
	struct uffd_pager *p;
	char why[256] = "";
	size_t i, k;
	uint64_t *map;
	int ret;

	t_require_in_thread();
	t_require(UFFD_FEAT_SIGBUS);
	model = malloc(NPAGES * PAGE);
	CHECK(model);
	for (i = 0; i < NPAGES * WORDS; i++)
		model[i] = t_word(i * 8, SEED);
	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .n = (int)i, .map = map };
		CHECK_OK(-pthread_create(&w[i].thread, NULL, work, &w[i]));
	}
	for (i = 0; i < THREADS; i++) {
		CHECK_OK(-pthread_join(w[i].thread, NULL));
		CHECK_EQ(w[i].bad, 0);
	}
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.wp_faults > 0);
	CHECK(st.evictions > 0);
	CHECK(st.writebacks > 0);	/* by eviction, before any flush */
	CHECK(st.resident_peak_bytes <= BUFFER);

	CHECK_OK(uffd_pager_flush(p, map, 0));
	for (i = 0; i < NPAGES; i++) {
		for (k = 0; k < WORDS; k++)
			if (((uint64_t *)ts->data)[i * WORDS + k] != model[i * WORDS + k])
				FAIL("page %zu word %zu: the store has %#llx, want %#llx", i, k,
				     (unsigned long long)((uint64_t *)ts->data)[i * WORDS + k],
				     (unsigned long long)model[i * WORDS + k]);
		if (!writable(i))
			CHECK_EQ(t_writes(ts, i), 0);
	}
	t_check_bytes("the map after flush", map, model, NPAGES * PAGE);
	ret = uffd__pager_check(p, why, sizeof(why));
	if (ret)
		FAIL("invariants: %s (%s)", why, t_errname(ret));
	writes = t_store_writes(ts);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_EQ(t_store_writes(ts), writes);
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	free(model);
	return T_EXIT_PASS;
}
