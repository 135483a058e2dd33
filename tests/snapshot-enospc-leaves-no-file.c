/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A snapshot that runs out of disk space fails cleanly: the image goes to a
 * 256 KiB tmpfs (mounted in a private mount namespace, in a child, so
 * nothing outside sees it) and the table is 16 MiB of data pages with 2
 * checker writers running.  uffd_snap_wait() returns -ENOSPC, the stats say
 * done with that error, no file named like the image (NAME or NAME.tmp-*)
 * is left in the directory, and no writer is left blocked on a protected
 * page: the write counter grows and a pause (which every writer must reach)
 * completes.
 */
#include <sys/mount.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/checker-pause.h"
#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE		(16UL << 20)

static int snapshot_to_full_disk(const char *dir)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 5,
		  .fill = 1.0);
	const char *path = t_img_path(0, dir, "full.img");
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb);
	struct uffd_snap_stats st;
	struct uffd_checker *c = uffd_checker_new(&co);
	struct uffd_snap *s;

	if (!c)
		FAIL("uffd_checker_new: %s", strerror(errno));
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), TABLE, PAGE,
					  UFFD_IMAGE_ANON };
	so.arg = c;
	CHECK_OK(uffd_checker_start(c));
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_EQ(uffd_snap_wait(s, 4000), -ENOSPC);
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(st.done);
	CHECK_EQ(st.error, -ENOSPC);
	CHECK_EQ(st.pages_present, TABLE / PAGE);
	/* Nothing near a whole table fitted: it failed early. */
	CHECK(st.written_background + st.copied_before_write + st.sync_writes <
	      st.pages_present);
	CHECK_EQ(t_count_files(dir), 0);

	t_checker_writes_within(c, 2000);
	t_checker_pause_within(c, 2000);	/* none is blocked in a fault */
	uffd_checker_resume(c);

	uffd_snap_free(s);
	CHECK_EQ(t_count_files(dir), 0);
	t_checker_writes_within(c, 2000);
	uffd_checker_free(c);
	return T_EXIT_PASS;
}

/* In a child: the tmpfs and its mount namespace go away with it. */
static int run_in_namespace(const char *dir)
{
	int ret;

	ret = t_private_tmpfs(dir, "256k");
	if (ret)
		return ret;
	ret = snapshot_to_full_disk(dir);
	if (umount(dir))
		FAIL("umount %s: %s", dir, strerror(errno));
	return ret;
}

int main(void)
{
	const char *dir;
	pid_t pid;

	t_require(UFFD_FEAT_REG_WP_ANON);
	dir = t_img_dir();		/* the mount point, removed at exit */
	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		_exit(run_in_namespace(dir));
	return t_wait_child(pid, 5000);
}
