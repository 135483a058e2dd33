// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The services' in-thread options fail at set-up, with EBUSY, where the
 * runtime's in-thread mode cannot work (uffd/handler.h), and leave nothing
 * behind; the same calls succeed once the cause is gone:
 *
 *   - another thread blocks SIGBUS (its first fault would kill the
 *     process): uffd_track_new() (SYNC_WP, in_thread),
 *     uffd_snap_begin() (in_thread; no image file is left) and
 *     uffd_restore_open_opts() (LAZY, in_thread) all fail with EBUSY;
 *     once the thread unblocks it, all three work (the snapshot and the
 *     restore are exact);
 *   - with an in-thread tracker running (on memory of its own), the
 *     program installs a SIGBUS handler of its own over libuffd's: a new
 *     in-thread snapshot or restore fails with EBUSY, and works again once
 *     libuffd's action is put back; the tracker still reports a write.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>
#include <uffd/track.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NPAGES 8

static void on_sigbus(int sig)
{
}

static char *area, *tracked;
static const char *img_path;

static struct uffd_tracker *new_tracker(void)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = UFFD_TRACK_SYNC_WP, .in_thread = true);

	errno = 0;
	return uffd_track_new(&o);
}

/* An in-thread snapshot of area into path: 0 and an exact image, or -errno. */
static int snapshot(const char *path)
{
	struct uffd_image_region reg = { (uintptr_t)area, NPAGES * PAGE, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .in_thread = true);
	struct uffd_image *img;
	struct uffd_snap *s;
	uint64_t bad = 0;
	char buf[PAGE];
	int i;

	s = uffd_snap_begin(&so);
	if (!s) {
		int err = errno;

		CHECK(err > 0);
		CHECK_EQ(access(path, F_OK) == -1 ? errno : 0, ENOENT);
		return -err;
	}
	CHECK_OK(uffd_snap_wait(s, 4000));
	uffd_snap_free(s);
	img = uffd_image_open(path, &bad);
	CHECK(img);
	for (i = 0; i < NPAGES; i++) {
		CHECK_EQ(uffd_image_read_page(img, 0, i, buf), 1);
		t_check_bytes("image page", buf, area + i * PAGE, PAGE);
	}
	uffd_image_close(img);
	return 0;
}

/* An in-thread lazy restore of img_path: 0 and exact, or -errno. */
static int restore(void)
{
	UFFD_OPTS(uffd_restore_opts, o, .flags = UFFD_RESTORE_LAZY | UFFD_RESTORE_ANYWHERE,
		  .in_thread = true);
	struct uffd_restore *r;
	char *at;

	r = uffd_restore_open_opts(img_path, &o);
	if (!r) {
		CHECK(errno > 0);
		return -errno;
	}
	at = uffd_restore_addr(r, 0);
	CHECK(at);
	t_check_bytes("restored", at, area, NPAGES * PAGE);
	CHECK_OK(uffd_restore_wait(r, 4000));
	uffd_restore_close(r, true);
	return 0;
}

int main(void)
{
	struct sigaction mine = { .sa_handler = on_sigbus }, saved;
	struct uffd_tracker *t;
	const char *dir;
	struct t_sigbus_blocker blocker;
	uint64_t bits = 0, n;
	int i;

	t_require(UFFD_FEAT_REG_WP_ANON);
	t_require_in_thread();
	dir = t_img_dir();
	area = t_map_anon(NPAGES * PAGE);
	tracked = t_map_anon(NPAGES * PAGE);
	for (i = 0; i < NPAGES; i++)
		t_fill(area + i * PAGE, PAGE, i + 1);
	img_path = t_img_path(0, dir, "base.img");
	CHECK_OK(snapshot(img_path));	/* the image restores read */

	/* Another thread blocks SIGBUS. */
	t_sigbus_blocker_start(&blocker);
	CHECK(!new_tracker());
	CHECK_EQ(errno, EBUSY);
	CHECK_EQ(snapshot(t_img_path(1, dir, "blocked.img")), -EBUSY);
	CHECK_EQ(restore(), -EBUSY);
	t_sigbus_blocker_unblock(&blocker);

	/* Unblocked: all three work. */
	t = new_tracker();
	CHECK(t);
	CHECK_OK(uffd_track_add(t, tracked, NPAGES * PAGE));
	CHECK_OK(snapshot(t_img_path(2, dir, "unblocked.img")));
	CHECK_OK(restore());

	/* The program's SIGBUS handler over libuffd's (the tracker's). */
	CHECK_OK(sigaction(SIGBUS, &mine, &saved) ? -errno : 0);
	CHECK_EQ(snapshot(t_img_path(3, dir, "replaced.img")), -EBUSY);
	CHECK_EQ(restore(), -EBUSY);
	CHECK_OK(sigaction(SIGBUS, &saved, NULL) ? -errno : 0);
	CHECK_OK(snapshot(t_img_path(4, dir, "back.img")));
	CHECK_OK(restore());

	/* The tracker went on: a write now is reported. */
	CHECK_OK(uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, &bits, NPAGES, &n));
	tracked[3 * PAGE] ^= 1;
	bits = 0;
	CHECK_OK(uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, &bits, NPAGES, &n));
	CHECK_EQ(bits, 1ULL << 3);
	CHECK_EQ(n, 1);
	uffd_track_free(t);
	t_sigbus_blocker_end(&blocker);
	munmap(area, NPAGES * PAGE);
	munmap(tracked, NPAGES * PAGE);
	return T_EXIT_PASS;
}
