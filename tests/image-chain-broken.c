/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A chain whose links do not hold is refused, never read: opening it fails
 * with EBADMSG and the offset of the child's field that does not match -
 * 64 (the parent name) when the parent file is missing, 40 (the parent id)
 * when a file of that name is another image or the chain loops back on
 * itself, 320 (the region table) when the parent's regions differ - or the
 * offset inside a parent that is itself corrupt.  The writer refuses to
 * start such a delta: EINVAL for other regions or a parent in another
 * directory, the parent's own error when it is missing or not an image.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "util/crc32c.h"

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = 8 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 8 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_SHMEM },
};

static const char *dir;

static void write_image(const char *name, const char *parent_name, unsigned fill)
{
	const char *path = t_img_path(6, dir, name);
	const char *parent = parent_name ? t_img_path(7, dir, parent_name) : NULL;
	struct uffd_image_writer *w;
	uint8_t page[PAGE];

	w = uffd_image_create(path, regions, 2, parent, 0);
	if (!w)
		FAIL("create %s: %s", name, strerror(errno));
	t_fill(page, PAGE, fill);
	CHECK_OK(uffd_image_put_page(w, 0, fill % 8, page));
	CHECK_OK(uffd_image_commit(w));
}

static void expect_broken(const char *name, uint64_t want)
{
	uint64_t bad = ~0ULL;

	if (uffd_image_chain_open(t_img_path(5, dir, name), &bad))
		FAIL("chain at %s opened", name);
	if (errno != EBADMSG || bad != want)
		FAIL("chain at %s: %s at %" PRIu64 ", want EBADMSG at %" PRIu64, name,
		     strerror(errno), bad, want);
}

static int chain_length(const char *name)
{
	struct uffd_image_chain *c = uffd_image_chain_open(t_img_path(5, dir, name), NULL);
	int n;

	if (!c)
		FAIL("chain at %s: %s", name, strerror(errno));
	n = uffd_image_chain_length(c);
	uffd_image_chain_close(c);
	return n;
}

/* Rewrite bytes of an image before its chunks, and the CRCs, as a forger would. */
static void forge(const char *name, uint64_t off, const void *bytes, size_t len)
{
	const char *path = t_img_path(5, dir, name);
	uint64_t size;
	uint8_t *f = t_read_file(path, &size);
	uint32_t crc, nregions = t_le(f + 20, 4);
	size_t table = 32 * nregions;
	int i;

	memcpy(f + off, bytes, len);
	crc = crc32c(crc32c(0, f, 60), f + 64, 256);
	for (i = 0; i < 4; i++)
		f[60 + i] = crc >> (8 * i);
	crc = crc32c(0, f + 320, table);
	for (i = 0; i < 4; i++)
		f[320 + table + i] = crc >> (8 * i);
	t_write_file(path, f, size);
	free(f);
}

int main(void)
{
	struct uffd_image_region other[2];
	struct uffd_image_info info;
	struct uffd_image *img;
	const char *elsewhere;
	uint8_t id[8], flags[4] = { 0x04 };
	char sub[300];
	int i;

	dir = t_img_dir();
	write_image("base.img", NULL, 1);
	write_image("d1.img", "base.img", 2);
	write_image("d2.img", "d1.img", 3);
	CHECK_EQ(chain_length("d2.img"), 3);

	/* the parent is gone */
	CHECK_OK(rename(t_img_path(0, dir, "d1.img"), t_img_path(1, dir, "d1.saved")));
	expect_broken("d2.img", 64);
	CHECK_EQ(chain_length("base.img"), 1);

	/* another d1.img, from another checkpoint: its id differs */
	write_image("d1.img", "base.img", 4);
	expect_broken("d2.img", 40);
	CHECK_OK(rename(t_img_path(1, dir, "d1.saved"), t_img_path(0, dir, "d1.img")));
	CHECK_EQ(chain_length("d2.img"), 3);

	/* d1 names itself as parent, with its own id: a loop */
	img = uffd_image_open(t_img_path(0, dir, "d1.img"), NULL);
	CHECK(img);
	uffd_image_info(img, &info);
	uffd_image_close(img);
	for (i = 0; i < 8; i++)
		id[i] = info.id >> (8 * i);
	write_image("loop.img", "base.img", 5);
	forge("loop.img", 40, id, 8);
	forge("loop.img", 32, id, 8);
	forge("loop.img", 64, "loop.img", 9);
	img = uffd_image_open(t_img_path(0, dir, "loop.img"), NULL);
	CHECK(img);				/* a sound image on its own */
	uffd_image_close(img);
	expect_broken("loop.img", 40);

	/* the base's regions differ (same id): region 1 became hugetlb */
	write_image("b2.img", NULL, 6);
	write_image("b2d.img", "b2.img", 7);
	forge("b2.img", 320 + 32 + 20, flags, 4);
	CHECK_EQ(chain_length("b2.img"), 1);
	expect_broken("b2d.img", 320);

	/* a parent that is itself corrupt: its own offset */
	t_flip_byte(t_img_path(0, dir, "base.img"), 300, 1);	/* parent field: header CRC */
	expect_broken("d2.img", 0);
	t_flip_byte(t_img_path(0, dir, "base.img"), 300, 1);
	CHECK_EQ(chain_length("d2.img"), 3);

	/* the writer refuses deltas that could not be chained */
	memcpy(other, regions, sizeof(other));
	other[1].len += PAGE;
	CHECK(!uffd_image_create(t_img_path(0, dir, "x.img"), other, 2,
				 t_img_path(1, dir, "base.img"), 0));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_image_create(t_img_path(0, dir, "x.img"), regions, 1,
				 t_img_path(1, dir, "base.img"), 0));
	CHECK_EQ(errno, EINVAL);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	CHECK_OK(mkdir(sub, 0700));
	elsewhere = t_img_path(2, sub, "x.img");
	CHECK(!uffd_image_create(elsewhere, regions, 2, t_img_path(1, dir, "base.img"), 0));
	CHECK_EQ(errno, EINVAL);
	CHECK_OK(rmdir(sub));
	CHECK(!uffd_image_create(t_img_path(0, dir, "x.img"), regions, 2,
				 t_img_path(1, dir, "nothing.img"), 0));
	CHECK_EQ(errno, ENOENT);
	t_write_file(t_img_path(1, dir, "text"), "hello\n", 6);
	CHECK(!uffd_image_create(t_img_path(0, dir, "x.img"), regions, 2,
				 t_img_path(1, dir, "text"), 0));
	CHECK_EQ(errno, EBADMSG);
	CHECK_EQ(access(t_img_path(0, dir, "x.img"), F_OK), -1);
	return T_EXIT_PASS;
}
