/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Damage outside the chunks is caught by open, with the offset of the
 * structure: any flipped bit of the header or the parent name field gives
 * EBADMSG at 0 (the header CRC covers both), except in the version field,
 * which gives EPROTO when it makes a version this libuffd does not read;
 * any flipped bit of the region table or its CRC gives EBADMSG at 320, its
 * start; any flipped bit of the copy of the chunk headers (version 3)
 * gives EBADMSG at the copy's offset, and of the trailer at its own.  Also
 * a file that is not an image at all, and an empty one, give EBADMSG at 0.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = 16 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 16 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_SHMEM },
};

/*
 * The flip at off makes the version field one this libuffd does not read
 * (a flip to another version it reads is caught by the header CRC).
 */
static bool version_field(uint64_t off, uint8_t x)
{
	uint32_t v;

	if (off < 8 || off >= 12)
		return false;
	v = UFFD_IMAGE_VERSION ^ ((uint32_t)x << 8 * (off - 8));
	return v < 1 || v > UFFD_IMAGE_VERSION;
}

/* Open with the byte at off flipped by x must fail with err at want. */
static void expect_open_fails(const char *path, uint64_t off, uint8_t x, int err,
			      uint64_t want)
{
	struct uffd_image *img;
	uint64_t bad = ~0ULL;

	t_flip_byte(path, off, x);
	img = uffd_image_open(path, &bad);
	if (img)
		FAIL("byte %" PRIu64 " ^ 0x%02x: open succeeded", off, x);
	if (errno != err || (err == EBADMSG && bad != want))
		FAIL("byte %" PRIu64 " ^ 0x%02x: %s at %" PRIu64 ", want %s at %" PRIu64,
		     off, x, strerror(errno), bad, strerror(err), want);
	t_flip_byte(path, off, x);
}

int main(void)
{
	static const uint8_t flips[] = { 0x01, 0x10, 0x80 };
	struct uffd_image_writer *w;
	struct uffd_image *img;
	const char *dir, *path, *other;
	uint64_t size, off, bad = 0, trailer, copy;
	uint8_t page[PAGE];
	int f;

	dir = t_img_dir();
	path = t_img_path(0, dir, "image.img");
	w = uffd_image_create(path, regions, 2, NULL, 0);
	CHECK(w);
	t_fill(page, PAGE, 7);
	CHECK_OK(uffd_image_put_page(w, 0, 3, page));
	CHECK_OK(uffd_image_put_page(w, 1, 5, NULL));
	CHECK_OK(uffd_image_commit(w));
	size = t_file_size(path);
	trailer = size - T_IMG_TRAILER;
	copy = trailer - 2 * T_IMG_CHUNK_HDR;	/* version 3: the headers again */
	CHECK_EQ(copy, T_IMG_CHUNKS_START(2) + (32 + PAGE + 4) + (32 + 4));

	for (f = 0; f < (int)sizeof(flips); f++) {
		for (off = 0; off < T_IMG_REGIONS_OFF; off++)
			expect_open_fails(path, off, flips[f],
					  version_field(off, flips[f]) ? EPROTO : EBADMSG, 0);
		for (off = T_IMG_REGIONS_OFF; off < T_IMG_CHUNKS_START(2); off++)
			expect_open_fails(path, off, flips[f], EBADMSG, T_IMG_REGIONS_OFF);
		for (off = copy; off < trailer; off++)
			expect_open_fails(path, off, flips[f], EBADMSG, copy);
		for (off = trailer; off < size; off++)
			expect_open_fails(path, off, flips[f], EBADMSG, trailer);
	}
	img = uffd_image_open(path, &bad);
	CHECK(img);
	CHECK_OK(uffd_image_verify(img, &bad));
	uffd_image_close(img);

	other = t_img_path(1, dir, "not-an-image");
	t_write_file(other, "#!/bin/sh\necho this is not a memory image\n", 43);
	bad = ~0ULL;
	CHECK(!uffd_image_open(other, &bad));
	CHECK_EQ(errno, EBADMSG);
	CHECK_EQ(bad, 0);
	t_write_file(other, "", 0);
	bad = ~0ULL;
	CHECK(!uffd_image_open(other, &bad));
	CHECK_EQ(errno, EBADMSG);
	CHECK_EQ(bad, 0);
	CHECK(!uffd_image_open(t_img_path(2, dir, "missing.img"), &bad));
	CHECK_EQ(errno, ENOENT);
	return T_EXIT_PASS;
}
