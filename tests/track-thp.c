/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transparent huge pages under tracking, and the no_thp option.
 *
 * no_thp=false: a 4 MiB range aligned to 2 MiB, MADV_HUGEPAGE, populated
 * before tracking so it is backed by THPs (PAGEMAP_SCAN shows every page
 * PAGE_IS_HUGE; skipped if no THP formed), stays huge when tracking starts,
 * and then one byte is written in the first huge page.  What is reported
 * on this kernel (6.18) is the one 4 KiB page written, not the 512 pages
 * track.h announces:
 *  - WP_ASYNC: protecting a THP marks its PMD uffd-wp; the write fault on
 *    it (wp_huge_pmd with WP_ASYNC) splits the PMD and resolves the write
 *    on the one PTE; PAGEMAP_SCAN then sees 511 protected PTEs and one
 *    written;
 *  - SYNC_WP: the fault reaches the tracker's thread, which un-protects 4
 *    KiB; UFFDIO_WRITEPROTECT on part of a huge PMD splits it first;
 *  - MPROTECT: making one 4 KiB page writable splits the VMA and the PMD.
 * So every backend reports exactly that page, and the next collect nothing;
 * the written huge page is split, the other one stays huge.
 *
 * no_thp=true: the tracker applies MADV_NOHUGEPAGE when the range is added,
 * before anything is populated (smaps then shows "nh", not "hg", in the
 * range's VmFlags, overriding the caller's MADV_HUGEPAGE); populating it
 * forms no THP (no page is PAGE_IS_HUGE) and is reported as 1024 written
 * pages; then one written byte is reported as exactly one page.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define LEN		(2 * HPAGE)
#define NR_PAGES	(LEN / PAGE)
#define WRITE_PAGE	5	/* in the first huge page */

static int pagemap_fd;

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static char *map_aligned(void)
{
	char *p = mmap(NULL, LEN + HPAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	CHECK(p != MAP_FAILED);
	a = (char *)(((uintptr_t)p + HPAGE - 1) & ~(HPAGE - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + LEN, p + HPAGE - a);
	CHECK_EQ(madvise(a, LEN, MADV_HUGEPAGE), 0);
	return a;
}

/* Pages of [a, a + LEN) mapped by a huge page (PAGE_IS_HUGE). */
static uint64_t huge_pages(char *a)
{
	struct uffd_range r[64];
	struct uffd_scan s = {
		.addr = a, .len = LEN,
		.category_mask = UFFD_PAGE_HUGE,
		.return_mask = UFFD_PAGE_HUGE,
	};
	uint64_t n = 0;
	int i, got = uffd_pagemap_scan(pagemap_fd, &s, r, 64);

	if (got < 0)
		FAIL("PAGEMAP_SCAN: %s", t_errname(got));
	CHECK_EQ(s.walk_end, (uintptr_t)(a + LEN));
	for (i = 0; i < got; i++)
		n += (r[i].end - r[i].start) / PAGE;
	return n;
}

/* The VmFlags line of the smaps entry that starts at a. */
static void vm_flags(char *a, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], head[32];
	bool in = false;

	CHECK(f);
	snprintf(head, sizeof(head), "%lx-", (unsigned long)(uintptr_t)a);
	out[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, head, strlen(head)))
			in = true;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(out, size, "%s", line + 8);
			break;
		}
	}
	fclose(f);
	CHECK(out[0]);
}

static bool has_flag(const char *flags, const char *flag)
{
	char want[8];

	snprintf(want, sizeof(want), " %s ", flag);
	return strstr(flags, want) != NULL;
}

static void populate(char *a)
{
	size_t i;

	for (i = 0; i < NR_PAGES; i++)
		((volatile char *)a)[i * PAGE] = 1;
}

/* A collect with REARM reports exactly [from, to) pages of a. */
static void expect_pages(struct uffd_tracker *t, char *a, size_t from, size_t to,
			 const char *be)
{
	struct uffd_track_result res = { 0 };

	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	if (to == from) {
		CHECK_EQ(res.nranges, 0);
	} else {
		if (res.nranges != 1)
			FAIL("%s: %zu ranges (%" PRIu64 " pages) reported, want [%zu, %zu)",
			     be, res.nranges, res.pages, from, to);
		if (res.ranges[0].start != (uintptr_t)(a + from * PAGE) ||
		    res.ranges[0].end != (uintptr_t)(a + to * PAGE))
			FAIL("%s: reported pages [%" PRId64 ", %" PRId64 "), want [%zu, %zu)",
			     be, (int64_t)(res.ranges[0].start - (uintptr_t)a) / (int64_t)PAGE,
			     (int64_t)(res.ranges[0].end - (uintptr_t)a) / (int64_t)PAGE,
			     from, to);
	}
	CHECK_EQ(res.pages, to - from);
	uffd_track_result_free(&res);
}

static struct uffd_tracker *new_tracker(enum uffd_track_backend b, bool no_thp)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .no_thp = no_thp);
	struct uffd_tracker *t = uffd_track_new(&o);

	if (!t)
		FAIL("%s: uffd_track_new: errno %d (%s)", uffd_track_backend_name(b), errno,
		     strerrorname_np(errno));
	return t;
}

static void thp_left_alone(enum uffd_track_backend b)
{
	const char *be = uffd_track_backend_name(b);
	char *a = map_aligned();
	struct uffd_tracker *t;
	uint64_t huge;

	populate(a);
	huge = huge_pages(a);
	if (!huge)
		SKIP("no transparent huge page formed in a populated MADV_HUGEPAGE range");
	CHECK_EQ(huge, NR_PAGES);
	t = new_tracker(b, false);
	CHECK_OK(uffd_track_add(t, a, LEN));
	CHECK_EQ(huge_pages(a), NR_PAGES);	/* arming did not split it */
	((volatile char *)a)[WRITE_PAGE * PAGE + 123] = 2;
	expect_pages(t, a, WRITE_PAGE, WRITE_PAGE + 1, be);
	expect_pages(t, a, 0, 0, be);
	/* The written huge page was split; the other one is still huge. */
	CHECK_EQ(huge_pages(a), NR_PAGES - HPAGE / PAGE);
	uffd_track_free(t);
	munmap(a, LEN);
}

static void thp_refused(enum uffd_track_backend b)
{
	const char *be = uffd_track_backend_name(b);
	char *a = map_aligned();
	struct uffd_tracker *t;
	char flags[512];

	vm_flags(a, flags, sizeof(flags));
	CHECK(has_flag(flags, "hg"));
	t = new_tracker(b, true);
	CHECK_OK(uffd_track_add(t, a, LEN));
	vm_flags(a, flags, sizeof(flags));
	if (!has_flag(flags, "nh") || has_flag(flags, "hg"))
		FAIL("%s: no_thp: VmFlags of the range are%s", be, flags);
	populate(a);
	CHECK_EQ(huge_pages(a), 0);
	expect_pages(t, a, 0, NR_PAGES, be);
	((volatile char *)a)[WRITE_PAGE * PAGE + 123] = 2;
	expect_pages(t, a, WRITE_PAGE, WRITE_PAGE + 1, be);
	expect_pages(t, a, 0, 0, be);
	uffd_track_free(t);
	munmap(a, LEN);
}

int main(void)
{
	static const enum uffd_track_backend backends[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP, UFFD_TRACK_MPROTECT,
	};
	size_t i;

	signal(SIGALRM, on_timeout);
	alarm(10);
	pagemap_fd = uffd_pagemap_open(0);
	if (pagemap_fd < 0)
		FAIL("open pagemap: %s", t_errname(pagemap_fd));
	if (uffd_feature_supported(UFFD_FEAT_PAGEMAP_SCAN) != 1)
		SKIP("no PAGEMAP_SCAN to tell huge pages from small ones");
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		thp_refused(backends[i]);
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		thp_left_alone(backends[i]);
	close(pagemap_fd);
	return T_EXIT_PASS;
}
