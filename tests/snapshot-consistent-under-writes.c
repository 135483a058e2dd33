/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live snapshot is exactly the memory at its instant while writers keep
 * running: the checker workload (2 writers, half the pages pre-filled)
 * runs through the snapshot; the image verifies page by page against the
 * versions at the instant (nothing from after, nothing torn, nothing
 * stale), restores eagerly and lazily to the same contents, and the
 * accounting adds up: every present page was copied by the fault handler,
 * streamed by the writer thread, or found to be zero.  Also with shmem
 * memory and without precopy, and with the copies before write made by
 * the writing threads themselves (in_thread: nothing written to the image
 * by a fault, a full buffer waited out).
 */
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"

#define TABLE (32UL << 20)

static void snapshot_once(enum uffd_checker_mem mem, bool no_precopy, bool in_thread,
			  const char *path)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .mem = mem,
		  .seed = 7, .fill = 0.5);
	struct uffd_checker *c = uffd_checker_new(&co);
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .buffer_bytes = 1 << 20,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb, .no_precopy = no_precopy,
		  .in_thread = in_thread);
	struct uffd_snap_stats st;
	struct uffd_image_chain *chain;
	struct uffd_restore *r;
	struct uffd_snap *s;
	uint64_t before;
	char msg[256];

	CHECK(c);
	so.arg = c;
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), TABLE, 4096,
					  mem == UFFD_CHECKER_SHMEM ? UFFD_IMAGE_SHMEM :
								      UFFD_IMAGE_ANON };
	/* uffd_checker_pause_cb marks the instant as it pauses. */
	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(50);
	before = uffd_checker_writes(c);
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 30000));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(st.done);
	CHECK_EQ(st.error, 0);
	CHECK(uffd_checker_writes(c) > before);		/* writers ran throughout */
	uffd_checker_pause(c);
	CHECK_EQ(st.pages, TABLE / 4096);
	/* Every page present at the instant was saved exactly once. */
	CHECK_EQ(st.copied_before_write + st.written_background + st.sync_writes,
		 st.pages_present);
	CHECK(st.pages_present >= TABLE / 4096 / 2 - 64);
	CHECK(st.copied_before_write > 0);		/* writers hit protected pages */
	if (in_thread)
		CHECK_EQ(st.sync_writes, 0);
	uffd_snap_free(s);

	chain = uffd_image_chain_open(path, NULL);
	CHECK(chain);
	if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
		FAIL("image is not the instant: %s", msg);
	uffd_image_chain_close(chain);

	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE);
	CHECK(r);
	if (uffd_checker_verify_memory(c, uffd_restore_addr(r, 0), msg, sizeof(msg)))
		FAIL("eager restore differs: %s", msg);
	uffd_restore_close(r, true);
	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE | UFFD_RESTORE_LAZY);
	CHECK(r);
	if (uffd_checker_verify_memory(c, uffd_restore_addr(r, 0), msg, sizeof(msg)))
		FAIL("lazy restore differs: %s", msg);
	CHECK_OK(uffd_restore_wait(r, 10000));
	uffd_restore_close(r, true);

	uffd_checker_stop(c);
	uffd_checker_free(c);
	unlink(path);
}

int main(void)
{
	char path[] = "/tmp/libuffd-snap-XXXXXX";
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	close(fd);
	t_require(UFFD_FEAT_REG_WP_ANON);
	snapshot_once(UFFD_CHECKER_ANON, false, false, path);
	snapshot_once(UFFD_CHECKER_ANON, true, false, path);
	if (t_in_thread_ok()) {
		snapshot_once(UFFD_CHECKER_ANON, false, true, path);
		snapshot_once(UFFD_CHECKER_ANON, true, true, path);
	}
	if (uffd_feature_supported(UFFD_FEAT_REG_WP_SHMEM) == 1) {
		snapshot_once(UFFD_CHECKER_SHMEM, false, false, path);
		if (t_in_thread_ok())
			snapshot_once(UFFD_CHECKER_SHMEM, false, true, path);
	}
	return T_EXIT_PASS;
}
