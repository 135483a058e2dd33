/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An image is built under NAME.tmp-PID, a new file only this writer owns
 * (mode 0600, created exclusively: a second writer of the same NAME in the
 * same process gets EEXIST), and uffd_image_abort() removes it, leaving no
 * file at all; an abort over an existing NAME leaves that image untouched,
 * with its id and pages.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

static const struct uffd_image_region region = {
	.addr = 0x100000, .len = 16 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON,
};

int main(void)
{
	struct uffd_image_writer *w, *w2;
	struct uffd_image_info info;
	struct uffd_image *img;
	const char *dir, *path, *tmp;
	char tmp_name[64];
	uint8_t page[PAGE], back[PAGE];
	struct stat st;
	uint64_t id;

	dir = t_img_dir();
	path = t_img_path(0, dir, "image.img");
	snprintf(tmp_name, sizeof(tmp_name), "image.img.tmp-%d", (int)getpid());
	tmp = t_img_path(1, dir, tmp_name);
	t_fill(page, PAGE, 5);

	w = uffd_image_create(path, &region, 1, NULL, 0);
	CHECK(w);
	CHECK_OK(stat(tmp, &st));
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(st.st_size, T_IMG_CHUNKS_START(1));
	CHECK_EQ(t_count_files(dir), 1);
	w2 = uffd_image_create(path, &region, 1, NULL, 0);
	CHECK(!w2);
	CHECK_EQ(errno, EEXIST);
	CHECK_OK(uffd_image_put_page(w, 0, 1, page));
	CHECK_OK(uffd_image_put(w, 0, 2, 3, NULL, 7));
	uffd_image_abort(w);
	CHECK_EQ(t_count_files(dir), 0);
	uffd_image_abort(NULL);

	/* abort while an image of that name exists: it stays as it was */
	w = uffd_image_create(path, &region, 1, NULL, 0);
	CHECK(w);
	CHECK_OK(uffd_image_put_page(w, 0, 1, page));
	CHECK_OK(uffd_image_commit(w));
	CHECK_OK(stat(path, &st));
	CHECK_EQ(st.st_mode & 07777, 0600);
	img = uffd_image_open(path, NULL);
	CHECK(img);
	uffd_image_info(img, &info);
	id = info.id;
	uffd_image_close(img);

	w = uffd_image_create(path, &region, 1, NULL, 0);
	CHECK(w);
	CHECK_OK(uffd_image_put_page(w, 0, 1, NULL));
	CHECK_OK(uffd_image_put_page(w, 0, 9, page));
	CHECK_EQ(t_count_files(dir), 2);
	uffd_image_abort(w);
	CHECK_EQ(t_count_files(dir), 1);
	img = uffd_image_open(path, NULL);
	CHECK(img);
	uffd_image_info(img, &info);
	CHECK_EQ(info.id, id);
	CHECK_EQ(info.pages, 1);
	CHECK_EQ(uffd_image_read_page(img, 0, 1, back), 1);
	CHECK(!memcmp(back, page, PAGE));
	CHECK_EQ(uffd_image_read_page(img, 0, 9, back), -ENOENT);
	CHECK_OK(uffd_image_verify(img, NULL));
	uffd_image_close(img);
	return T_EXIT_PASS;
}
