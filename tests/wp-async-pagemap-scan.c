/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dirty tracking with UFFD_FEAT_WP_ASYNC and PAGEMAP_SCAN: after the whole
 * range is write-protected, uffd_pagemap_written() reports exactly the pages
 * written since, as merged runs; with rearm it protects them again so the
 * next collect starts from nothing.  No fault message is ever queued.  The
 * walk honours max_pages and a full output vector, and walk_end says where
 * it stopped.
 *
 * Kernel behaviour libuffd relies on:
 *  - WP_ASYNC turns on WP_UNPOPULATED: protecting never-touched anonymous
 *    pages installs markers, so the first write to them is tracked too;
 *  - the kernel resolves write-protect faults itself (no message), including
 *    a write it makes on the program's behalf (read(2) from a pipe);
 *  - reads do not count as writes;
 *  - PAGEMAP_SCAN with PM_SCAN_WP_MATCHING reports and re-protects in one
 *    walk; with max_pages it stops after that many pages, or when the
 *    output vector is full, and walk_end is the first page not reported.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NR_PAGES	64
#define MAX_RANGES	16

static char *area;
static int pagemap_fd;

static uint64_t page_addr(unsigned page)
{
	return (uintptr_t)area + (uint64_t)page * PAGE;
}

static void write_page(unsigned page, char value)
{
	((volatile char *)area)[page * PAGE + 17] = value;
}

/* Collect [area, area + NR_PAGES) and expect exactly want[] (page numbers). */
static void expect_written(bool rearm, const unsigned (*want)[2], int nr_want,
			   int line)
{
	struct uffd_range r[MAX_RANGES];
	uint64_t walk_end = 0;
	int n, i;

	n = uffd_pagemap_written(pagemap_fd, area, NR_PAGES * PAGE, rearm, r,
				 MAX_RANGES, &walk_end);
	if (n != nr_want) {
		for (i = 0; i < n; i++)
			fprintf(stderr, "  got [%" PRIu64 ", %" PRIu64 ")\n",
				(r[i].start - (uintptr_t)area) / PAGE,
				(r[i].end - (uintptr_t)area) / PAGE);
		FAIL("line %d: %d written ranges (%s), want %d", line, n,
		     t_errname(n), nr_want);
	}
	for (i = 0; i < n; i++) {
		if (r[i].start != page_addr(want[i][0]) ||
		    r[i].end != page_addr(want[i][1]) ||
		    r[i].categories != UFFD_PAGE_WRITTEN)
			FAIL("line %d: range %d is [%" PRIu64 ", %" PRIu64
			     ") categories %#" PRIx64 ", want [%u, %u) WRITTEN",
			     line, i, (r[i].start - (uintptr_t)area) / PAGE,
			     (r[i].end - (uintptr_t)area) / PAGE,
			     r[i].categories, want[i][0], want[i][1]);
	}
	if (walk_end != page_addr(NR_PAGES))
		FAIL("line %d: walk_end at page %" PRId64 ", want %d", line,
		     (int64_t)(walk_end - (uintptr_t)area) / (int64_t)PAGE,
		     NR_PAGES);
}

#define EXPECT_WRITTEN(rearm, ...) do {					\
	static const unsigned _want[][2] = { __VA_ARGS__ };		\
	expect_written(rearm, _want, sizeof(_want) / sizeof(_want[0]),	\
		       __LINE__);					\
} while (0)
#define EXPECT_NONE_WRITTEN(rearm) expect_written(rearm, NULL, 0, __LINE__)

static void write_chosen_pages(void)
{
	write_page(3, 'a');
	write_page(10, 'b');
	write_page(11, 'c');
	write_page(12, 'd');
	write_page(40, 'e');
}

/* max_pages and a full vector both stop the walk; walk_end says where. */
static void check_early_stop(void)
{
	struct uffd_range r[MAX_RANGES];
	struct uffd_scan s = {
		.addr = area, .len = NR_PAGES * PAGE,
		.category_mask = UFFD_PAGE_WRITTEN,
		.return_mask = UFFD_PAGE_WRITTEN,
		.max_pages = 2,
	};

	/* Pages 3 and 10 are the first two written: the walk ends at 11. */
	CHECK_EQ(uffd_pagemap_scan(pagemap_fd, &s, r, MAX_RANGES), 2);
	CHECK_EQ(r[0].start, page_addr(3));
	CHECK_EQ(r[0].end, page_addr(4));
	CHECK_EQ(r[1].start, page_addr(10));
	CHECK_EQ(r[1].end, page_addr(11));
	CHECK_EQ(s.walk_end, page_addr(11));

	/* Resuming at walk_end finds the rest and walks to the end. */
	s.len = page_addr(NR_PAGES) - s.walk_end;
	s.addr = (void *)(uintptr_t)s.walk_end;
	s.max_pages = 0;
	CHECK_EQ(uffd_pagemap_scan(pagemap_fd, &s, r, MAX_RANGES), 2);
	CHECK_EQ(r[0].start, page_addr(11));
	CHECK_EQ(r[0].end, page_addr(13));
	CHECK_EQ(r[1].start, page_addr(40));
	CHECK_EQ(r[1].end, page_addr(41));
	CHECK_EQ(s.walk_end, page_addr(NR_PAGES));

	/* A one-entry vector fills at the first run: the walk ends at 10. */
	s.addr = area;
	s.len = NR_PAGES * PAGE;
	CHECK_EQ(uffd_pagemap_scan(pagemap_fd, &s, r, 1), 1);
	CHECK_EQ(r[0].start, page_addr(3));
	CHECK_EQ(r[0].end, page_addr(4));
	CHECK_EQ(s.walk_end, page_addr(10));
}

int main(void)
{
	struct uffd_range r[MAX_RANGES];
	struct uffd_scan s = { 0 };
	struct uffd u;
	int pipefd[2];
	uint64_t ioctls;
	char sink;

	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	t_open(&u, UFFD_F(UFFD_FEAT_WP_ASYNC), 0);
	CHECK(u.features & UFFD_F(UFFD_FEAT_WP_UNPOPULATED));
	pagemap_fd = uffd_pagemap_open(0);
	CHECK(pagemap_fd >= 0);
	area = t_map_anon(NR_PAGES * PAGE);
	/* THP would turn one write into 512 written pages. */
	CHECK_OK(madvise(area, NR_PAGES * PAGE, MADV_NOHUGEPAGE) ? -errno : 0);
	CHECK_OK(uffd_register(&u, area, NR_PAGES * PAGE, UFFD_REG_WP, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);
	CHECK_OK(uffd_writeprotect(&u, area, NR_PAGES * PAGE, true, 0));

	/* Every page is tracked (WPALLOWED) and none written yet. */
	s.addr = area;
	s.len = NR_PAGES * PAGE;
	s.category_mask = UFFD_PAGE_WPALLOWED;
	s.return_mask = UFFD_PAGE_WPALLOWED;
	CHECK_EQ(uffd_pagemap_scan(pagemap_fd, &s, r, MAX_RANGES), 1);
	CHECK_EQ(r[0].start, page_addr(0));
	CHECK_EQ(r[0].end, page_addr(NR_PAGES));
	EXPECT_NONE_WRITTEN(false);

	/* Reads are not writes. */
	sink = ((volatile char *)area)[20 * PAGE];
	CHECK_EQ(sink, 0);
	EXPECT_NONE_WRITTEN(false);

	/* Exactly the pages written, adjacent ones merged into one run. */
	write_chosen_pages();
	EXPECT_WRITTEN(false, { 3, 4 }, { 10, 13 }, { 40, 41 });
	/* Collecting without rearm changes nothing. */
	EXPECT_WRITTEN(false, { 3, 4 }, { 10, 13 }, { 40, 41 });
	/* With rearm: the same report, then a clean slate. */
	EXPECT_WRITTEN(true, { 3, 4 }, { 10, 13 }, { 40, 41 });
	EXPECT_NONE_WRITTEN(true);
	CHECK_EQ(area[10 * PAGE + 17], 'b');

	/* One more write after rearm: exactly that page. */
	write_page(5, 'f');
	EXPECT_WRITTEN(true, { 5, 6 });
	EXPECT_NONE_WRITTEN(false);

	/* A page written again after rearm is reported again. */
	write_page(40, 'g');
	EXPECT_WRITTEN(true, { 40, 41 });

	/* The kernel writing on our behalf (read(2) from a pipe) counts. */
	CHECK_OK(pipe(pipefd) ? -errno : 0);
	CHECK_EQ(write(pipefd[1], "xyz", 3), 3);
	CHECK_EQ(read(pipefd[0], area + 30 * PAGE + 100, 3), 3);
	CHECK(memcmp(area + 30 * PAGE + 100, "xyz", 3) == 0);
	EXPECT_WRITTEN(true, { 30, 31 });
	close(pipefd[0]);
	close(pipefd[1]);

	write_chosen_pages();
	check_early_stop();

	/* The kernel resolved every write itself: nothing was ever queued. */
	t_expect_no_event(&u, 50);
	close(pagemap_fd);
	uffd_close(&u);
	return T_EXIT_PASS;
}
