/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tracker refuses bad input with exact errors and leaves no trace:
 *  - uffd_track_add: an unaligned address, an unaligned length, a zero
 *    length -> -EINVAL (every backend);
 *  - uffd_track_collect_bitmap with nbits one short of uffd_track_pages(),
 *    or 0 -> -EINVAL; collect and collect_bitmap with an unknown flag ->
 *    -EINVAL; none of them reports or re-arms anything: the written page is
 *    still reported afterwards;
 *  - uffd_track_new with backend 99 -> NULL, errno EINVAL;
 *  - WP_ASYNC and SYNC_WP: adding a range already registered on another
 *    userfaultfd fails with the kernel's UFFDIO_REGISTER errno, -EBUSY;
 *    the failed add leaves no trace: uffd_track_pages() and tracked_bytes
 *    are unchanged, and the next range added starts at bit 0 of the bitmap
 *    ("bit i is page i of the tracked ranges taken in the order they were
 *    added"); the other userfaultfd's registration still works;
 *  - uffd_track_free(NULL) does nothing;
 *  - after uffd_track_free the tracked memory is plain memory again: no
 *    page is uffd-wp in /proc/self/pagemap (bit 57; the userfaultfd
 *    backends' populated pages were, before), and writes to every page
 *    complete at once, from another thread, with no fault to serve (with
 *    MPROTECT, a SIGSEGV left unhandled would kill the test).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define NR_PAGES	8
#define PM_UFFD_WP	(1ULL << 57)

static const enum uffd_track_backend backends[] = {
	UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP, UFFD_TRACK_MPROTECT,
};

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static struct uffd_tracker *new_tracker(enum uffd_track_backend b)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b);
	struct uffd_tracker *t = uffd_track_new(&o);

	if (!t)
		FAIL("%s: uffd_track_new: errno %d (%s)", uffd_track_backend_name(b), errno,
		     strerrorname_np(errno));
	return t;
}

/* A collect (no REARM) reports exactly page pg of a. */
static void expect_page(struct uffd_tracker *t, char *a, int pg)
{
	struct uffd_track_result res = { 0 };

	CHECK_OK(uffd_track_collect(t, 0, &res));
	CHECK_EQ(res.nranges, 1);
	CHECK_EQ(res.ranges[0].start, (uintptr_t)(a + pg * PAGE));
	CHECK_EQ(res.ranges[0].end, (uintptr_t)(a + (pg + 1) * PAGE));
	CHECK_EQ(res.pages, 1);
	uffd_track_result_free(&res);
}

static void bad_add_and_collect(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	struct uffd_track_result res = { 0 };
	char *a = t_map_anon(NR_PAGES * PAGE);
	uint64_t bm[1] = { 0 }, pages = 0;

	CHECK_EQ(uffd_track_add(t, a + 1, PAGE), -EINVAL);
	CHECK_EQ(uffd_track_add(t, a, PAGE + 1), -EINVAL);
	CHECK_EQ(uffd_track_add(t, a, PAGE - 1), -EINVAL);
	CHECK_EQ(uffd_track_add(t, a, 0), -EINVAL);
	CHECK_EQ(uffd_track_pages(t), 0);
	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	CHECK_EQ(uffd_track_pages(t), NR_PAGES);
	((volatile char *)a)[3 * PAGE] = 1;

	CHECK_EQ(uffd_track_collect_bitmap(t, 0, bm, NR_PAGES - 1, &pages), -EINVAL);
	CHECK_EQ(uffd_track_collect_bitmap(t, 0, bm, 0, &pages), -EINVAL);
	CHECK_EQ(uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, bm, NR_PAGES - 1, NULL),
		 -EINVAL);
	CHECK_EQ(uffd_track_collect(t, 1u << 1, &res), -EINVAL);
	CHECK_EQ(uffd_track_collect(t, UFFD_TRACK_REARM | (1u << 31), &res), -EINVAL);
	CHECK_EQ(res.nranges, 0);
	CHECK_EQ(uffd_track_collect_bitmap(t, 1u << 7, bm, NR_PAGES, &pages), -EINVAL);
	/* Nothing was reported or re-armed by the refused calls. */
	expect_page(t, a, 3);
	CHECK_OK(uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, bm, NR_PAGES, &pages));
	CHECK_EQ(bm[0], 1ULL << 3);
	CHECK_EQ(pages, 1);
	uffd_track_result_free(&res);
	uffd_track_free(t);
	munmap(a, NR_PAGES * PAGE);
}

static void registered_elsewhere(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	struct uffd_track_stats st;
	char *taken = t_map_anon(NR_PAGES * PAGE), *a = t_map_anon(NR_PAGES * PAGE);
	uint64_t bm[1] = { 0 }, pages = 0;
	struct uffd u;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	CHECK_OK(uffd_register(&u, taken, NR_PAGES * PAGE, UFFD_REG_WP, NULL));
	CHECK_EQ(uffd_track_add(t, taken, NR_PAGES * PAGE), -EBUSY);
	CHECK_EQ(uffd_track_pages(t), 0);
	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.tracked_bytes, 0);

	/* The next range's pages are the bitmap's first bits. */
	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	CHECK_EQ(uffd_track_pages(t), NR_PAGES);
	((volatile char *)a)[2 * PAGE] = 1;
	CHECK_OK(uffd_track_collect_bitmap(t, 0, bm, NR_PAGES, &pages));
	CHECK_EQ(bm[0], 1ULL << 2);
	CHECK_EQ(pages, 1);
	expect_page(t, a, 2);

	/* The other userfaultfd still owns its range: write-protect works. */
	((volatile char *)taken)[0] = 1;
	CHECK_OK(uffd_writeprotect(&u, taken, NR_PAGES * PAGE, true, 0));
	CHECK_OK(uffd_writeprotect(&u, taken, NR_PAGES * PAGE, false, 0));
	uffd_track_free(t);
	uffd_close(&u);
	munmap(taken, NR_PAGES * PAGE);
	munmap(a, NR_PAGES * PAGE);
}

/* The pagemap entries of a's pages. */
static void pagemap_entries(char *a, uint64_t *e)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);

	CHECK(fd >= 0);
	CHECK_EQ(pread(fd, e, NR_PAGES * 8, (uintptr_t)a / PAGE * 8), NR_PAGES * 8);
	close(fd);
}

static void expect_no_uffd_wp(char *a, const char *be)
{
	uint64_t e[NR_PAGES];
	int i;

	pagemap_entries(a, e);
	for (i = 0; i < NR_PAGES; i++)
		if (e[i] & PM_UFFD_WP)
			FAIL("%s: page %d still uffd-wp after uffd_track_free", be, i);
}

static void plain_after_free(enum uffd_track_backend b)
{
	const char *be = uffd_track_backend_name(b);
	struct uffd_tracker *t = new_tracker(b);
	struct uffd_track_result res = { 0 };
	char *a = t_map_anon(NR_PAGES * PAGE);
	struct t_access w;
	int i;

	for (i = 0; i < NR_PAGES / 2; i++)	/* half populated, half not */
		t_fill(a + i * PAGE, PAGE, i);
	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	((volatile char *)a)[PAGE] = 'x';
	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	CHECK_EQ(res.pages, 1);
	uffd_track_result_free(&res);
	if (b != UFFD_TRACK_MPROTECT) {	/* the check below means something */
		uint64_t e[NR_PAGES];

		pagemap_entries(a, e);
		CHECK(e[0] & PM_UFFD_WP);
		CHECK(e[1] & PM_UFFD_WP);
	}
	uffd_track_free(t);
	expect_no_uffd_wp(a, be);
	for (i = 0; i < NR_PAGES; i++) {
		t_access_start(&w, a + i * PAGE + 7, true, 'y');
		if (!t_access_wait(&w, 1000))
			FAIL("%s: write to page %d after uffd_track_free did not complete", be, i);
		t_access_join(&w);
		CHECK_EQ(a[i * PAGE + 7], 'y');
	}
	CHECK(a[PAGE] == 'x');
	munmap(a, NR_PAGES * PAGE);
}

int main(void)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = (enum uffd_track_backend)99);
	size_t i;

	signal(SIGALRM, on_timeout);
	alarm(10);
	errno = 0;
	CHECK(uffd_track_new(&o) == NULL);
	CHECK_EQ(errno, EINVAL);
	uffd_track_free(NULL);

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		bad_add_and_collect(backends[i]);
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		plain_after_free(backends[i]);
	registered_elsewhere(UFFD_TRACK_WP_ASYNC);
	registered_elsewhere(UFFD_TRACK_SYNC_WP);
	return T_EXIT_PASS;
}
