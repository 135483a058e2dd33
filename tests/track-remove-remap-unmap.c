/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The userfaultfd backends (WP_ASYNC, SYNC_WP) follow changes to the
 * tracked memory, as track.h documents:
 *  - dontneed: MADV_DONTNEED of two tracked pages reports exactly them at
 *    the next collect as written (their contents became zeros;
 *    stats.removed_pages == 2), and only once: not again after a REARM;
 *  - remap: mremap(MAYMOVE|FIXED) of the whole range to a new address: a
 *    write made before the move and writes made after it are reported at
 *    the new addresses, with the same bitmap bits as before the move;
 *  - unmap-tail: munmap of the tail half: nothing is reported from it
 *    (not even a page written before the munmap, nor a new mapping placed
 *    there), writes to the head still are; tracked_bytes is the head;
 *  - unmap-all: munmap of all of one of two ranges: collect returns 0 and
 *    reports only the other range's writes;
 * and, from the same contract ("everything counts as clean" once armed,
 * "munmap stops tracking what went away"):
 *  - removed-rearmed: after a removed page was reported with REARM it is
 *    armed like any other: a read of it is not reported, a write is;
 *  - unmap-hole: munmap of two pages in the middle: the pages after the
 *    hole are still tracked - only what was written there is reported,
 *    before and after a REARM;
 *  - unmap-pieces: munmap of a hole (pages 3-4 of 8), then of the tail
 *    after it (pages 5-7): only the head (pages 0-2) is tracked
 *    (tracked_bytes), and a collect returns 0 with only the head's write,
 *    not the hole's pages written (and reported) before they went away;
 *  - right-after: the change is in effect for the first collect made
 *    after the system call returned, with no pause in between: 1000 times
 *    MADV_DONTNEED of a page then at once a collect (REARM) that must
 *    report exactly that page; 300 times a new 2-page range, added (it
 *    may reuse the address of the one unmapped just before), its second
 *    page written then unmapped, then at once a collect (REARM) that
 *    must return 0 and report nothing.  The test and the tracker's
 *    thread share one CPU, which makes the caller likely to run first.
 * In the other cases the mm changes run in a helper thread with a
 * deadline (each blocks until the tracker's thread has read its event),
 * and the test pauses 20 ms after each, so that they test what a change
 * does and right-after alone tests when.  Each case runs in its own child
 * process, so one failure does not hide the others.
 */
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NR_PAGES 8

static const char *be;

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out (an mm change, write or collect hung)\n";

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
		FAIL("%s: uffd_track_new: errno %d (%s)", be, errno, strerrorname_np(errno));
	return t;
}

static char *map_filled(size_t npages)
{
	char *p = t_map_anon(npages * PAGE);
	size_t i;

	for (i = 0; i < npages; i++)
		t_fill(p + i * PAGE, PAGE, i);
	return p;
}

static void write_page(char *base, int pg)
{
	((volatile char *)base)[pg * PAGE + 33] = 'w';
}

/* An mremap/munmap/madvise in a helper thread, 2 s deadline; it succeeds.
 * The kernel lets the call return once the tracker's thread has read the
 * event, which may be before the tracker has applied it: pause (see
 * right-after for the collect that follows at once). */
static void run_job(enum t_mm_op op, char *addr, size_t len, char *to)
{
	struct t_mm_job j;

	t_mm_job_start(&j, op, addr, len, to);
	if (!t_mm_job_wait(&j, 2000))
		FAIL("%s: mm op %d on %p blocked for 2 s: event not read?", be, op,
		     (void *)addr);
	t_mm_job_join(&j);
	CHECK_EQ(j.err, 0);
	if (op == T_MM_MREMAP)
		CHECK(j.res == to);
	t_sleep_ms(20);
}

/* A collect returns 0 and reports exactly the runs [base + r[i][0] pages,
 * base + r[i][1] pages). */
static void expect_runs(struct uffd_tracker *t, unsigned flags, char *base,
			const int (*r)[2], size_t n, int line)
{
	struct uffd_track_result res = { 0 };
	uint64_t pages = 0;
	size_t i;
	int ret;

	ret = uffd_track_collect(t, flags, &res);
	if (ret)
		FAIL("%s line %d: collect = %d (%s)", be, line, ret, t_errname(ret));
	for (i = 0; i < n; i++)
		pages += r[i][1] - r[i][0];
	if (res.nranges != n || res.pages != pages) {
		for (i = 0; i < res.nranges; i++)
			fprintf(stderr, "  got [%+" PRId64 ", %+" PRId64 ") pages from base\n",
				((int64_t)res.ranges[i].start - (int64_t)(uintptr_t)base) / (int64_t)PAGE,
				((int64_t)res.ranges[i].end - (int64_t)(uintptr_t)base) / (int64_t)PAGE);
		FAIL("%s line %d: %zu ranges, %" PRIu64 " pages reported; want %zu ranges, %"
		     PRIu64 " pages", be, line, res.nranges, res.pages, n, pages);
	}
	for (i = 0; i < n; i++) {
		if (res.ranges[i].start != (uintptr_t)(base + r[i][0] * PAGE) ||
		    res.ranges[i].end != (uintptr_t)(base + r[i][1] * PAGE))
			FAIL("%s line %d: range %zu is [%+" PRId64 ", %+" PRId64 "), want [%d, %d)",
			     be, line, i,
			     ((int64_t)res.ranges[i].start - (int64_t)(uintptr_t)base) / (int64_t)PAGE,
			     ((int64_t)res.ranges[i].end - (int64_t)(uintptr_t)base) / (int64_t)PAGE,
			     r[i][0], r[i][1]);
	}
	uffd_track_result_free(&res);
}

#define EXPECT(t, flags, base, ...) do {				\
	static const int _r[][2] = { __VA_ARGS__ };			\
	expect_runs(t, flags, base, _r, sizeof(_r) / sizeof(_r[0]), __LINE__); \
} while (0)
#define EXPECT_NONE(t, flags) expect_runs(t, flags, NULL, NULL, 0, __LINE__)

/* Exactly these bits of the first nbits are set by a collect (no REARM). */
static void expect_bits(struct uffd_tracker *t, size_t nbits, uint64_t want)
{
	uint64_t bm[4] = { 0 }, pages = 0;

	CHECK(nbits <= 64);
	CHECK_OK(uffd_track_collect_bitmap(t, 0, bm, nbits, &pages));
	CHECK_EQ(bm[0], want);
	CHECK_EQ(pages, __builtin_popcountll(want));
}

static void check_removed(struct uffd_tracker *t, uint64_t removed, uint64_t tracked)
{
	struct uffd_track_stats st;

	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.removed_pages, removed);
	CHECK_EQ(st.tracked_bytes, tracked);
}

static void case_dontneed(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	char *a = map_filled(NR_PAGES);

	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	run_job(T_MM_DONTNEED, a + 2 * PAGE, 2 * PAGE, NULL);
	CHECK(t_is_zero(a + 2 * PAGE, 2 * PAGE));
	CHECK(t_is_filled(a + 4 * PAGE, PAGE, 4));
	check_removed(t, 2, NR_PAGES * PAGE);
	EXPECT(t, 0, a, { 2, 4 });
	expect_bits(t, NR_PAGES, 0x0c);
	EXPECT(t, UFFD_TRACK_REARM, a, { 2, 4 });
	EXPECT_NONE(t, 0);
	EXPECT_NONE(t, UFFD_TRACK_REARM);
	/* Alongside an ordinary write. */
	write_page(a, 6);
	EXPECT(t, UFFD_TRACK_REARM, a, { 6, 7 });
	check_removed(t, 2, NR_PAGES * PAGE);
	uffd_track_free(t);
}

static void case_removed_rearmed(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	char *a = map_filled(NR_PAGES);
	volatile char sink;

	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	run_job(T_MM_DONTNEED, a + 2 * PAGE, 2 * PAGE, NULL);
	EXPECT(t, UFFD_TRACK_REARM, a, { 2, 4 });
	sink = ((volatile char *)a)[2 * PAGE + 5];	/* a read */
	CHECK_EQ(sink, 0);
	EXPECT_NONE(t, 0);
	write_page(a, 3);				/* a write */
	EXPECT(t, UFFD_TRACK_REARM, a, { 3, 4 });
	EXPECT_NONE(t, 0);
	uffd_track_free(t);
}

static void case_remap(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	char *a = map_filled(NR_PAGES), *to;

	to = mmap(NULL, NR_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED);
	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	write_page(a, 0);
	EXPECT(t, UFFD_TRACK_REARM, a, { 0, 1 });
	write_page(a, 5);			/* before the move, not collected */
	run_job(T_MM_MREMAP, a, NR_PAGES * PAGE, to);
	CHECK(t_is_filled(to + 4 * PAGE, PAGE, 4));
	write_page(to, 1);
	write_page(to, 6);
	expect_bits(t, NR_PAGES, 0x62);
	EXPECT(t, UFFD_TRACK_REARM, to, { 1, 2 }, { 5, 7 });
	EXPECT_NONE(t, 0);
	write_page(to, 2);
	EXPECT(t, UFFD_TRACK_REARM, to, { 2, 3 });
	check_removed(t, 0, NR_PAGES * PAGE);
	uffd_track_free(t);
	munmap(to, NR_PAGES * PAGE);
}

/* Map fresh memory at addr (which must be free) and write to it. */
static void map_and_write_at(char *addr, size_t npages)
{
	char *p = mmap(addr, npages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	CHECK(p == addr);
	write_page(p, 0);
}

static void case_unmap_tail(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	char *a = map_filled(NR_PAGES);
	int half = NR_PAGES / 2;

	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	write_page(a, 1);
	write_page(a, 6);
	run_job(T_MM_MUNMAP, a + half * PAGE, half * PAGE, NULL);
	map_and_write_at(a + half * PAGE, half);
	EXPECT(t, 0, a, { 1, 2 });
	expect_bits(t, NR_PAGES, 0x02);
	EXPECT(t, UFFD_TRACK_REARM, a, { 1, 2 });
	write_page(a, 2);
	write_page(a, half + 1);
	EXPECT(t, UFFD_TRACK_REARM, a, { 2, 3 });
	EXPECT_NONE(t, 0);
	check_removed(t, 0, half * PAGE);
	uffd_track_free(t);
}

static void case_unmap_all(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	char *a = map_filled(NR_PAGES), *c = map_filled(NR_PAGES);

	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	CHECK_OK(uffd_track_add(t, c, NR_PAGES * PAGE));
	write_page(a, 1);
	write_page(c, 2);
	run_job(T_MM_MUNMAP, a, NR_PAGES * PAGE, NULL);
	map_and_write_at(a, NR_PAGES);
	EXPECT(t, UFFD_TRACK_REARM, c, { 2, 3 });
	write_page(c, 3);
	EXPECT(t, UFFD_TRACK_REARM, c, { 3, 4 });
	EXPECT_NONE(t, 0);
	check_removed(t, 0, NR_PAGES * PAGE);
	uffd_track_free(t);
}

static void case_unmap_hole(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	char *a = map_filled(NR_PAGES);

	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	write_page(a, 1);
	run_job(T_MM_MUNMAP, a + 3 * PAGE, 2 * PAGE, NULL);
	write_page(a, 6);
	EXPECT(t, 0, a, { 1, 2 }, { 6, 7 });
	expect_bits(t, NR_PAGES, 0x42);
	EXPECT(t, UFFD_TRACK_REARM, a, { 1, 2 }, { 6, 7 });
	write_page(a, 7);
	EXPECT(t, UFFD_TRACK_REARM, a, { 7, 8 });
	EXPECT_NONE(t, 0);
	uffd_track_free(t);
}

static void case_unmap_pieces(enum uffd_track_backend b)
{
	struct uffd_tracker *t = new_tracker(b);
	struct uffd_track_stats st;
	char *a = map_filled(NR_PAGES);

	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	write_page(a, 1);
	write_page(a, 3);
	write_page(a, 4);
	EXPECT(t, 0, a, { 1, 2 }, { 3, 5 });
	run_job(T_MM_MUNMAP, a + 3 * PAGE, 2 * PAGE, NULL);
	run_job(T_MM_MUNMAP, a + 5 * PAGE, 3 * PAGE, NULL);
	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.tracked_bytes, 3 * PAGE);
	EXPECT(t, UFFD_TRACK_REARM, a, { 1, 2 });
	EXPECT_NONE(t, 0);
	check_removed(t, 0, 3 * PAGE);	/* munmap is no REMOVE */
	uffd_track_free(t);
}

static void case_right_after(enum uffd_track_backend b)
{
	struct uffd_track_result res = { 0 };
	struct uffd_tracker *t;
	char *a = map_filled(NR_PAGES), *p;
	cpu_set_t one;
	int i, ret;

	/* The tracker's thread inherits this CPU: as on a 1-CPU machine, the
	 * caller it wakes by reading the event may run before it goes on. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	CHECK_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
	t = new_tracker(b);
	CHECK_OK(uffd_track_add(t, a, NR_PAGES * PAGE));
	for (i = 0; i < 1000; i++) {
		int pg = i % NR_PAGES;

		CHECK_EQ(madvise(a + pg * PAGE, PAGE, MADV_DONTNEED), 0);
		ret = uffd_track_collect(t, UFFD_TRACK_REARM, &res);
		if (ret || res.nranges != 1 || res.pages != 1 ||
		    res.ranges[0].start != (uintptr_t)(a + pg * PAGE))
			FAIL("%s: DONTNEED %d of page %d, then collect: ret %d (%s), %zu ranges, "
			     "first at page %+" PRId64 "; want page %d alone", be, i, pg, ret,
			     t_errname(ret), res.nranges,
			     res.nranges ? ((int64_t)res.ranges[0].start -
					    (int64_t)(uintptr_t)a) / (int64_t)PAGE : -1, pg);
	}
	for (i = 0; i < 300; i++) {
		p = map_filled(2);
		ret = uffd_track_add(t, p, 2 * PAGE);
		if (ret)
			FAIL("%s: add %d of a 2-page range at %p: %d (%s)", be, i, (void *)p,
			     ret, t_errname(ret));
		write_page(p, 1);
		CHECK_EQ(munmap(p + PAGE, PAGE), 0);
		ret = uffd_track_collect(t, UFFD_TRACK_REARM, &res);
		if (ret || res.nranges)
			FAIL("%s: munmap %d of a written tail, then collect: ret %d (%s), "
			     "%zu ranges; want 0 and none", be, i, ret, t_errname(ret),
			     res.nranges);
		CHECK_EQ(munmap(p, PAGE), 0);
	}
	uffd_track_result_free(&res);
	uffd_track_free(t);
}

struct tcase {
	const char *name;
	void (*fn)(enum uffd_track_backend b);
};

/* Run one case in a child (a fresh process: no threads at fork). */
static bool run_case(const struct tcase *c, enum uffd_track_backend b)
{
	pid_t pid;
	int rc;

	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		be = uffd_track_backend_name(b);
		signal(SIGALRM, on_timeout);
		alarm(4);
		c->fn(b);
		exit(T_EXIT_PASS);	/* exit: a sanitizer report fails it */
	}
	rc = t_wait_child(pid, 8000);
	fprintf(stderr, "%-16s %-22s %s\n", c->name, uffd_track_backend_name(b),
		rc ? "FAILED" : "ok");
	return rc == 0;
}

int main(void)
{
	static const struct tcase cases[] = {
		{ "dontneed", case_dontneed },
		{ "remap", case_remap },
		{ "unmap-tail", case_unmap_tail },
		{ "unmap-all", case_unmap_all },
		{ "removed-rearmed", case_removed_rearmed },
		{ "unmap-hole", case_unmap_hole },
		{ "unmap-pieces", case_unmap_pieces },
		{ "right-after", case_right_after },
	};
	static const enum uffd_track_backend backends[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP,
	};
	int failed = 0;
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (j = 0; j < sizeof(backends) / sizeof(backends[0]); j++)
			failed += !run_case(&cases[i], backends[j]);
	if (failed)
		FAIL("%d case(s) failed (see above)", failed);
	return T_EXIT_PASS;
}
