// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Read-ahead counts as mapped only the pages it mapped.  The kernel copies
 * into one mapping at a time: a run of pages that crosses from the map
 * into a hole the program unmapped, or from one of the map's mappings into
 * the next (an mprotect of part of it splits it), is refused whole with
 * ENOENT, nothing copied.  The pager then maps each page of the run alone:
 * those still the map's are mapped and ACTIVE, those in the hole stay
 * EMPTY, and nothing is read twice for it.  Exactly: every page the scan
 * reads is read from the store once, the hole's pages are never ACTIVE,
 * and the resident bytes are those of the pages mapped.
 *
 * The maps' buffers are large enough that nothing is evicted, so a page
 * taken for mapped wrongly would stay so to the end; and in the first and
 * third cases the stream never goes asynchronous (its window would grow to
 * 85 pages, the map has 64), so its windows are exactly 1, 4, 8, 16, 32
 * and the last 3 pages: read-ahead 0 + 3 + 7 + 15 + 31 + 2 = 58 pages.
 *
 * Each case runs in both modes in a child of its own with a deadline; a
 * case's name as argument runs only it.  After each, the pager's
 * invariants hold (lib/pager-cases.h).
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/pager-cases.h"
#include "pager/pager_internal.h"

#define NPAGES		64
#define SEED		13
#define DEADLINE_MS	20000
#define BIG_BUFFER	(2048 * PAGE)	/* windows up to 85 pages, no eviction */
#define HOLE_AT		20		/* inside the fourth window, [13, 29) */
#define HOLE_N		4
#define WINDOWS_AHEAD	58		/* read ahead of the faulting pages */

#define STREAM_PAGES	2048		/* asynchronous from 850 on (windows of 341) */
#define STRETCH_AT	1024		/* inside its first group, [850, 1532) */
#define STRETCH_N	64

static enum page_state state_of(const struct t_pager_env *e, size_t pg)
{
	enum page_state s;

	pthread_mutex_lock(&e->p->lock);
	s = e->p->maps->state[pg];
	pthread_mutex_unlock(&e->p->lock);
	return s;
}

/* Every page outside [gone, gone + n) read in order, as the store has it. */
static void scan_around(struct t_pager_env *e, size_t gone, size_t n)
{
	size_t pg;

	for (pg = 0; pg < e->npages; pg++)
		if (pg < gone || pg >= gone + n)
			t_pager_check_page(e, pg, "a page of the scan");
}

/*
 * Once the pager's threads are done: the pages outside [gone, gone + n)
 * are ACTIVE and were read once each, those inside are EMPTY, and the
 * resident bytes are the pages mapped.
 */
static void check_mapped_around(struct t_pager_env *e, size_t gone, size_t n)
{
	struct uffd_pager_stats st;
	size_t pg;

	t_pager_check_invariants(e->p);
	for (pg = 0; pg < e->npages; pg++) {
		bool in_gone = pg >= gone && pg < gone + n;

		if (state_of(e, pg) != (in_gone ? P_EMPTY : P_ACTIVE))
			FAIL("page %zu: state %d, want %d", pg, state_of(e, pg),
			     in_gone ? P_EMPTY : P_ACTIVE);
		if (!in_gone && t_reads(e->ts, pg) != 1)
			FAIL("page %zu read %u times, want once", pg, t_reads(e->ts, pg));
	}
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK_EQ(st.resident_bytes, (e->npages - n) * PAGE);
	CHECK_EQ(st.read_errors, 0);
}

/* The map's windows, and what they read, with no page of it gone: each
 * page once. */
static void check_windows(const struct t_pager_env *e)
{
	struct uffd_pager_stats st;

	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK_EQ(st.fills, NPAGES);
	CHECK_EQ(st.read_ahead, WINDOWS_AHEAD);
	CHECK_EQ(t_store_reads(e->ts), NPAGES);
}

/*
 * The program unmapped [20, 24) before it reads the rest in order: the
 * window [13, 29) runs into the hole.  Its pages were read (the read comes
 * before the copy), once, and only those around the hole are mapped.
 */
static void window_into_hole(struct t_pager_env *e)
{
	size_t pg;

	CHECK_OK(munmap(e->map + HOLE_AT * PAGE, HOLE_N * PAGE));
	scan_around(e, HOLE_AT, HOLE_N);
	check_mapped_around(e, HOLE_AT, HOLE_N);
	for (pg = HOLE_AT; pg < HOLE_AT + HOLE_N; pg++)
		CHECK_EQ(t_reads(e->ts, pg), 1);
	check_windows(e);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/*
 * The same with nothing unmapped: mprotect makes [20, 24) a mapping of its
 * own, read-only, between two read-write ones.  Every page of the window
 * is the map's, and mapped, once.
 */
static void window_across_mappings(struct t_pager_env *e)
{
	CHECK_OK(mprotect(e->map + HOLE_AT * PAGE, HOLE_N * PAGE, PROT_READ));
	scan_around(e, 0, 0);
	check_mapped_around(e, 0, 0);
	check_windows(e);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/*
 * A stream gone asynchronous: the readers' groups, and the program's own
 * windows where it outruns them, run into a stretch of 64 pages the
 * program unmapped.  Whichever reads the pages around it reads them once;
 * the stretch's may be read more than once (each fill that meets them
 * leaves them EMPTY), or not at all (a fault past it trims the readers'
 * request), but never mapped.
 */
static void groups_into_hole(struct t_pager_env *e)
{
	struct uffd_pager_stats st;

	CHECK_OK(munmap(e->map + STRETCH_AT * PAGE, STRETCH_N * PAGE));
	scan_around(e, STRETCH_AT, STRETCH_N);
	check_mapped_around(e, STRETCH_AT, STRETCH_N);
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK(st.read_ahead > 0);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), 0);
}

int main(int argc, char **argv)
{
	static const struct t_pager_case cases[] = {
		T_PAGER_CASE(window_into_hole, .buffer = BIG_BUFFER, .read_ahead = true),
		T_PAGER_CASE(window_across_mappings, .buffer = BIG_BUFFER, .read_ahead = true),
		T_PAGER_CASE(groups_into_hole, .npages = STREAM_PAGES, .read_ahead = true),
	};

	return t_pager_run_cases(cases, sizeof(cases) / sizeof(cases[0]), NPAGES, SEED,
				 DEADLINE_MS, argc > 1 ? argv[1] : NULL);
}
