/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A sequential stream, once its window is as large as it grows, is read
 * ahead in groups that the program never waits for: the first page of
 * each group is left in the shadow, and the touch that maps it back (a
 * hit, no store read) posts the next group.  Touching the pages one by one
 * and letting the pager settle after each, so the readers always finish,
 * the only faults that read the store are the ones that grow the window
 * (1, 4, 8, 16, 32, then 64 pages), and every page is read exactly once.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"

#define NPAGES		2048
#define BUFFER		(16UL << 20)	/* no eviction: the stream alone */
#define READ_AHEAD	(256UL << 10)	/* 64-page windows */
#define GROWING_FAULTS	6		/* windows of 1, 4, 8, 16, 32, 64 */

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .read_ahead = READ_AHEAD);
	struct t_store *ts = t_store_new(NPAGES * PAGE, 7);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	char why[256] = "";
	size_t i;
	char *map;
	int ret;

	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	for (i = 0; i < NPAGES; i++) {
		CHECK_EQ(*(volatile uint64_t *)(map + i * PAGE + 16), t_word(i * PAGE + 16, 7));
		/* Waits until no page is busy and no read-ahead is queued. */
		ret = uffd__pager_check(p, why, sizeof(why));
		if (ret)
			FAIL("page %zu: %s (%s)", i, why, t_errname(ret));
	}
	CHECK_OK(uffd_pager_stats(p, &st));
	printf("%lu faults, %lu hits, %lu pages read ahead\n", (unsigned long)st.faults,
	       (unsigned long)st.hits, (unsigned long)st.read_ahead);
	CHECK_EQ(st.faults - st.hits, GROWING_FAULTS);
	CHECK_EQ(st.fills, NPAGES);
	CHECK_OK(uffd_pager_unmap(p, map));
	for (i = 0; i < NPAGES; i++)
		if (t_reads(ts, i) != 1)
			FAIL("page %zu read %u times", i, t_reads(ts, i));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return 0;
}
