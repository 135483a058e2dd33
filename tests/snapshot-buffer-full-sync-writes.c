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

#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE	(64UL << 20)

int main(void)
{
	struct uffd_checker_opts co = { .bytes = TABLE, .writers = 2, .seed = 9,
					.fill = 1.0 };
	struct uffd_image_region reg;
	struct uffd_snap_opts so = { .regions = &reg, .nregions = 1, .buffer_bytes = PAGE,
				     .pause = uffd_checker_pause_cb,
				     .resume = uffd_checker_resume_cb };
	struct uffd_image_chain *chain;
	struct uffd_snap_stats st;
	struct uffd_checker *c;
	struct uffd_snap *s;
	const char *path;
	char msg[256];

	t_require(UFFD_FEAT_REG_WP_ANON);
	path = t_img_path(0, t_img_dir(), "sync.img");
	c = uffd_checker_new(&co);
	if (!c)
		FAIL("uffd_checker_new: %s", strerror(errno));
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), TABLE, PAGE,
					  UFFD_IMAGE_ANON };
	so.path = path;
	so.arg = c;
	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(10);

	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 4000));
	CHECK_OK(uffd_snap_stats(s, &st));
	uffd_checker_pause(c);
	CHECK(st.done);
	CHECK_EQ(st.error, 0);
	CHECK_EQ(st.pages, TABLE / PAGE);
	CHECK_EQ(st.pages_present, TABLE / PAGE);
	CHECK_EQ(st.zero_pages, 0);
	CHECK_EQ(st.copied_before_write + st.written_background + st.sync_writes,
		 st.pages_present);
	if (st.sync_writes == 0)
		FAIL("no synchronous write with a one-page buffer (%" PRIu64 " copied "
		     "before a write, %" PRIu64 " streamed)", st.copied_before_write,
		     st.written_background);
	CHECK(st.copied_before_write > 0);
	CHECK_EQ(st.buffer_peak_bytes, PAGE);
	uffd_snap_free(s);

	chain = uffd_image_chain_open(path, NULL);
	if (!chain)
		FAIL("uffd_image_chain_open: %s", strerror(errno));
	CHECK_OK(uffd_image_verify(uffd_image_chain_get(chain, 0), NULL));
	if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
		FAIL("image is not the instant: %s", msg);
	uffd_image_chain_close(chain);
	uffd_checker_free(c);
	return T_EXIT_PASS;
}
