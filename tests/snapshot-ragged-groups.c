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

#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE	((32UL << 20) + 37 * PAGE)
#define TRIES	5
#define SLOTS	4

int main(void)
{
	struct uffd_checker_opts co = { .bytes = TABLE, .writers = 2, .seed = 11,
					.fill = 1.0 };
	struct uffd_image_region reg;
	struct uffd_snap_opts so = { .regions = &reg, .nregions = 1,
				     .buffer_bytes = SLOTS * PAGE,
				     .pause = uffd_checker_pause_cb,
				     .resume = uffd_checker_resume_cb };
	struct uffd_checker *c;
	const char *path;
	int try;

	t_require(UFFD_FEAT_REG_WP_ANON);
	path = t_img_path(0, t_img_dir(), "ragged.img");
	c = uffd_checker_new(&co);
	if (!c)
		FAIL("uffd_checker_new: %s", strerror(errno));
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), TABLE, PAGE,
					  UFFD_IMAGE_ANON };
	so.path = path;
	so.arg = c;
	for (try = 0; try < TRIES; try++) {
		struct uffd_image_chain *chain;
		struct uffd_snap_stats st;
		struct uffd_snap *s;
		char msg[256];

		CHECK_OK(uffd_checker_start(c));
		t_sleep_ms(10);
		s = uffd_snap_begin(&so);
		if (!s)
			FAIL("uffd_snap_begin: %s", strerror(errno));
		CHECK_OK(uffd_snap_wait(s, 10000));
		CHECK_OK(uffd_snap_stats(s, &st));
		uffd_checker_stop(c);
		uffd_snap_free(s);
		CHECK(st.done);
		CHECK_EQ(st.error, 0);
		CHECK_EQ(st.pages, TABLE / PAGE);
		CHECK_EQ(st.pages_present, TABLE / PAGE);
		CHECK_EQ(st.zero_pages, 0);
		CHECK_EQ(st.copied_before_write + st.written_background + st.sync_writes,
			 st.pages_present);

		chain = uffd_image_chain_open(path, NULL);
		if (!chain)
			FAIL("uffd_image_chain_open: %s", strerror(errno));
		CHECK_OK(uffd_image_verify(uffd_image_chain_get(chain, 0), NULL));
		if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
			FAIL("try %d: image is not the instant: %s", try + 1, msg);
		uffd_image_chain_close(chain);
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
