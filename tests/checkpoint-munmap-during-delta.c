/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * munmap of part of the memory while a live checkpoint's delta is being
 * written neither kills the process nor yields a wrong delta.  The delta's
 * background writer and the copy-before-write read the program's pages
 * while it runs, and the kernel reports an munmap (UNMAP) only once the
 * memory has gone: a plain copy of a page gone was a SIGSEGV.
 *
 * So each run ends one of two ways: the chain (base + delta) holds every
 * page exactly as at the delta's instant, or uffd_ckpt_wait() answers
 * -EFAULT and no delta file is left.
 *
 * A 16 MiB region, each page with a pattern of its own; a base; then
 * every page rewritten with another pattern (the delta holds them all);
 * after the delta's instant a thread keeps writing to the first quarter
 * (its faults save pages) while the main thread unmaps, right after
 * uffd_ckpt_begin() returns:
 *   tail     the last quarter;
 *   hole     1 MiB in the middle;
 *   later    the second quarter, 5 ms later;
 *   rest     everything but the first quarter.
 * Each case 3 times, each run in a child of its own (a crash fails it).
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/checkpoint.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/snap-mm.h"

#define NPAGES	4096
#define BASE	21
#define SEED	31

struct mm_case {
	const char *name;
	size_t first, count;	/* pages unmapped */
	int delay_ms;
};

static char *area;
static const char *dir;

static int run(const void *arg, int k)
{
	const struct mm_case *c = arg;
	struct uffd_image_region reg = { 0, NPAGES * PAGE, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_ckpt_opts, o, .buffer_bytes = 1 << 20);
	const char *base = t_img_path(0, dir, "base.img");
	const char *delta = t_img_path(1, dir, "delta.img");
	struct uffd_ckpt *ck;
	struct t_snap_writer w;
	int ret;

	(void)k;
	area = t_map_anon(NPAGES * PAGE);
	t_snap_fill(area, NPAGES, BASE);
	reg.addr = (uintptr_t)area;
	ck = uffd_ckpt_new(&reg, 1, &o);
	if (!ck)
		FAIL("uffd_ckpt_new: %s", strerror(errno));
	CHECK_OK(uffd_ckpt_take(ck, base, NULL));
	t_snap_fill(area, NPAGES, SEED);
	CHECK_OK(uffd_ckpt_begin(ck, delta));
	t_snap_writer_start(&w, area, NPAGES / 4);
	if (c->delay_ms)
		t_sleep_ms(c->delay_ms);
	CHECK_EQ(munmap(area + c->first * PAGE, c->count * PAGE), 0);
	ret = uffd_ckpt_wait(ck, 20000, NULL);
	t_snap_writer_stop(&w);
	uffd_ckpt_free(ck);
	ret = t_snap_outcome(delta, ret, 0, NPAGES, SEED) ? T_SNAP_SAVED : T_SNAP_LOST;
	unlink(base);
	return ret;
}

int main(void)
{
	static const struct mm_case cases[] = {
		{ "tail", 3 * NPAGES / 4, NPAGES / 4, 0 },
		{ "hole", NPAGES / 2, 256, 0 },
		{ "later", NPAGES / 4, NPAGES / 4, 5 },
		{ "rest", NPAGES / 4, 3 * NPAGES / 4, 0 },
	};
	size_t i;

	t_require(UFFD_FEAT_WP_UNPOPULATED);
	dir = t_img_dir();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int saved = 0, lost = 0;

		t_snap_rounds(cases[i].name, run, &cases[i], 3, 30000, &saved, &lost);
		fprintf(stderr, "%-6s delta exactly the instant %d times, -EFAULT %d times\n",
			cases[i].name, saved, lost);
	}
	return T_EXIT_PASS;
}
