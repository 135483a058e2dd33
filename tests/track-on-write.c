/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * on_write is called for the first write to a page since it was last
 * armed, before the write lands (SYNC_WP and MPROTECT):
 *  - writes to pages 1, 3, 3, 4, 4, 1 call it exactly three times, in
 *    order, with the page addresses 1, 3, 4 and the caller's arg, and in
 *    each call the page still holds its old contents (compared with a copy
 *    taken before the writes);
 *  - a collect without REARM leaves the pages armed-off: writing page 1
 *    again calls nothing;
 *  - after a collect with REARM, writes to pages 3 and 6 call it again,
 *    once each, again before the write lands; after uffd_track_reset
 *    (which re-arms everything) a write to page 3 calls it once more;
 *  - stats.write_faults equals the number of calls every time;
 *  - WP_ASYNC never calls it (the kernel resolves its faults) and counts
 *    no write faults, yet reports the same pages.
 * The callback is async-signal-safe (MPROTECT calls it from SIGSEGV): it
 * only compares bytes and stores with atomics.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define NR_PAGES	8
#define MAX_CALLS	32

static char *area;
static char old_copy[NR_PAGES][PAGE];	/* contents before this arming's writes */
static int cookie;

static struct {
	int n;				/* atomic: calls so far */
	void *page[MAX_CALLS];
	void *arg[MAX_CALLS];
	int old_intact[MAX_CALLS];	/* 1: page held old_copy during the call */
} calls;

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out (a write hung)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

/*
 * Not instrumented by ThreadSanitizer: with SYNC_WP the page is read here,
 * in the tracker's thread, while the writer is blocked in the kernel, a
 * happens-before that TSan cannot see.
 */
__attribute__((no_sanitize("thread"), noinline))
static int page_is_old(const char *page)
{
	uintptr_t pg = ((uintptr_t)page - (uintptr_t)area) / PAGE;
	size_t i;

	if ((uintptr_t)page < (uintptr_t)area || pg >= NR_PAGES)
		return 0;
	for (i = 0; i < PAGE; i++)
		if (page[i] != old_copy[pg][i])
			return 0;
	return 1;
}

static void on_write(void *page, void *arg)
{
	int i = __atomic_fetch_add(&calls.n, 1, __ATOMIC_ACQ_REL);

	if (i >= MAX_CALLS)
		return;
	__atomic_store_n(&calls.old_intact[i], page_is_old(page), __ATOMIC_RELEASE);
	__atomic_store_n(&calls.arg[i], arg, __ATOMIC_RELEASE);
	__atomic_store_n(&calls.page[i], page, __ATOMIC_RELEASE);
}

static int ncalls(void)
{
	return __atomic_load_n(&calls.n, __ATOMIC_ACQUIRE);
}

/* Take the copy the callback compares with: what the pages hold now. */
static void snapshot(void)
{
	memcpy(old_copy, area, sizeof(old_copy));
}

/* Write value at page pg + off; the byte must differ from what is there. */
static void write_byte(int pg, size_t off, char value)
{
	CHECK(area[pg * PAGE + off] != value);
	((volatile char *)area)[pg * PAGE + off] = value;
	CHECK_EQ(area[pg * PAGE + off], value);
}

/* Calls [from, to) were for these pages, each with arg and old contents. */
static void expect_calls(const char *be, int from, const int *pages, int n,
			 struct uffd_tracker *t, bool calls_expected)
{
	struct uffd_track_stats st;
	int i;

	if (!calls_expected)
		from = n = 0;
	CHECK_EQ(ncalls(), from + n);
	for (i = 0; i < n; i++) {
		void *page = __atomic_load_n(&calls.page[from + i], __ATOMIC_ACQUIRE);

		if (page != area + pages[i] * PAGE)
			FAIL("%s: call %d was for %p (page %td), want page %d", be, from + i,
			     page, ((char *)page - area) / (ptrdiff_t)PAGE, pages[i]);
		CHECK(__atomic_load_n(&calls.arg[from + i], __ATOMIC_ACQUIRE) == &cookie);
		if (!__atomic_load_n(&calls.old_intact[from + i], __ATOMIC_ACQUIRE))
			FAIL("%s: call %d (page %d): the page no longer held its old contents",
			     be, from + i, pages[i]);
	}
	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.write_faults, ncalls());
}

/* A collect reports exactly these single pages (ascending, not adjacent
 * unless listed as a run). */
static void expect_pages(struct uffd_tracker *t, unsigned flags, const int (*runs)[2],
			 size_t n, const char *be)
{
	struct uffd_track_result res = { 0 };
	uint64_t pages = 0;
	size_t i;

	CHECK_OK(uffd_track_collect(t, flags, &res));
	if (res.nranges != n)
		FAIL("%s: %zu ranges reported, want %zu", be, res.nranges, n);
	for (i = 0; i < n; i++) {
		CHECK_EQ(res.ranges[i].start, (uintptr_t)(area + runs[i][0] * PAGE));
		CHECK_EQ(res.ranges[i].end, (uintptr_t)(area + runs[i][1] * PAGE));
		pages += runs[i][1] - runs[i][0];
	}
	CHECK_EQ(res.pages, pages);
	uffd_track_result_free(&res);
}

static void run_backend(enum uffd_track_backend b)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .on_write = on_write, .arg = &cookie);
	static const int first[] = { 1, 3, 4 }, second[] = { 3, 6 }, third[] = { 3 };
	static const int runs1[][2] = { { 1, 2 }, { 3, 5 } };
	static const int runs2[][2] = { { 3, 4 }, { 6, 7 } };
	static const int runs3[][2] = { { 3, 4 } };
	const char *be = uffd_track_backend_name(b);
	bool cb = b != UFFD_TRACK_WP_ASYNC;
	struct uffd_tracker *t;
	int i;

	memset(&calls, 0, sizeof(calls));
	t = uffd_track_new(&o);
	if (!t)
		FAIL("%s: uffd_track_new: errno %d (%s)", be, errno, strerrorname_np(errno));
	area = t_map_anon(NR_PAGES * PAGE);
	for (i = 0; i < NR_PAGES; i++)
		t_fill(area + i * PAGE, PAGE, i);
	snapshot();
	CHECK_OK(uffd_track_add(t, area, NR_PAGES * PAGE));
	CHECK_EQ(ncalls(), 0);

	write_byte(1, 10, 'a');
	write_byte(3, 20, 'b');
	write_byte(3, 30, 'c');
	write_byte(4, 40, 'd');
	write_byte(4, 4000, 'e');
	write_byte(1, 50, 'f');
	expect_calls(be, 0, first, 3, t, cb);

	/* Reported, not re-armed: writing again calls nothing. */
	expect_pages(t, 0, runs1, 2, be);
	write_byte(1, 60, 'g');
	expect_calls(be, 0, first, 3, t, cb);

	/* Re-armed: the next first writes call again, before landing. */
	snapshot();
	expect_pages(t, UFFD_TRACK_REARM, runs1, 2, be);
	write_byte(3, 70, 'h');
	write_byte(6, 80, 'i');
	write_byte(3, 90, 'j');
	expect_calls(be, 3, second, 2, t, cb);
	expect_pages(t, UFFD_TRACK_REARM, runs2, 2, be);

	/* Reset re-arms everything too. */
	write_byte(5, 100, 'k');
	expect_calls(be, 5, (const int[]){ 5 }, 1, t, cb);
	snapshot();
	CHECK_OK(uffd_track_reset(t));
	write_byte(3, 110, 'l');
	expect_calls(be, 6, third, 1, t, cb);
	expect_pages(t, UFFD_TRACK_REARM, runs3, 1, be);

	uffd_track_free(t);
	munmap(area, NR_PAGES * PAGE);
	fprintf(stderr, "%s: %d on_write calls\n", be, ncalls());
}

int main(void)
{
	signal(SIGALRM, on_timeout);
	alarm(10);
	run_backend(UFFD_TRACK_WP_ASYNC);
	run_backend(UFFD_TRACK_SYNC_WP);
	run_backend(UFFD_TRACK_MPROTECT);
	return T_EXIT_PASS;
}
