/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_snap_cancel() after the snapshot has committed changes nothing and
 * says so: it returns -EALREADY (not 0, which means "cancelled, no file"),
 * the image stays under its name, complete (it opens and every checksum
 * verifies, and it holds the region's data), uffd_snap_wait() still
 * returns 0 and the stats' error is still 0; a second cancel answers the
 * same, and uffd_snap_free() keeps the file too.  (A cancel before the
 * commit: snapshot-cancel-leaves-no-file.c.)
 */
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NPAGES 16

static void expect_image(const char *path, const char *area)
{
	struct uffd_image *img;
	char buf[PAGE];

	img = uffd_image_open(path, NULL);
	if (!img)
		FAIL("uffd_image_open %s: %s", path, strerror(errno));
	CHECK_OK(uffd_image_verify(img, NULL));
	CHECK_EQ(uffd_image_read_page(img, 0, NPAGES - 1, buf), 1);
	t_check_bytes("last page", buf, area + (NPAGES - 1) * PAGE, PAGE);
	uffd_image_close(img);
}

int main(void)
{
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, o, .regions = &reg, .nregions = 1);
	struct uffd_snap_stats st;
	struct uffd_snap *s;
	const char *dir;
	char *area;

	t_require(UFFD_FEAT_REG_WP_ANON);
	dir = t_img_dir();
	o.path = t_img_path(0, dir, "done.img");
	area = t_map_anon(NPAGES * PAGE);
	t_fill(area, NPAGES * PAGE, 4);
	reg = (struct uffd_image_region){ (uintptr_t)area, NPAGES * PAGE, PAGE,
					  UFFD_IMAGE_ANON };

	s = uffd_snap_begin(&o);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 10000));
	expect_image(o.path, area);

	CHECK_EQ(uffd_snap_cancel(s), -EALREADY);
	CHECK_EQ(uffd_snap_cancel(s), -EALREADY);
	CHECK_OK(uffd_snap_wait(s, 0));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(st.done);
	CHECK_EQ(st.error, 0);
	expect_image(o.path, area);
	CHECK_EQ(t_count_files(dir), 1);

	uffd_snap_free(s);
	expect_image(o.path, area);
	CHECK_EQ(t_count_files(dir), 1);
	return T_EXIT_PASS;
}
