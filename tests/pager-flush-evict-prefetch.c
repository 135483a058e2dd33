/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The calls a program steers the buffer with, on a map of 16 KiB pages:
 * - prefetch reads the ranges now and says how many pages it read; a
 *   pinned page survives pressure (read from the store once);
 * - flush writes exactly the dirty pages back and keeps them resident
 *   (reading them again reads nothing from the store, unless the evictor
 *   took one meanwhile);
 * - evict writes back and drops: the next touch reads the page again;
 * - a private map reads the store but never writes to it.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"

#define PS	(16 * 1024UL)
#define NP	64			/* pager pages */
#define SUB	(PS / PAGE)		/* store pages per pager page */

static unsigned reads_of(const struct t_store *ts, size_t pp)
{
	return t_reads(ts, pp * SUB);
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 8 * PS,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	struct t_store *ts = t_store_new(NP * PS, 21);
	struct uffd_pager_stats st, st2;
	struct uffd_pager *p;
	size_t i;
	char *map, *priv;

	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NP * PS, PROT_READ | PROT_WRITE, 0, PS);
	CHECK(map);

	/* prefetch and pin two pager pages */
	CHECK_EQ(uffd_pager_prefetch(p, &(struct uffd_pager_range){ map + PS, 2 * PS },
				     1, UFFD_PAGER_PIN), 2);
	CHECK_EQ(reads_of(ts, 1), 1);
	CHECK_EQ(reads_of(ts, 2), 1);
	/* prefetching resident pages reads nothing */
	CHECK_EQ(uffd_pager_prefetch(p, &(struct uffd_pager_range){ map + PS, PS }, 1, 0), 0);
	/* a fault fills a whole 16 KiB page with one read */
	CHECK_EQ(*(uint64_t *)(map + 5 * PS + PAGE), t_word(5 * PS + PAGE, 21));
	CHECK_EQ(t_reads(ts, 5 * SUB), 1);
	CHECK_EQ(t_reads(ts, 5 * SUB + 3), 1);

	/* pressure: stream the rest 3 times through an 8-page buffer */
	for (int round = 0; round < 3; round++)
		for (i = 8; i < NP; i++)
			CHECK_EQ(*(volatile uint64_t *)(map + i * PS), t_word(i * PS, 21));
	CHECK_EQ(reads_of(ts, 1), 1);
	CHECK_EQ(reads_of(ts, 2), 1);
	CHECK_EQ(*(uint64_t *)(map + 2 * PS + 8), t_word(2 * PS + 8, 21));
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.resident_peak_bytes <= 8 * PS);

	/* flush: exactly the dirty pages, which stay resident */
	map[1 * PS + 3] = 'a';			/* pinned page */
	map[9 * PS + PAGE] = 'b';		/* second 4 KiB of page 9 */
	memset(ts->writes, 0, NP * SUB * sizeof(unsigned));
	CHECK_OK(uffd_pager_stats(p, &st));
	i = reads_of(ts, 9);
	CHECK_OK(uffd_pager_flush(p, map, 0));
	CHECK_EQ(ts->data[1 * PS + 3], 'a');
	CHECK_EQ(ts->data[9 * PS + PAGE], 'b');
	CHECK_EQ(t_writes(ts, 1 * SUB), 1);
	CHECK_EQ(t_writes(ts, 9 * SUB + 3), 1);	/* the whole pager page */
	CHECK_EQ(t_store_writes(ts), 2 * SUB);
	/* Reading them reads nothing from the store: the pinned page never,
	 * page 9 unless the evictor (still bringing the 8-page buffer down
	 * after the streaming, under load) took it since the flush began. */
	CHECK_EQ(map[1 * PS + 3], 'a');
	CHECK_EQ(reads_of(ts, 1), 1);
	CHECK_EQ(map[9 * PS + PAGE], 'b');
	CHECK_OK(uffd_pager_stats(p, &st2));
	if (reads_of(ts, 9) != i && st2.evictions == st.evictions)
		FAIL("page 9 read again after the flush, and nothing was evicted");
	/* a second flush has nothing to write */
	CHECK_OK(uffd_pager_flush(p, map, 0));
	CHECK_EQ(t_store_writes(ts), 2 * SUB);

	/* evict: written back, dropped, read again on the next touch */
	map[9 * PS] = 'c';
	i = reads_of(ts, 9);
	CHECK_OK(uffd_pager_evict(p, map + 9 * PS, PS));
	CHECK_EQ(ts->data[9 * PS], 'c');
	CHECK_EQ(map[9 * PS], 'c');
	/* One read: the touch's, or a stale fault's from before the evict
	 * the pager served meanwhile (then the touch found it resident). */
	CHECK_EQ(reads_of(ts, 9), i + 1);
	CHECK_OK(uffd_pager_unmap(p, map));

	/* a private map never writes */
	memset(ts->writes, 0, NP * SUB * sizeof(unsigned));
	priv = uffd_pager_map(p, &ts->store, PS, 16 * PS, PROT_READ | PROT_WRITE,
			      UFFD_PAGER_PRIVATE, PS);
	CHECK(priv);
	CHECK(!memcmp(priv, ts->data + PS, 16 * PS));	/* offset honoured */
	memset(priv, 'z', 16 * PS);
	CHECK_OK(uffd_pager_flush(p, priv, 0));
	CHECK_EQ(priv[15 * PS], 'z');
	CHECK_OK(uffd_pager_unmap(p, priv));
	CHECK_EQ(t_store_writes(ts), 0);
	CHECK_EQ(ts->data[PS + 3], 'a');
	CHECK_EQ(*(uint64_t *)(ts->data + 2 * PS), t_word(2 * PS, 21));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return 0;
}
