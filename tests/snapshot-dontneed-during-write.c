/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MADV_DONTNEED of part of a region while its snapshot is being written:
 * the image holds those pages as they were at the instant, or the
 * snapshot fails with -EFAULT - never a success with zeros in their place
 * (issue 15, item 7: the image held zeros and the snapshot reported
 * success).  And the program sees what it asked for: the pages read as
 * zeros once madvise(2) has returned.
 *
 * The kernel zaps only once the REMOVE event has been read, so the
 * snapshot saves the pages not saved yet at once and keeps a copy only if
 * the page was still there when taken: usually every page is saved, and
 * the test prints how often.
 *
 * A 16 MiB region, each page with a pattern of its own; after the instant
 * a thread keeps writing to the first quarter (its faults save groups)
 * while the main thread DONTNEEDs, right after uffd_snap_begin() returns:
 *   tail     the last quarter;
 *   pages    8 single pages spread over the rest;
 *   later    the second quarter, 5 ms later;
 *   rest     everything but the first quarter.
 * Each case 3 times, each run in a child of its own (a crash fails it);
 * then all again with the faults resolved in the writing thread
 * (in_thread), the REMOVEs still applied by the handler's thread.
 */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/snap-mm.h"

#define NPAGES	4096
#define SEED	23

struct mm_case {
	const char *name;
	size_t first, count;	/* pages DONTNEEDed, in `pieces` pieces */
	int pieces;
	int delay_ms;
};

static char *area;
static int run(const struct mm_case *c, bool in_thread, const char *path)
{
	struct uffd_image_region reg = { 0, NPAGES * PAGE, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .buffer_bytes = 1 << 20, .in_thread = in_thread);
	size_t step = c->count / c->pieces, len = c->pieces > 1 ? 1 : step;
	struct uffd_snap *s;
	struct t_snap_writer w;
	int ret, i;

	area = t_map_anon(NPAGES * PAGE);
	t_snap_fill(area, NPAGES, SEED);
	reg.addr = (uintptr_t)area;
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	t_snap_writer_start(&w, area, NPAGES / 4);
	if (c->delay_ms)
		t_sleep_ms(c->delay_ms);
	for (i = 0; i < c->pieces; i++)
		CHECK_EQ(madvise(area + (c->first + i * step) * PAGE, len * PAGE, MADV_DONTNEED),
			 0);
	for (i = 0; i < c->pieces; i++)
		if (!t_is_zero(area + (c->first + i * step) * PAGE, len * PAGE))
			FAIL("case %s: piece %d does not read as zeros after MADV_DONTNEED",
			     c->name, i);
	ret = uffd_snap_wait(s, 20000);
	t_snap_writer_stop(&w);
	uffd_snap_free(s);
	return t_snap_outcome(path, ret, 0, NPAGES, SEED) ? T_SNAP_SAVED : T_SNAP_LOST;
}

static const char *dir;

/* A case, and the mode of the faults. */
struct mode_case {
	const struct mm_case *c;
	bool in_thread;
};

static int run_case(const void *arg, int k)
{
	const struct mode_case *mc = arg;

	return run(mc->c, mc->in_thread, t_img_path(0, dir, "dontneed.img"));
}

int main(void)
{
	static const struct mm_case cases[] = {
		{ "tail", 3 * NPAGES / 4, NPAGES / 4, 1, 0 },
		{ "pages", NPAGES / 4, 3 * NPAGES / 4, 8, 0 },
		{ "later", NPAGES / 4, NPAGES / 4, 1, 5 },
		{ "rest", NPAGES / 4, 3 * NPAGES / 4, 1, 0 },
	};
	const size_t ncases = sizeof(cases) / sizeof(cases[0]);
	size_t i, nruns;

	t_require(UFFD_FEAT_REG_WP_ANON);
	dir = t_img_dir();
	nruns = (t_in_thread_ok() ? 2 : 1) * ncases;
	for (i = 0; i < nruns; i++) {
		const struct mm_case *c = &cases[i % ncases];
		bool in_thread = i >= ncases;
		struct mode_case mc = { c, in_thread };
		int saved = 0, lost = 0;
		char what[64];

		snprintf(what, sizeof(what), "case %s%s", c->name,
			 in_thread ? " in-thread" : "");
		t_snap_rounds(what, run_case, &mc, 3, 30000, &saved, &lost);
		fprintf(stderr, "%-6s %-9s image exactly the instant %d times, -EFAULT %d times\n",
			c->name, in_thread ? "in-thread" : "", saved, lost);
	}
	return T_EXIT_PASS;
}
