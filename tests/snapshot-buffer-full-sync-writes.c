/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * When the copy-before-write buffer is full, the faulting write waits for
 * its page to be written to the file, and the image is still exactly the
 * instant.  The buffer is one page (buffer_bytes = 4096): the first page a
 * writer touches after the instant takes the only slot, which stays taken
 * until the writer thread drains it between two windows of 64 pages; the
 * 2 checker writers touch many pages meanwhile (64 MiB, every page filled,
 * so every page is data).  Then stats.sync_writes > 0, the buffer's peak
 * is that one page, every present page was saved exactly once (copied,
 * streamed or written synchronously), and the image verifies page by page
 * against the versions at the instant.
 */
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/checker-pause.h"
#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE	(64UL << 20)

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 9,
		  .fill = 1.0);
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .regions = &reg, .nregions = 1, .buffer_bytes = PAGE,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb);
	struct uffd_snap_stats st;
	struct uffd_checker *c;
	const char *path;

	t_require(UFFD_FEAT_REG_WP_ANON);
	path = t_img_path(0, t_img_dir(), "sync.img");
	c = t_checker_table(&co, UFFD_IMAGE_ANON, &reg);
	so.path = path;
	so.arg = c;
	t_snapshot_table(c, &so, 4000, &st);
	if (st.sync_writes == 0)
		FAIL("no synchronous write with a one-page buffer (%" PRIu64 " copied "
		     "before a write, %" PRIu64 " streamed)", st.copied_before_write,
		     st.written_background);
	CHECK(st.copied_before_write > 0);
	CHECK_EQ(st.buffer_peak_bytes, PAGE);

	t_check_image_instant(c, path);
	uffd_checker_free(c);
	return T_EXIT_PASS;
}
