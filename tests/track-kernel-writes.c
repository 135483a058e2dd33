/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A write the kernel makes on the program's behalf - read(2) from a pipe
 * into a tracked page - is tracked as track.h documents:
 *  - WP_ASYNC (the kernel resolves the write-protect fault itself) and
 *    SYNC_WP (the tracker's thread serves the kernel-mode fault; the
 *    userfaultfd is not user-mode-only when we are root): the read returns
 *    the page's 4096 bytes, the page holds them, and the next collect
 *    reports exactly that page (SYNC_WP counts one write fault);
 *  - SOFT_DIRTY: as WP_ASYNC, where the kernel has it (else a note);
 *  - MPROTECT: the page is read-only to the kernel too, so read(2) fails
 *    with EFAULT, the page keeps its old contents, no write fault is seen
 *    and nothing is reported;
 *  - SYNC_WP with in_thread: the kernel raises no SIGBUS for its own
 *    access and does not wait, so the same as MPROTECT.
 * Either way tracking goes on: a later ordinary write to another page is
 * reported exactly.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define NR_PAGES	4
#define PIPE_SEED	100

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out (read(2) or a write hung)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

/* A collect with REARM reports exactly page pg of area (or nothing: -1). */
static void expect_one_page(struct uffd_tracker *t, char *area, int pg, const char *be)
{
	struct uffd_track_result res = { 0 };

	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	if (pg < 0) {
		if (res.nranges)
			FAIL("%s: reported [%p, %p), want nothing", be,
			     (void *)(uintptr_t)res.ranges[0].start,
			     (void *)(uintptr_t)res.ranges[0].end);
		CHECK_EQ(res.pages, 0);
	} else {
		if (res.nranges != 1)
			FAIL("%s: %zu ranges reported, want 1 (page %d)", be, res.nranges, pg);
		CHECK_EQ(res.ranges[0].start, (uintptr_t)(area + pg * PAGE));
		CHECK_EQ(res.ranges[0].end, (uintptr_t)(area + (pg + 1) * PAGE));
		CHECK_EQ(res.pages, 1);
	}
	uffd_track_result_free(&res);
}

static bool run_backend(enum uffd_track_backend b, bool in_thread)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .in_thread = in_thread);
	const char *be = in_thread ? "sync-wp in-thread" : uffd_track_backend_name(b);
	bool kernel_writes_tracked = b != UFFD_TRACK_MPROTECT && !in_thread;
	struct uffd_track_stats st;
	struct uffd_tracker *t;
	char src[PAGE], *area;
	int pfd[2], i;
	ssize_t n;

	t = uffd_track_new(&o);
	if (!t) {
		if (errno == EOPNOTSUPP && b == UFFD_TRACK_SOFT_DIRTY) {
			fprintf(stderr, "note: %s not available here (EOPNOTSUPP), skipped\n", be);
			return false;
		}
		FAIL("%s: uffd_track_new: errno %d (%s)", be, errno, strerrorname_np(errno));
	}
	area = t_map_anon(NR_PAGES * PAGE);
	for (i = 0; i < NR_PAGES; i++)
		t_fill(area + i * PAGE, PAGE, i);
	CHECK_OK(uffd_track_add(t, area, NR_PAGES * PAGE));

	CHECK_OK(pipe(pfd));
	t_fill(src, PAGE, PIPE_SEED);
	CHECK_EQ(write(pfd[1], src, PAGE), PAGE);
	n = read(pfd[0], area + PAGE, PAGE);
	if (kernel_writes_tracked) {
		if (n != (ssize_t)PAGE)
			FAIL("%s: read(2) into a tracked page returned %zd (%s), want %lu",
			     be, n, n < 0 ? strerrorname_np(errno) : "", PAGE);
		CHECK(t_is_filled(area + PAGE, PAGE, PIPE_SEED));
		expect_one_page(t, area, 1, be);
	} else {
		if (n != -1 || errno != EFAULT)
			FAIL("%s: read(2) into a tracked page returned %zd (%s), want -1 EFAULT",
			     be, n, n < 0 ? strerrorname_np(errno) : "");
		CHECK(t_is_filled(area + PAGE, PAGE, 1));
		expect_one_page(t, area, -1, be);
	}
	for (i = 0; i < NR_PAGES; i++)
		if (i != 1)
			CHECK(t_is_filled(area + i * PAGE, PAGE, i));
	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.write_faults, b == UFFD_TRACK_SYNC_WP && !in_thread ? 1 : 0);
	close(pfd[0]);
	close(pfd[1]);

	/* Tracking goes on: an ordinary write to page 2. */
	((volatile char *)area)[2 * PAGE + 9] = 'w';
	expect_one_page(t, area, 2, be);
	expect_one_page(t, area, -1, be);
	uffd_track_free(t);
	munmap(area, NR_PAGES * PAGE);
	fprintf(stderr, "%s: read(2) %s\n", be,
		kernel_writes_tracked ? "reported" : "failed with EFAULT, not reported");
	return true;
}

int main(void)
{
	signal(SIGALRM, on_timeout);
	alarm(10);
	run_backend(UFFD_TRACK_WP_ASYNC, false);
	run_backend(UFFD_TRACK_SYNC_WP, false);
	run_backend(UFFD_TRACK_SOFT_DIRTY, false);
	run_backend(UFFD_TRACK_MPROTECT, false);
	if (t_in_thread_ok())
		run_backend(UFFD_TRACK_SYNC_WP, true);
	return T_EXIT_PASS;
}
