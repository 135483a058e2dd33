/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A snapshot records exactly the pages that hold data; the rest are holes.
 * The region (THP off, so one touch populates one page) has pages of three
 * kinds, mixed: never touched, written with zeros (present, all zero), and
 * data (a pattern per page).  Nothing writes during the snapshot.  Then:
 *  - stats: pages is the region's, pages_present = data + zero-written
 *    (never-touched pages are found absent in the pagemap), zero_pages =
 *    the zero-written ones, and the writer thread streamed every present
 *    page (no write came, so nothing was copied before a write);
 *  - the image: its info counts only the data pages (no zero records),
 *    uffd_image_read_page() returns 1 and the page's bytes for each data
 *    page and -ENOENT (a hole in a base) for every other page, and the
 *    file verifies;
 *  - an eager and a lazy restore show the data pages and zeros elsewhere.
 * With and without precopy (both find the present pages, once before the
 * instant and once in the pause).
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NPAGES 300

/* What page p is: '-' never touched, 'Z' written with zeros, 'D' data. */
static char kind(size_t p)
{
	static const char pattern[] = "D--ZDDZ-ZZD--DZ-";	/* 16, irregular */

	if (p < 8)		/* a run of data at the start */
		return 'D';
	if (p >= NPAGES - 40)	/* a long hole at the end */
		return '-';
	return pattern[(p * 7 + p / 16) % 16];
}

static void check_restored(const char *mem, const char *what)
{
	size_t p;

	for (p = 0; p < NPAGES; p++) {
		if (kind(p) == 'D' ? !t_is_filled(mem + p * PAGE, PAGE, p + 1) :
				     !t_is_zero(mem + p * PAGE, PAGE))
			FAIL("%s restore: page %zu (%c) differs", what, p, kind(p));
	}
}

static void snapshot_once(const char *path, bool no_precopy)
{
	size_t len = NPAGES * PAGE, p, data = 0, zero = 0, holes = 0;
	struct uffd_image_region reg = { 0, len, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .no_precopy = no_precopy);
	struct uffd_restore_stats rst;
	struct uffd_image_info info;
	struct uffd_snap_stats st;
	struct uffd_restore *r;
	struct uffd_image *img;
	struct uffd_snap *s;
	uint64_t bad = 0;
	char *area = t_map_anon(len), *buf = malloc(PAGE);
	int ret;

	CHECK(buf);
	CHECK_OK(madvise(area, len, MADV_NOHUGEPAGE) ? -errno : 0);
	for (p = 0; p < NPAGES; p++) {
		switch (kind(p)) {
		case 'D':
			t_fill(area + p * PAGE, PAGE, p + 1);
			data++;
			break;
		case 'Z':
			memset(area + p * PAGE, 0, PAGE);
			zero++;
			break;
		default:
			holes++;
		}
	}
	CHECK(data > 20 && zero > 20 && holes > 60);
	reg.addr = (uintptr_t)area;

	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 4000));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(st.done);
	CHECK_EQ(st.error, 0);
	CHECK_EQ(st.bytes, t_file_size(path) - t_img_tail_of(path));
	uffd_snap_free(s);

	img = uffd_image_open(path, &bad);
	if (!img)
		FAIL("uffd_image_open: %s at %" PRIu64, strerror(errno), bad);
	CHECK_OK(uffd_image_verify(img, &bad));
	CHECK_OK(uffd_image_info(img, &info));
	CHECK_EQ(info.delta, false);
	CHECK_EQ(info.nregions, 1);
	CHECK_EQ(info.regions[0].addr, (uintptr_t)area);
	CHECK_EQ(info.regions[0].len, len);
	CHECK_EQ(info.regions[0].page_size, PAGE);
	CHECK_EQ(info.pages, data);
	CHECK_EQ(info.zero_pages, 0);
	for (p = 0; p < NPAGES; p++) {
		memset(buf, 0xa5, PAGE);
		ret = uffd_image_read_page(img, 0, p, buf);
		if (kind(p) == 'D') {
			if (ret != 1)
				FAIL("data page %zu: read_page %d, want 1", p, ret);
			if (!t_is_filled(buf, PAGE, p + 1))
				FAIL("data page %zu: wrong bytes in the image", p);
		} else if (ret != -ENOENT) {
			FAIL("page %zu (%c): read_page %d (%s), want -ENOENT", p, kind(p),
			     ret, t_errname(ret));
		}
	}
	uffd_image_close(img);

	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE);
	if (!r)
		FAIL("eager restore: %s", strerror(errno));
	check_restored(uffd_restore_addr(r, 0), "eager");
	CHECK_OK(uffd_restore_stats(r, &rst));
	CHECK_EQ(rst.pages, NPAGES);
	CHECK_EQ(rst.zero, zero + holes);
	uffd_restore_close(r, true);

	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE | UFFD_RESTORE_LAZY);
	if (!r)
		FAIL("lazy restore: %s", strerror(errno));
	check_restored(uffd_restore_addr(r, 0), "lazy");
	CHECK_OK(uffd_restore_wait(r, 4000));
	uffd_restore_close(r, true);

	/* The accounting (last: the contents above are checked either way). */
	CHECK_EQ(st.pages, NPAGES);
	CHECK_EQ(st.copied_before_write, 0);
	CHECK_EQ(st.sync_writes, 0);
	CHECK_EQ(st.precopy_dirty, 0);
	CHECK_EQ(st.pages_present, data + zero);
	CHECK_EQ(st.zero_pages, zero);
	CHECK_EQ(st.written_background, data + zero);

	munmap(area, len);
	free(buf);
	CHECK_OK(unlink(path));
}

int main(void)
{
	const char *dir;

	t_require(UFFD_FEAT_REG_WP_ANON);
	dir = t_img_dir();
	snapshot_once(t_img_path(0, dir, "precopy.img"), false);
	snapshot_once(t_img_path(1, dir, "no-precopy.img"), true);
	CHECK_EQ(t_count_files(dir), 0);
	return T_EXIT_PASS;
}
