/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A damaged chunk is found and named by its offset: flipping any byte of a
 * chunk's data or CRC leaves the image openable, and uffd_image_verify()
 * then returns -EBADMSG with exactly that chunk's offset.  Flipping any
 * byte of a chunk's header: in a version 2 file it is caught by open with
 * the same offset, whether the header no longer makes sense or still does
 * (the trailer's CRC of chunk headers fails, and the chunk's own CRC names
 * it); in version 3 the reader takes the headers from their copy before
 * the trailer, so the image opens and verify names the chunk (its CRC
 * covers its header).  The offsets come from an independent walk of the
 * documented layout.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "util/crc32c.h"

#define MAX_CHUNKS 32

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = 64 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 64 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_SHMEM },
};

static void write_image(const char *path)
{
	uint8_t data[4 * PAGE];
	struct uffd_image_writer *w;
	int i;

	w = uffd_image_create(path, regions, 2, NULL, 0);
	if (!w)
		FAIL("uffd_image_create: %s", strerror(errno));
	for (i = 0; i < 4; i++)
		t_fill(data + i * PAGE, PAGE, 100 + i);
	/* neighbours in both regions, so a shifted first page overlaps one */
	CHECK_OK(uffd_image_put(w, 0, 0, 4, data, 0));
	CHECK_OK(uffd_image_put(w, 0, 4, 3, data, 1 << 1));
	CHECK_OK(uffd_image_put_page(w, 0, 7, NULL));
	CHECK_OK(uffd_image_put_page(w, 0, 8, data));
	CHECK_OK(uffd_image_put(w, 1, 0, 2, data, 0));
	CHECK_OK(uffd_image_put(w, 1, 2, 6, NULL, 0x3f));
	CHECK_OK(uffd_image_put_page(w, 1, 9, data));
	CHECK_OK(uffd_image_put(w, 1, 20, 5, data, 0x15));
	CHECK_OK(uffd_image_commit(w));
}

/*
 * With the byte at off flipped by x, the chunk at chunk_off must be named:
 * by open, or by verify.  Returns which one caught it (for the caller's
 * expectations: data bytes are only visible to verify).
 */
static bool caught_by_open(const char *path, uint64_t off, uint8_t x, uint64_t chunk_off)
{
	struct uffd_image *img;
	uint64_t bad = ~0ULL;
	bool by_open;

	t_flip_byte(path, off, x);
	img = uffd_image_open(path, &bad);
	by_open = !img;
	if (!img) {
		if (errno != EBADMSG || bad != chunk_off)
			FAIL("byte %" PRIu64 " ^ 0x%02x: open: %s at %" PRIu64 ", want chunk %" PRIu64,
			     off, x, strerror(errno), bad, chunk_off);
	} else {
		int ret = uffd_image_verify(img, &bad);

		if (ret != -EBADMSG || bad != chunk_off)
			FAIL("byte %" PRIu64 " ^ 0x%02x: verify: %s at %" PRIu64 ", want chunk %" PRIu64,
			     off, x, t_errname(ret), bad, chunk_off);
		uffd_image_close(img);
	}
	t_flip_byte(path, off, x);
	return by_open;
}

/*
 * Flip bytes of every chunk of the image at path and check who names it:
 * data and CRC bytes only verify; header bytes open (headers_at_open: a
 * version 2 file, whose headers are read from the chunks and checked
 * against the trailer's CRC of headers) or verify and the chunk's first
 * read (version 3: the headers are read from their copy, and a chunk's
 * own header is covered by its CRC).
 */
static void flip_chunks(const char *path, bool headers_at_open)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	struct t_chunk chunks[MAX_CHUNKS];
	struct uffd_image *img;
	uint64_t off, bad = 0, data_len;
	int n, i, f, caught_open = 0, caught_verify = 0;

	n = t_img_chunks(path, chunks, MAX_CHUNKS);
	CHECK_EQ(n, 8);

	img = uffd_image_open(path, &bad);
	CHECK(img);
	CHECK_OK(uffd_image_verify(img, &bad));
	uffd_image_close(img);

	for (i = 0; i < n; i++) {
		const struct t_chunk *c = &chunks[i];

		data_len = c->size - T_IMG_CHUNK_HDR - 4;
		for (f = 0; f < (int)sizeof(flips); f++) {
			/* data: first, middle and last byte; then every CRC byte */
			if (data_len) {
				CHECK(!caught_by_open(path, c->offset + T_IMG_CHUNK_HDR, flips[f],
						      c->offset));
				CHECK(!caught_by_open(path, c->offset + T_IMG_CHUNK_HDR +
						      data_len / 2, flips[f], c->offset));
				CHECK(!caught_by_open(path, c->offset + T_IMG_CHUNK_HDR +
						      data_len - 1, flips[f], c->offset));
			}
			for (off = c->offset + c->size - 4; off < c->offset + c->size; off++)
				CHECK(!caught_by_open(path, off, flips[f], c->offset));
			/* every header byte */
			for (off = c->offset; off < c->offset + T_IMG_CHUNK_HDR; off++) {
				if (caught_by_open(path, off, flips[f], c->offset))
					caught_open++;
				else
					caught_verify++;
			}
		}
	}
	fprintf(stderr, "version %d: header flips caught by open %d, by verify %d\n",
		headers_at_open ? 2 : 3, caught_open, caught_verify);
	/* every one at open, plausible headers included; or every one by verify */
	CHECK_EQ(caught_open, headers_at_open ? n * 3 * T_IMG_CHUNK_HDR : 0);
	CHECK_EQ(caught_verify, headers_at_open ? 0 : n * 3 * T_IMG_CHUNK_HDR);

	img = uffd_image_open(path, &bad);
	CHECK(img);
	CHECK_OK(uffd_image_verify(img, &bad));	/* every flip was undone */
	uffd_image_close(img);
}

int main(void)
{
	const char *path = t_img_path(0, t_img_dir(), "image.img");

	write_image(path);
	flip_chunks(path, false);
	t_img_make_version(path, 2, crc32c);
	flip_chunks(path, true);
	return T_EXIT_PASS;
}
