/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fault saves its page's whole group (64 pages of 4 KiB): into the
 * buffer as far as it has free slots, the rest written to the image from
 * memory.  Here both happen inside one group, and the last group is cut
 * short by the end of the region: the table is 32 MiB and 37 pages (the
 * last group holds 37), the buffer 4 pages, and 2 checker writers touch
 * every page.  The image must be exactly the instant and every present
 * page saved once, every time.  That the faults both copied and wrote
 * depends on the writers running while pages are protected, which the
 * scheduler decides: a snapshot where they did not is taken again (5
 * tries), and then the buffer's peak must be its 4 slots.
 */
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/checker-pause.h"
#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE	((32UL << 20) + 37 * PAGE)
#define TRIES	5
#define SLOTS	4

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 11,
		  .fill = 1.0);
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .regions = &reg, .nregions = 1,
		  .buffer_bytes = SLOTS * PAGE,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb);
	struct uffd_checker *c;
	const char *path;
	int try;

	t_require(UFFD_FEAT_REG_WP_ANON);
	path = t_img_path(0, t_img_dir(), "ragged.img");
	c = t_checker_table(&co, UFFD_IMAGE_ANON, &reg);
	so.path = path;
	so.arg = c;
	for (try = 0; try < TRIES; try++) {
		struct uffd_snap_stats st;

		t_snapshot_table(c, &so, 10000, &st);
		t_check_image_instant(c, path);
		CHECK_OK(unlink(path));
		if (st.copied_before_write && st.sync_writes) {
			CHECK_EQ(st.buffer_peak_bytes, SLOTS * PAGE);
			break;
		}
		fprintf(stderr, "try %d: %" PRIu64 " copied, %" PRIu64 " written in faults, %" PRIu64
			" streamed: the writers hardly ran, again\n", try + 1,
			st.copied_before_write, st.sync_writes, st.written_background);
	}
	if (try == TRIES)
		FAIL("in %d snapshots the faults never both copied and wrote", TRIES);
	uffd_checker_free(c);
	return T_EXIT_PASS;
}
