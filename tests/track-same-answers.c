/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every dirty-tracking backend gives the same answers.  One deterministic
 * workload on a 256-page private anonymous range (half of it populated
 * before tracking starts, half never touched): rounds of writes to a
 * pseudo-random set of pages (some written twice, the first and last page
 * included), each round collected as ranges and as a bitmap without
 * UFFD_TRACK_REARM - the pages stay reported and accumulate over rounds -
 * and every third round (alternately as ranges and as a bitmap) with it,
 * after which a collect reports nothing.  Each backend must report exactly
 * the pages written since the last re-arm, in both forms, and its counters
 * must add up: collects, pages_reported (the sum of what was reported),
 * write_faults (SYNC_WP, MPROTECT: one per page per arming; 0 otherwise).
 *
 * SYNC_WP runs twice: as by default, and with its faults resolved in the
 * writing thread (in_thread), which must answer the same.
 *
 * A backend this machine offers must be available: WP_ASYNC when the probes
 * say PAGEMAP_SCAN and WP_ASYNC, SYNC_WP when private anonymous memory can
 * be registered for write-protect, MPROTECT always (it needs nothing from
 * the kernel), SOFT_DIRTY when the soft-dirty probe says yes.  A backend
 * not offered is skipped with a note on stderr.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define NR_PAGES	256
#define NR_ROUNDS	10
#define REARM_EVERY	3	/* rounds 2, 5, 8 collect with REARM */
#define EMPTY_ROUND	4	/* writes nothing */

static char *area;
static bool want[NR_PAGES];	/* written since the last re-arm */
static uint64_t rng;

static struct {
	uint64_t collects, pages_reported, first_writes;
} expect;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out (a write or collect hung)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static const char *name_of(enum uffd_track_backend b)
{
	const char *n = uffd_track_backend_name(b);

	return n ? n : "?";
}

static void write_page(unsigned pg, char value)
{
	size_t off = next_rand() % PAGE;

	((volatile char *)area)[pg * PAGE + off] = value;
	if (!want[pg])
		expect.first_writes++;
	want[pg] = true;
}

static uint64_t want_count(void)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < NR_PAGES; i++)
		n += want[i];
	return n;
}

static void dump_want(void)
{
	int i;

	fprintf(stderr, "  want pages:");
	for (i = 0; i < NR_PAGES; i++)
		if (want[i])
			fprintf(stderr, " %d", i);
	fprintf(stderr, "\n");
}

/* Collect as ranges: exactly the runs of want[], merged, in order. */
static void expect_ranges(struct uffd_tracker *t, unsigned flags, const char *be,
			  int round)
{
	struct uffd_track_result res = { 0 };
	size_t i, n = 0;
	int pg = 0, ret;

	ret = uffd_track_collect(t, flags, &res);
	expect.collects++;
	if (ret)
		FAIL("%s round %d: collect(%#x) = %d (%s)", be, round, flags, ret,
		     t_errname(ret));
	while (pg < NR_PAGES) {
		int start;

		if (!want[pg]) {
			pg++;
			continue;
		}
		for (start = pg; pg < NR_PAGES && want[pg]; pg++)
			;
		if (n >= res.nranges || res.ranges[n].start != (uintptr_t)(area + start * PAGE) ||
		    res.ranges[n].end != (uintptr_t)(area + pg * PAGE)) {
			for (i = 0; i < res.nranges; i++)
				fprintf(stderr, "  got [%" PRId64 ", %" PRId64 ")\n",
					(int64_t)(res.ranges[i].start - (uintptr_t)area) / (int64_t)PAGE,
					(int64_t)(res.ranges[i].end - (uintptr_t)area) / (int64_t)PAGE);
			dump_want();
			FAIL("%s round %d flags %#x: range %zu is not [%d, %d)", be, round,
			     flags, n, start, pg);
		}
		n++;
	}
	if (res.nranges != n) {
		dump_want();
		FAIL("%s round %d flags %#x: %zu ranges, want %zu", be, round, flags,
		     res.nranges, n);
	}
	if (res.pages != want_count())
		FAIL("%s round %d: result.pages %" PRIu64 ", want %" PRIu64, be, round,
		     res.pages, want_count());
	expect.pages_reported += res.pages;
	uffd_track_result_free(&res);
}

/* Collect as a bitmap: bit i set exactly when page i is in want[]. */
static void expect_bitmap(struct uffd_tracker *t, unsigned flags, const char *be,
			  int round)
{
	uint64_t bm[NR_PAGES / 64 + 1], pages = ~0ULL;
	int i, ret;

	memset(bm, 0xa5, sizeof(bm));	/* the collect must clear stale bits */
	ret = uffd_track_collect_bitmap(t, flags, bm, NR_PAGES, &pages);
	expect.collects++;
	if (ret)
		FAIL("%s round %d: collect_bitmap(%#x) = %d (%s)", be, round, flags,
		     ret, t_errname(ret));
	for (i = 0; i < NR_PAGES; i++) {
		bool got = bm[i / 64] >> (i % 64) & 1;

		if (got != want[i]) {
			dump_want();
			FAIL("%s round %d flags %#x: bit %d is %d, want %d", be, round,
			     flags, i, got, want[i]);
		}
	}
	if (pages != want_count())
		FAIL("%s round %d: *pages %" PRIu64 ", want %" PRIu64, be, round, pages,
		     want_count());
	expect.pages_reported += pages;
}

static void check_stats(struct uffd_tracker *t, enum uffd_track_backend b)
{
	struct uffd_track_stats s;
	bool faults = b == UFFD_TRACK_SYNC_WP || b == UFFD_TRACK_MPROTECT;

	CHECK_OK(uffd_track_stats(t, &s));
	CHECK_EQ(s.backend, b);
	CHECK_EQ(s.tracked_bytes, NR_PAGES * PAGE);
	CHECK_EQ(s.collects, expect.collects);
	CHECK_EQ(s.pages_reported, expect.pages_reported);
	CHECK_EQ(s.write_faults, faults ? expect.first_writes : 0);
	CHECK_EQ(s.removed_pages, 0);
	CHECK_EQ(s.overflowed, false);
}

/* The workload on one backend; false if the backend is not available. */
static bool run_backend(enum uffd_track_backend b, bool in_thread)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .in_thread = in_thread);
	const char *be = in_thread ? "sync-wp in-thread" : name_of(b);
	struct uffd_tracker *t;
	int round, i, n;

	t = uffd_track_new(&o);
	if (!t) {
		if (errno != EOPNOTSUPP)
			FAIL("%s: uffd_track_new: errno %d (%s), want a tracker or EOPNOTSUPP",
			     be, errno, strerrorname_np(errno));
		return false;
	}
	CHECK_EQ(uffd_track_backend_of(t), b);
	area = t_map_anon(NR_PAGES * PAGE);
	for (i = 0; i < NR_PAGES / 2; i++)
		t_fill(area + i * PAGE, PAGE, i);
	memset(want, 0, sizeof(want));
	memset(&expect, 0, sizeof(expect));
	rng = 0x9e3779b97f4a7c15ULL;
	CHECK_OK(uffd_track_add(t, area, NR_PAGES * PAGE));
	CHECK_EQ(uffd_track_pages(t), NR_PAGES);
	expect_ranges(t, 0, be, -1);	/* nothing written yet */

	for (round = 0; round < NR_ROUNDS; round++) {
		n = round == EMPTY_ROUND ? 0 : 1 + next_rand() % 40;
		if (round == 0) {
			write_page(0, 1);
			write_page(NR_PAGES - 1, 1);
		}
		for (i = 0; i < n; i++) {
			unsigned pg = next_rand() % NR_PAGES;

			write_page(pg, (char)(round + 2));
			if (i % 5 == 0)	/* twice: still one page */
				write_page(pg, (char)(round + 3));
		}
		expect_ranges(t, 0, be, round);
		expect_bitmap(t, 0, be, round);
		if (round % REARM_EVERY != REARM_EVERY - 1)
			continue;
		if (round / REARM_EVERY % 2)
			expect_bitmap(t, UFFD_TRACK_REARM, be, round);
		else
			expect_ranges(t, UFFD_TRACK_REARM, be, round);
		memset(want, 0, sizeof(want));
		expect_ranges(t, 0, be, round);
		expect_bitmap(t, 0, be, round);
	}
	check_stats(t, b);
	uffd_track_free(t);
	munmap(area, NR_PAGES * PAGE);
	fprintf(stderr, "%s: %" PRIu64 " collects agree\n", be, expect.collects);
	return true;
}

static bool offered(enum uffd_track_backend b)
{
	switch (b) {
	case UFFD_TRACK_WP_ASYNC:
		return uffd_feature_supported(UFFD_FEAT_PAGEMAP_SCAN) == 1 &&
		       uffd_feature_supported(UFFD_FEAT_WP_ASYNC) == 1;
	case UFFD_TRACK_SYNC_WP:
		return uffd_feature_supported(UFFD_FEAT_REG_WP_ANON) == 1;
	case UFFD_TRACK_SOFT_DIRTY:
		return uffd_feature_supported(UFFD_FEAT_SOFT_DIRTY) == 1;
	case UFFD_TRACK_MPROTECT:
		return true;
	default:
		return false;
	}
}

int main(void)
{
	static const enum uffd_track_backend all[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP, UFFD_TRACK_SOFT_DIRTY,
		UFFD_TRACK_MPROTECT,
	};
	const char *missing = NULL;
	size_t i;

	signal(SIGALRM, on_timeout);
	alarm(20);
	for (i = 0; i <= sizeof(all) / sizeof(all[0]); i++) {
		/* the last: SYNC_WP in-thread */
		enum uffd_track_backend b = i < sizeof(all) / sizeof(all[0]) ? all[i] :
					    UFFD_TRACK_SYNC_WP;

		if (i == sizeof(all) / sizeof(all[0]) && !t_in_thread_ok())
			continue;
		if (run_backend(b, i == sizeof(all) / sizeof(all[0])))
			continue;
		if (offered(b)) {
			fprintf(stderr, "%s: not available (EOPNOTSUPP) although this machine offers it\n",
				name_of(b));
			missing = name_of(b);
		} else {
			fprintf(stderr, "note: %s not available here (EOPNOTSUPP), skipped\n",
				name_of(b));
		}
	}
	if (missing)
		FAIL("backend %s unavailable (see above)", missing);
	return T_EXIT_PASS;
}
