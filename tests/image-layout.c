/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file is byte for byte what man/uffd-image.5 says: a delta of two
 * regions with one data chunk and one chunk mixing data and zero pages is
 * decoded here by hand, from the documented offsets, and every field,
 * reserved byte, page position and CRC32C is checked (the trailer's CRC of
 * the chunk headers too, and their copy before the trailer: version 3).
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "util/crc32c.h"

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x7f0000000000, .len = 16 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x7f4000000000, .len = 4 * HPAGE, .page_size = HPAGE,
	  .flags = UFFD_IMAGE_SHMEM | UFFD_IMAGE_HUGETLB },
};

#define LE(off, n) t_le(f + (off), n)

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

int main(void)
{
	struct uffd_image_writer *w;
	struct uffd_image_info info;
	struct uffd_image *img;
	const char *dir, *base, *path;
	uint8_t *f, *pages, want[PAGE];
	uint64_t size, c, base_id;
	uint32_t crc;
	int i;

	dir = t_img_dir();
	base = t_img_path(0, dir, "base.img");
	path = t_img_path(1, dir, "delta.img");
	w = uffd_image_create(base, regions, 2, NULL, 0);
	CHECK(w);
	CHECK_OK(uffd_image_commit(w));
	img = uffd_image_open(base, NULL);
	CHECK(img);
	uffd_image_info(img, &info);
	base_id = info.id;
	uffd_image_close(img);

	pages = malloc(3 * PAGE);
	CHECK(pages);
	for (i = 0; i < 3; i++)
		t_fill(pages + i * PAGE, PAGE, 40 + i);
	w = uffd_image_create(path, regions, 2, base, 123456789012345678ULL);
	CHECK(w);
	CHECK_OK(uffd_image_put_page(w, 0, 9, pages));
	/* pages 3..7: data, zero, data, zero, data */
	CHECK_OK(uffd_image_put(w, 0, 3, 5, pages, 0x0a));
	CHECK_OK(uffd_image_commit(w));

	f = t_read_file(path, &size);
	/* header */
	CHECK(!memcmp(f, "UFFDIMG1", 8));
	CHECK_EQ(LE(8, 4), 3);				/* version */
	CHECK_EQ(LE(12, 4), 1);				/* flags: DELTA */
	CHECK_EQ(LE(16, 4), sysconf(_SC_PAGESIZE));	/* the writer's page size */
	CHECK_EQ(LE(20, 4), 2);				/* regions */
	CHECK_EQ(LE(24, 4), 64);			/* pages per chunk at most */
	CHECK_EQ(LE(28, 4), 0);
	CHECK(LE(32, 8) != 0 && LE(32, 8) != base_id);	/* id */
	CHECK_EQ(LE(40, 8), base_id);			/* parent id */
	CHECK_EQ(LE(48, 8), 123456789012345678ULL);	/* instant */
	CHECK_EQ(LE(56, 4), 0);
	crc = crc32c(crc32c(0, f, 60), f + 64, 256);
	CHECK_EQ(LE(60, 4), crc);
	/* parent name, NUL-padded */
	CHECK(!strcmp((char *)f + 64, "base.img"));
	CHECK(all_zero(f + 64 + 8, 256 - 8));
	/* region table */
	for (i = 0; i < 2; i++) {
		const uint8_t *e = f + 320 + 32 * i;

		CHECK_EQ(t_le(e, 8), regions[i].addr);
		CHECK_EQ(t_le(e + 8, 8), regions[i].len);
		CHECK_EQ(t_le(e + 16, 4), regions[i].page_size);
		CHECK_EQ(t_le(e + 20, 4), regions[i].flags);
		CHECK_EQ(t_le(e + 24, 8), 0);
	}
	CHECK_EQ(LE(384, 4), crc32c(0, f + 320, 64));

	/* chunk 1 at 388: region 0, 1 page from 9, present */
	c = 388;
	CHECK(!memcmp(f + c, "CHNK", 4));
	CHECK_EQ(LE(c + 4, 2), 0);
	CHECK_EQ(LE(c + 6, 2), 1);
	CHECK_EQ(LE(c + 8, 8), 9);
	CHECK_EQ(LE(c + 16, 8), 1);
	CHECK_EQ(LE(c + 24, 8), 0);
	CHECK(!memcmp(f + c + 32, pages, PAGE));
	CHECK_EQ(LE(c + 32 + PAGE, 4), crc32c(0, f + c, 32 + PAGE));

	/* chunk 2: 5 pages from 3, present 10101b, zero 01010b, data in order */
	c += 32 + PAGE + 4;
	CHECK(!memcmp(f + c, "CHNK", 4));
	CHECK_EQ(LE(c + 4, 2), 0);
	CHECK_EQ(LE(c + 6, 2), 5);
	CHECK_EQ(LE(c + 8, 8), 3);
	CHECK_EQ(LE(c + 16, 8), 0x15);
	CHECK_EQ(LE(c + 24, 8), 0x0a);
	for (i = 0; i < 3; i++) {
		t_fill(want, PAGE, 40 + i);
		CHECK(!memcmp(f + c + 32 + i * PAGE, want, PAGE));
	}
	CHECK_EQ(LE(c + 32 + 3 * PAGE, 4), crc32c(0, f + c, 32 + 3 * PAGE));

	/* the copy of both chunk headers, in file order */
	c += 32 + 3 * PAGE + 4;
	CHECK(!memcmp(f + c, f + 388, 32));
	CHECK(!memcmp(f + c + 32, f + 388 + 32 + PAGE + 4, 32));

	/* trailer */
	c += 2 * 32;
	CHECK_EQ(size, c + 32);
	CHECK(!memcmp(f + c, "UFFDEND1", 8));
	CHECK_EQ(LE(c + 8, 8), 2);			/* chunks */
	CHECK_EQ(LE(c + 16, 8), 6);			/* pages, data and zero */
	/* the chunk headers' CRC: both headers, in file order */
	CHECK_EQ(LE(c + 24, 4), crc32c(crc32c(0, f + 388, 32), f + 388 + 32 + PAGE + 4, 32));
	CHECK_EQ(LE(c + 28, 4), crc32c(0, f + c, 28));
	free(f);
	free(pages);
	return T_EXIT_PASS;
}
