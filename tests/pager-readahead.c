/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A sequential scan is detected and read in growing windows, in the
 * faulting thread and ahead of it in the background: each page is read
 * from the store exactly once, and far fewer faults than pages have to read
 * (a fault on a page the background is still reading waits for it: a hit).
 * A scattered scan reads one page per fault.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"

#define NPAGES	2048
#define BUFFER	(4UL << 20)

static struct uffd_pager_stats scan(bool sequential)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .read_ahead = 256 << 10);
	struct t_store *ts = t_store_new(NPAGES * PAGE, 5);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	size_t i;
	char *map;

	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	for (i = 0; i < NPAGES; i++) {
		size_t pg = sequential ? i : (i * 1031) % NPAGES;

		CHECK_EQ(*(volatile uint64_t *)(map + pg * PAGE + 8),
			 t_word(pg * PAGE + 8, 5));
	}
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK_OK(uffd_pager_unmap(p, map));
	for (i = 0; i < NPAGES; i++)
		if (t_reads(ts, i) != 1)
			FAIL("%s: page %zu read %u times", sequential ? "sequential" :
			     "scattered", i, t_reads(ts, i));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return st;
}

int main(void)
{
	struct uffd_pager_stats seq = scan(true), rnd = scan(false);

	CHECK_EQ(seq.fills, NPAGES);
	/* Faults that found their page filled meanwhile are hits. */
	CHECK(seq.faults - seq.hits < NPAGES / 16);
	CHECK(seq.read_ahead >= NPAGES - NPAGES / 16);
	CHECK_EQ(rnd.fills, NPAGES);
	CHECK_EQ(rnd.faults - rnd.hits, NPAGES);
	CHECK_EQ(rnd.read_ahead, 0);
	printf("sequential: %lu faults (%lu hits) for %d pages; scattered: %lu\n",
	       (unsigned long)seq.faults, (unsigned long)seq.hits, NPAGES,
	       (unsigned long)rnd.faults);
	return 0;
}
