// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A program that unmaps part of a pager map itself - munmap(2) of a run of
 * it, mremap(2) that moves a run elsewhere or shrinks the map - takes
 * those pages from the pager without telling it (no UNMAP or REMAP
 * event).  What it had written to those mapped then and not yet had
 * written back goes with them: the store keeps what it had there,
 * nothing is written over it.  The rest of the map is served as before, and a flush, an evict,
 * eviction through a small buffer, read-ahead running into the hole and
 * the unmap neither crash (copying a page that is not mapped) nor hang,
 * nor report an error for the pages the program took; a read-only map the
 * same.  Memory mapped in the hole afterwards - the program's, or the
 * pager's own buffers - is not the map's: nothing reads it as the map's
 * pages, zaps it, or unmaps it.  A prefetch of a range that is not mapped
 * any more fails with ENOENT.  A write-back batch whose span (more than 64
 * pages) crosses the program's memory in the hole asks each of its pages
 * alone whether it is still the map's, and writes exactly those.
 *
 * Each case runs in both modes in a child of its own with a deadline; a
 * case's name as argument runs only it.  After each, the pager's
 * invariants hold (lib/pager-cases.h).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/pager-cases.h"

#define NPAGES		64
#define LEN		(NPAGES * PAGE)
#define SEED		11
#define SMALL_BUFFER	(16 * PAGE)
#define DEADLINE_MS	20000
#define GONE_AT		4		/* the run the program takes */
#define GONE_N		4

static uint64_t word_at(const char *a)
{
	return *(volatile const uint64_t *)a;
}

static bool in_gone_run(size_t pg)
{
	return pg >= GONE_AT && pg < GONE_AT + GONE_N;
}

/* Word 8 of page pg written (the page dirty). */
static void touch_write(struct t_pager_env *e, size_t pg)
{
	*(volatile uint64_t *)(e->map + pg * PAGE + 64) = 0x5000 + pg;
}

/* Page pg touched: written if pg % 3 == 0, else read. */
static void touch(struct t_pager_env *e, size_t pg)
{
	if (pg % 3 == 0)
		touch_write(e, pg);
	else
		(void)word_at(e->map + pg * PAGE);
}

/* Every page touched, the run the program takes (while it is there)
 * among them. */
static void touch_all(struct t_pager_env *e, bool run_too)
{
	size_t pg;

	for (pg = 0; pg < NPAGES; pg++)
		if (run_too || !in_gone_run(pg))
			touch(e, pg);
}

/*
 * The store after a flush: the written pages outside the gone run hold
 * their writes, every other word is as it was - but with kept, a page of
 * the run that was written may hold its write too: it had been
 * deactivated, its copy in the shadow, when the run went (then it is
 * written back once).
 */
static void check_store_kept(const struct t_pager_env *e, bool kept)
{
	size_t pg, k;

	for (pg = 0; pg < NPAGES; pg++) {
		bool written = pg % 3 == 0 && !in_gone_run(pg);

		if (kept && pg % 3 == 0 && in_gone_run(pg) && t_writes(e->ts, pg) == 1)
			written = true;
		for (k = 0; k < PAGE; k += 8) {
			uint64_t want = t_word(pg * PAGE + k, SEED);

			if (k == 64 && written)
				want = 0x5000 + pg;
			if (*(uint64_t *)(e->ts->data + pg * PAGE + k) != want)
				FAIL("the store's page %zu, word %zu: %#llx, want %#llx", pg,
				     k / 8, (unsigned long long)*(uint64_t *)(e->ts->data +
									pg * PAGE + k),
				     (unsigned long long)want);
		}
		if (in_gone_run(pg))
			CHECK_EQ(t_writes(e->ts, pg), written);
	}
}

static void check_store(const struct t_pager_env *e)
{
	check_store_kept(e, false);
}

/* The pages outside the gone run read as written (or as the store). */
static void check_rest(const struct t_pager_env *e)
{
	size_t pg;

	for (pg = 0; pg < NPAGES; pg++) {
		if (in_gone_run(pg))
			continue;
		if (pg % 3 == 0)
			CHECK_EQ(word_at(e->map + pg * PAGE + 64), 0x5000 + pg);
		else
			t_pager_check_page(e, pg, "a page outside the run unmapped");
	}
}

static void munmap_run(struct t_pager_env *e)
{
	CHECK_OK(munmap(e->map + GONE_AT * PAGE, GONE_N * PAGE));
}

/* munmap of a run, then flush, evict of the rest, unmap. */
static void munmap_middle(struct t_pager_env *e)
{
	touch_all(e, true);
	munmap_run(e);
	check_rest(e);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	check_store(e);
	CHECK_OK(uffd_pager_evict(e->p, e->map, LEN));
	check_rest(e);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	check_store(e);
}

/* munmap of a run, then the unmap at once: no error, nothing written
 * for it. */
static void munmap_then_unmap(struct t_pager_env *e)
{
	touch_all(e, true);
	munmap_run(e);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	check_store(e);
}

/* The whole map unmapped by the program: the pager's unmap still works. */
static void munmap_whole(struct t_pager_env *e)
{
	touch_all(e, true);
	CHECK_OK(munmap(e->map, LEN));
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/*
 * Through a buffer of 16 pages, the hand and eviction meet the run: its
 * pages are touched last, so most are mapped when it goes, but the hand
 * may have taken some to the shadow by then.
 */
static void munmap_under_eviction(struct t_pager_env *e)
{
	size_t pg, round;

	touch_all(e, false);
	for (pg = GONE_AT; pg < GONE_AT + GONE_N; pg++)
		touch(e, pg);
	munmap_run(e);
	for (round = 0; round < 3; round++)
		touch_all(e, false);
	check_rest(e);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	check_store_kept(e, true);
}

/*
 * The program maps memory of its own in the hole: the hand, a flush, an
 * evict and the unmap of the map leave it alone (neither read as the
 * map's pages nor zapped), and the unmap unmaps the rest.
 */
static void munmap_then_map_there(struct t_pager_env *e)
{
	char *own, *hole = e->map + GONE_AT * PAGE;
	size_t pg, round;

	touch_all(e, true);
	munmap_run(e);
	own = mmap(hole, GONE_N * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(own == hole);
	memset(own, 0x3c, GONE_N * PAGE);
	for (round = 0; round < 3; round++)
		touch_all(e, false);
	check_rest(e);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	check_store_kept(e, true);
	CHECK_OK(uffd_pager_evict(e->p, e->map, LEN));
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	check_store_kept(e, true);
	for (pg = 0; pg < GONE_N * PAGE; pg++)
		if (own[pg] != 0x3c)
			FAIL("the program's own memory at byte %zu: %#x", pg, own[pg]);
	/* The rest of the map went: its range can be had again. */
	CHECK(mmap(hole - GONE_AT * PAGE, GONE_AT * PAGE, PROT_READ,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) ==
	      hole - GONE_AT * PAGE);
	munmap(hole - GONE_AT * PAGE, GONE_AT * PAGE);
	munmap(own, GONE_N * PAGE);
}

/* A read-only map through a buffer of 16 pages: the run is forgotten as
 * the hand meets it, the rest read as before. */
static void munmap_read_only(struct t_pager_env *e)
{
	size_t pg, round;

	for (pg = 0; pg < NPAGES; pg++)
		t_pager_check_page(e, pg, "a page of a read-only map");
	munmap_run(e);
	for (round = 0; round < 3; round++)
		for (pg = 0; pg < NPAGES; pg++)
			if (!in_gone_run(pg))
				t_pager_check_page(e, pg, "a page of a read-only map");
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/* A prefetch of the pages that are not mapped any more. */
static void prefetch_unmapped(struct t_pager_env *e)
{
	struct uffd_pager_range r = { e->map + GONE_AT * PAGE, GONE_N * PAGE };

	munmap_run(e);
	CHECK_EQ(uffd_pager_prefetch(e->p, &r, 1, 0), -ENOENT);
	touch_all(e, false);
	check_rest(e);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	check_store(e);
}

/* mremap moves the run elsewhere: it takes what was mapped with it. */
static void mremap_move_run(struct t_pager_env *e)
{
	char *to = mmap(NULL, GONE_N * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *moved;

	CHECK(to != MAP_FAILED);
	touch_all(e, true);
	moved = mremap(e->map + GONE_AT * PAGE, GONE_N * PAGE, GONE_N * PAGE,
		       MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(moved == to);
	/* Page 6 (6 % 3 == 0) was written, page 5 read. */
	CHECK_EQ(word_at(moved + (6 - GONE_AT) * PAGE + 64), 0x5006);
	CHECK_EQ(word_at(moved + (5 - GONE_AT) * PAGE), t_word(5 * PAGE, SEED));
	check_rest(e);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	check_store(e);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	check_store(e);
	munmap(moved, GONE_N * PAGE);
}

/* mremap shrinks the map to its first half. */
static void mremap_shrink(struct t_pager_env *e)
{
	size_t pg;

	touch_all(e, true);
	CHECK(mremap(e->map, LEN, LEN / 2, 0) == e->map);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	for (pg = 0; pg < NPAGES; pg++)
		CHECK_EQ(t_writes(e->ts, pg), pg < NPAGES / 2 && pg % 3 == 0);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	for (pg = 0; pg < NPAGES; pg++)
		CHECK_EQ(t_writes(e->ts, pg), pg < NPAGES / 2 && pg % 3 == 0);
}

/*
 * A sequential scan, read ahead through a buffer of 256 pages, over a map
 * of which the program unmapped a stretch of 64 pages before it: the scan
 * skips the stretch, read-ahead runs into it (its fills there find nothing
 * to fill), and the pages read there are forgotten, never zapped.  The
 * rest reads the store, and the unmap unmaps the rest.
 */
#define STREAM_PAGES	2048
#define STREAM_BUFFER	(256 * PAGE)
#define STRETCH_AT	1024
#define STRETCH_N	64

static void munmap_ahead_of_a_stream(struct t_pager_env *e)
{
	struct uffd_pager_stats st;
	size_t pg;

	CHECK_OK(munmap(e->map + STRETCH_AT * PAGE, STRETCH_N * PAGE));
	for (pg = 0; pg < e->npages; pg++)
		if (pg < STRETCH_AT || pg >= STRETCH_AT + STRETCH_N)
			t_pager_check_page(e, pg, "a page of the scan");
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK(st.read_ahead > 0);
	CHECK(st.resident_peak_bytes <= STREAM_BUFFER);
	t_pager_check_invariants(e->p);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/*
 * Every 8th page of 512 written - 64 pages, one write-back batch spanning
 * pages 0 to 504 - and the program unmaps [200, 216), which held two of
 * them, and maps memory of its own there.  The flush's protection over the
 * batch's span fails (ENOENT: that memory is not registered; a hole alone
 * would not fail it) and each page is asked alone: the two in the hole
 * are forgotten, the 62 others written once, page 320 (bit 40 of the
 * batch, 320 pages into its span) among them; the evict then drops every
 * page, writing nothing more, and the program's memory is left alone.
 */
#define SPARSE_PAGES	512
#define SPARSE_STEP	8
#define SPARSE_HOLE_AT	200
#define SPARSE_HOLE_N	16
#define SPARSE_WRITTEN	(SPARSE_PAGES / SPARSE_STEP - SPARSE_HOLE_N / SPARSE_STEP)

static void flush_sparse_across_hole(struct t_pager_env *e)
{
	char *own, *hole = e->map + SPARSE_HOLE_AT * PAGE;
	struct uffd_pager_stats st;
	size_t pg;

	for (pg = 0; pg < SPARSE_PAGES; pg += SPARSE_STEP)
		touch_write(e, pg);
	CHECK_OK(munmap(hole, SPARSE_HOLE_N * PAGE));
	own = mmap(hole, SPARSE_HOLE_N * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(own == hole);
	memset(own, 0x3c, SPARSE_HOLE_N * PAGE);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	for (pg = 0; pg < SPARSE_PAGES; pg++) {
		bool written = pg % SPARSE_STEP == 0 &&
			       (pg < SPARSE_HOLE_AT || pg >= SPARSE_HOLE_AT + SPARSE_HOLE_N);
		uint64_t word = *(uint64_t *)(e->ts->data + pg * PAGE + 64);

		CHECK_EQ(t_writes(e->ts, pg), written);
		CHECK_EQ(word, written ? 0x5000 + pg : t_word(pg * PAGE + 64, SEED));
	}
	CHECK_OK(uffd_pager_evict(e->p, e->map, SPARSE_PAGES * PAGE));
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK_EQ(st.writebacks, SPARSE_WRITTEN);
	CHECK_EQ(st.resident_bytes, 0);
	CHECK_EQ(t_store_writes(e->ts), SPARSE_WRITTEN);
	CHECK_EQ(word_at(e->map + 320 * PAGE + 64), 0x5000 + 320);
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_store_writes(e->ts), SPARSE_WRITTEN);
	for (pg = 0; pg < SPARSE_HOLE_N * PAGE; pg++)
		if (own[pg] != 0x3c)
			FAIL("the program's own memory at byte %zu: %#x", pg, own[pg]);
	CHECK_OK(munmap(own, SPARSE_HOLE_N * PAGE));
}

int main(int argc, char **argv)
{
	static const struct t_pager_case cases[] = {
		T_PAGER_CASE(munmap_middle),
		T_PAGER_CASE(munmap_then_unmap),
		T_PAGER_CASE(munmap_whole),
		T_PAGER_CASE(munmap_under_eviction, .buffer = SMALL_BUFFER),
		T_PAGER_CASE(munmap_read_only, .buffer = SMALL_BUFFER, .read_only = true),
		T_PAGER_CASE(munmap_then_map_there),
		T_PAGER_CASE(munmap_then_map_there, .buffer = SMALL_BUFFER),
		T_PAGER_CASE(munmap_ahead_of_a_stream, .npages = STREAM_PAGES,
			     .buffer = STREAM_BUFFER, .read_ahead = true),
		T_PAGER_CASE(prefetch_unmapped),
		T_PAGER_CASE(flush_sparse_across_hole, .npages = SPARSE_PAGES),
		T_PAGER_CASE(mremap_move_run),
		T_PAGER_CASE(mremap_shrink),
	};

	return t_pager_run_cases(cases, sizeof(cases) / sizeof(cases[0]), NPAGES, SEED,
				 DEADLINE_MS, argc > 1 ? argv[1] : NULL);
}
