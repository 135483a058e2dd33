// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread copy-before-write with a full buffer: the writing thread never
 * writes to the image itself (the image writer takes locks), it waits for
 * the background writer to free slots - its fault gives the access back to
 * fault again - and the image is still exactly the instant.  The buffer is
 * the smallest an in-thread snapshot takes (asked for one page, it holds
 * one 64-page group); 2 checker writers touch 64 MiB, every page data.
 * Then stats.buffer_waits > 0 and sync_writes == 0, the buffer's peak is
 * that group at most, every present page was saved exactly once (copied
 * or streamed), and the image verifies page by page against the versions
 * at the instant.
 */
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/checker-pause.h"
#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE	(64UL << 20)
#define GROUP	(64 * PAGE)

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 13,
					.fill = 1.0);
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .regions = &reg, .nregions = 1, .buffer_bytes = PAGE,
				     .pause = uffd_checker_pause_cb,
				     .resume = uffd_checker_resume_cb, .in_thread = true);
	struct uffd_snap_stats st;
	struct uffd_checker *c;
	const char *path;

	t_require(UFFD_FEAT_REG_WP_ANON);
	t_require_in_thread();
	path = t_img_path(0, t_img_dir(), "waits.img");
	c = t_checker_table(&co, UFFD_IMAGE_ANON, &reg);
	so.path = path;
	so.arg = c;
	t_snapshot_table(c, &so, 4000, &st);
	if (st.buffer_waits == 0)
		FAIL("no fault waited for the buffer (%" PRIu64 " copied before a write, %"
		     PRIu64 " streamed)", st.copied_before_write, st.written_background);
	CHECK_EQ(st.sync_writes, 0);
	CHECK(st.copied_before_write > 0);
	CHECK(st.buffer_peak_bytes <= GROUP);
	CHECK_EQ(st.copied_before_write + st.written_background, st.pages_present);

	t_check_image_instant(c, path);
	uffd_checker_free(c);
	return T_EXIT_PASS;
}
