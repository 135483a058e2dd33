/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Each page is written at most once: a second put of a page, alone or
 * inside a range, data or zero, is -EEXIST and writes nothing (the other
 * pages of a refused range stay free to write); puts outside the region or
 * with a malformed range are -EINVAL.  Neither kind of refusal spoils the
 * writer: the image commits and reads back the first version of each page.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = 100 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 4 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
};

int main(void)
{
	uint8_t first[PAGE], second[PAGE], back[PAGE], many[64 * PAGE] = { 0 };
	struct uffd_image_writer *w;
	struct uffd_image_info info;
	struct uffd_image *img;
	const char *path;
	uint64_t bytes;

	path = t_img_path(0, t_img_dir(), "image.img");
	t_fill(first, PAGE, 1);
	t_fill(second, PAGE, 2);
	w = uffd_image_create(path, regions, 2, NULL, 0);
	CHECK(w);

	CHECK_OK(uffd_image_put_page(w, 0, 5, first));
	CHECK_OK(uffd_image_put_page(w, 1, 1, NULL));
	bytes = uffd_image_bytes(w);
	CHECK_EQ(uffd_image_put_page(w, 0, 5, second), -EEXIST);
	CHECK_EQ(uffd_image_put_page(w, 0, 5, NULL), -EEXIST);
	CHECK_EQ(uffd_image_put_page(w, 1, 1, second), -EEXIST);
	CHECK_EQ(uffd_image_put(w, 0, 0, 8, many, 0), -EEXIST);	/* covers 5 */
	CHECK_EQ(uffd_image_put(w, 0, 5, 1, NULL, 1), -EEXIST);
	CHECK_EQ(uffd_image_bytes(w), bytes);			/* nothing written */

	/* malformed: nothing written either */
	CHECK_EQ(uffd_image_put_page(w, 0, 100, first), -EINVAL);
	CHECK_EQ(uffd_image_put_page(w, 1, 4, first), -EINVAL);
	CHECK_EQ(uffd_image_put_page(w, 2, 0, first), -EINVAL);
	CHECK_EQ(uffd_image_put_page(w, -1, 0, first), -EINVAL);
	CHECK_EQ(uffd_image_put(w, 0, 90, 11, many, 0), -EINVAL);	/* past the end */
	CHECK_EQ(uffd_image_put(w, 0, 10, 0, many, 0), -EINVAL);	/* no pages */
	CHECK_EQ(uffd_image_put(w, 0, 10, 65, many, 0), -EINVAL);	/* over 64 */
	CHECK_EQ(uffd_image_put(w, 0, 10, 2, many, 1ULL << 2), -EINVAL); /* mask */
	CHECK_EQ(uffd_image_put(w, 0, 10, 2, NULL, 1), -EINVAL);	/* no data */
	CHECK_EQ(uffd_image_put(NULL, 0, 10, 1, many, 0), -EINVAL);
	CHECK_EQ(uffd_image_bytes(w), bytes);

	/* the pages around 5 are still free; a full 64-page chunk too */
	CHECK_OK(uffd_image_put(w, 0, 0, 5, many, 0x1f));
	CHECK_OK(uffd_image_put(w, 0, 6, 2, many, 0));
	CHECK_EQ(uffd_image_put(w, 0, 7, 1, many, 0), -EEXIST);
	CHECK_OK(uffd_image_put(w, 0, 30, 64, many, 0));
	CHECK_EQ(uffd_image_put_page(w, 0, 93, first), -EEXIST);
	CHECK_OK(uffd_image_put_page(w, 0, 94, first));
	CHECK_OK(uffd_image_commit(w));

	img = uffd_image_open(path, NULL);
	CHECK(img);
	CHECK_OK(uffd_image_verify(img, NULL));
	uffd_image_info(img, &info);
	CHECK_EQ(info.chunks, 6);
	CHECK_EQ(info.pages, 1 + 1 + 5 + 2 + 64 + 1);
	CHECK_EQ(info.zero_pages, 1 + 5);
	CHECK_EQ(uffd_image_read_page(img, 0, 5, back), 1);
	CHECK(!memcmp(back, first, PAGE));
	CHECK_EQ(uffd_image_read_page(img, 1, 1, back), 0);
	CHECK_EQ(uffd_image_read_page(img, 0, 4, back), 0);
	CHECK_EQ(uffd_image_read_page(img, 0, 8, back), -ENOENT);
	CHECK_EQ(uffd_image_read_page(img, 0, 93, back), 1);
	CHECK(t_is_zero(back, PAGE));		/* many[] is zeros, as data */
	uffd_image_close(img);
	return T_EXIT_PASS;
}
