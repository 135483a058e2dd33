/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Eviction is access-aware, not FIFO: a hot set read every round survives
 * a stream of cold pages 16x the buffer.  FIFO would evict each hot page
 * every BUF_PAGES / COLD_PER_ROUND = 8 rounds: 16 extra reads per hot page
 * over the 128 rounds, 256 in all.  Here a hot page is read again only
 * when the touch that should have saved it was still on its way to the
 * pager as its eviction began (a busy machine): at most HOT extra reads in
 * all, and no cold page is read twice.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"

#define BUF_PAGES	64
#define HOT		16
#define COLD_PER_ROUND	8
#define NPAGES		(HOT + BUF_PAGES * 16)

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUF_PAGES * PAGE,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD,
		  .high_water = 99, .low_water = 98);
	struct t_store *ts = t_store_new(NPAGES * PAGE, 3);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	size_t cold = HOT, i;
	unsigned long extra = 0;
	char *map;

	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	while (cold < NPAGES) {
		for (i = 0; i < HOT; i++) {
			CHECK_EQ(*(volatile uint64_t *)(map + i * PAGE), t_word(i * PAGE, 3));
		}
		for (i = 0; i < COLD_PER_ROUND && cold < NPAGES; i++, cold++)
			CHECK_EQ(*(volatile uint64_t *)(map + cold * PAGE),
				 t_word(cold * PAGE, 3));
	}
	CHECK_OK(uffd_pager_stats(p, &st));
	for (i = 0; i < HOT; i++) {
		CHECK(t_reads(ts, i) >= 1);
		extra += t_reads(ts, i) - 1;
	}
	if (extra > HOT)
		FAIL("hot pages read %lu extra times from the store (hits %lu)",
		     extra, (unsigned long)st.hits);
	for (i = HOT; i < NPAGES; i++)
		CHECK_EQ(t_reads(ts, i), 1);
	CHECK_EQ(st.fills, t_store_reads(ts));
	CHECK(st.hits > 0);
	CHECK(st.resident_peak_bytes <= BUF_PAGES * PAGE);
	printf("hot pages: %lu extra reads (FIFO: 256); %lu hits\n", extra,
	       (unsigned long)st.hits);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_EQ(t_store_writes(ts), 0);
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return 0;
}
