/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * munmap of part of a region while its snapshot is being written neither
 * kills the process nor yields a wrong image (issue 15, item 7: the
 * writer thread died of SIGSEGV reading the memory that went).
 *
 * The kernel reports an munmap (UNMAP) only once the memory has gone:
 * what was saved by then stays in the image, and a page with data not
 * saved yet is lost.  So each run ends one of two ways: the image holds
 * every page exactly as at the instant, the unmapped ones included, or
 * uffd_snap_wait() answers -EFAULT and no file is left.
 *
 * A 16 MiB region, each page with a pattern of its own; after the instant
 * a thread keeps writing to the first quarter (its faults save groups)
 * while the main thread unmaps, right after uffd_snap_begin() returns:
 *   tail     the last quarter;
 *   hole     1 MiB in the middle;
 *   later    the second quarter, 5 ms later;
 *   rest     everything but the first quarter;
 *   straddle from page 1000 on, the writer writing pages below 1000: the
 *            fault of a write to pages 960-999 saves their 64-page group,
 *            whose last 24 pages are going (now, or 1 ms later).
 * Each case 3 times, each run in a child of its own (a crash fails it);
 * and all of it again with the faults resolved in the writing thread
 * (in_thread), whose copies are memcpy under a guard - unguarded, a page
 * of the group unmapped meanwhile would kill the process.
 */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/snap-mm.h"

#define NPAGES	4096
#define SEED	11

struct mm_case {
	const char *name;
	size_t first, count;	/* pages unmapped */
	int delay_ms;
	size_t written;		/* pages the writer writes: 0, NPAGES / 4 */
};

static char *area;
static int run(const struct mm_case *c, bool in_thread, const char *path)
{
	struct uffd_image_region reg = { 0, NPAGES * PAGE, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .buffer_bytes = 1 << 20, .in_thread = in_thread);
	struct uffd_snap *s;
	struct t_snap_writer w;
	int ret;

	area = t_map_anon(NPAGES * PAGE);
	t_snap_fill(area, NPAGES, SEED);
	reg.addr = (uintptr_t)area;
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	t_snap_writer_start(&w, area, c->written ? c->written : NPAGES / 4);
	if (c->delay_ms)
		t_sleep_ms(c->delay_ms);
	CHECK_EQ(munmap(area + c->first * PAGE, c->count * PAGE), 0);
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

	return run(mc->c, mc->in_thread, t_img_path(0, dir, "munmap.img"));
}

int main(void)
{
	static const struct mm_case cases[] = {
		{ "tail", 3 * NPAGES / 4, NPAGES / 4, 0, 0 },
		{ "hole", NPAGES / 2, 256, 0, 0 },
		{ "later", NPAGES / 4, NPAGES / 4, 5, 0 },
		{ "rest", NPAGES / 4, 3 * NPAGES / 4, 0, 0 },
		{ "straddle", 1000, NPAGES - 1000, 0, 1000 },
		{ "straddle 1 ms", 1000, NPAGES - 1000, 1, 1000 },
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
		fprintf(stderr, "%-13s %-9s image exactly the instant %d times, -EFAULT %d times\n",
			c->name, in_thread ? "in-thread" : "", saved, lost);
	}
	return T_EXIT_PASS;
}
