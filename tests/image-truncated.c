/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A file cut short is never taken for an image, and the offset reported is
 * where its data ends.  Cut at every length from 0 to one byte short (in
 * the header, the parent name, the region table, a chunk header, chunk
 * data, a chunk CRC, exactly between chunks, in the trailer),
 * uffd_image_open() fails with EBADMSG at exactly that length.  And an
 * image cut short after it was opened: verify fails with EBADMSG at the new
 * length, and a page past the cut reads as -EBADMSG, never stale or short.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = 32 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 8 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
};

static void write_image(const char *path)
{
	uint8_t data[3 * PAGE];
	struct uffd_image_writer *w;

	w = uffd_image_create(path, regions, 2, NULL, 0);
	CHECK(w);
	t_fill(data, sizeof(data), 3);
	CHECK_OK(uffd_image_put(w, 0, 0, 3, data, 0));
	CHECK_OK(uffd_image_put_page(w, 0, 8, NULL));
	CHECK_OK(uffd_image_put(w, 0, 16, 4, data, 0x5));
	CHECK_OK(uffd_image_put_page(w, 1, 7, data));
	CHECK_OK(uffd_image_commit(w));
}

int main(void)
{
	struct t_chunk chunks[4];
	struct uffd_image *img;
	const char *path;
	uint64_t size, cut, bad, cuts[20];
	uint8_t *whole, page[PAGE];
	int fd, i, ncuts = 0;

	path = t_img_path(0, t_img_dir(), "image.img");
	write_image(path);
	CHECK_EQ(t_img_chunks(path, chunks, 4), 4);
	whole = t_read_file(path, &size);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);

	/* every length, longest first, on the same file */
	for (cut = size; cut-- > 0;) {
		CHECK_OK(ftruncate(fd, cut));
		bad = ~0ULL;
		img = uffd_image_open(path, &bad);
		if (img)
			FAIL("cut at %" PRIu64 " of %" PRIu64 ": open succeeded", cut, size);
		if (errno != EBADMSG || bad != cut)
			FAIL("cut at %" PRIu64 ": %s at %" PRIu64, cut, strerror(errno), bad);
	}

	/* cut after open: verify and read_page see it */
	cuts[ncuts++] = 10;					/* header */
	cuts[ncuts++] = T_IMG_CHUNKS_START(2) - 1;		/* region table CRC */
	for (i = 0; i < 4; i++) {
		cuts[ncuts++] = chunks[i].offset;		/* between chunks */
		cuts[ncuts++] = chunks[i].offset + 20;		/* chunk header */
		cuts[ncuts++] = chunks[i].offset + chunks[i].size - 2;	/* CRC */
	}
	cuts[ncuts++] = size - T_IMG_TRAILER - 4 * T_IMG_CHUNK_HDR;	/* no copy */
	cuts[ncuts++] = size - T_IMG_TRAILER - 40;	/* in the copy */
	cuts[ncuts++] = size - T_IMG_TRAILER;		/* no trailer */
	cuts[ncuts++] = size - 1;
	for (i = 0; i < ncuts; i++) {
		CHECK_EQ(pwrite(fd, whole, size, 0), size);
		img = uffd_image_open(path, &bad);
		CHECK(img);
		CHECK_OK(uffd_image_verify(img, &bad));
		CHECK_OK(ftruncate(fd, cuts[i]));
		bad = ~0ULL;
		if (uffd_image_verify(img, &bad) != -EBADMSG || bad != cuts[i])
			FAIL("cut at %" PRIu64 " after open: verify passed, or at %" PRIu64,
			     cuts[i], bad);
		/* region 1 page 7 is the last chunk's data: readable only while
		 * all of that chunk is there, since a read checks its CRC */
		if (cuts[i] < chunks[3].offset + chunks[3].size)
			CHECK_EQ(uffd_image_read_page(img, 1, 7, page), -EBADMSG);
		else
			CHECK_EQ(uffd_image_read_page(img, 1, 7, page), 1);
		uffd_image_close(img);
	}
	close(fd);
	free(whole);
	return T_EXIT_PASS;
}
