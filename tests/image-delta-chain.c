/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A base and two deltas read as one memory: through the chain each page
 * comes from the newest image that records it - a page changed in a delta
 * reads the delta's data, a page recorded as zero in a delta reads zero
 * even though an older image has data for it, an unchanged page comes from
 * the base, and a page no image has is zero.  Each image alone reports its
 * own pages and -ENOENT for the rest; the chain is newest first, with the
 * parent names and ids the deltas recorded.
 *
 *   image-delta-chain --make-chain DIR   only write DIR/base.img,
 *                                        DIR/d1.img, DIR/d2.img
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NIMAGES 3
#define NPAGES 10

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = NPAGES * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 3 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_SHMEM },
};
static const char *const names[NIMAGES] = { "base.img", "d1.img", "d2.img" };

/*
 * What each image records of each page: D data, Z zero, - nothing.
 * Region 0, by page: 0 unchanged since the base; 1 changed in d1; 2 changed
 * in d1 and d2; 3 zeroed in d1; 4 zeroed in d1, written again in d2; 5 new
 * in d1; 6 zero in the base, data in d2; 7 never written; 8 zeroed in d2;
 * 9 zero in the base only.  Region 1: 0 unchanged; 1 and 2 new in d2.
 */
static const char *const state[NIMAGES][2] = {
	{ "DDDDD-Z-DZ", "D--" },
	{ "-DDZZD----", "---" },
	{ "--D-D-D-Z-", "-DZ" },
};

static unsigned seed(int image, int region, int page)
{
	return 1 + image * 100 + region * 10 + page;
}

/* One image: each run of recorded pages is one uffd_image_put. */
static void write_image(const char *dir, int image)
{
	const char *path = t_img_path(0, dir, names[image]);
	const char *parent = image ? t_img_path(1, dir, names[image - 1]) : NULL;
	uint8_t data[NPAGES * PAGE];
	struct uffd_image_writer *w;
	int region, page, run, n;
	uint64_t zero_mask;

	w = uffd_image_create(path, regions, 2, parent, 1000 * (image + 1));
	if (!w)
		FAIL("create %s: %s", path, strerror(errno));
	for (region = 0; region < 2; region++) {
		const char *s = state[image][region];

		for (page = 0; s[page]; page += run ? run : 1) {
			zero_mask = 0;
			n = 0;
			for (run = 0; s[page + run] && s[page + run] != '-'; run++) {
				if (s[page + run] == 'Z')
					zero_mask |= 1ULL << run;
				else
					t_fill(data + n++ * PAGE, PAGE, seed(image, region, page + run));
			}
			if (run)
				CHECK_OK(uffd_image_put(w, region, page, run, data, zero_mask));
		}
	}
	CHECK_OK(uffd_image_commit(w));
}

static void check_info(struct uffd_image *img, int image, uint64_t *ids)
{
	struct uffd_image_info info;

	CHECK_OK(uffd_image_info(img, &info));
	CHECK_EQ(info.delta, image > 0);
	CHECK_EQ(info.instant_ns, 1000 * (image + 1));
	CHECK(!strcmp(info.parent, image ? names[image - 1] : ""));
	ids[image] = info.id;
	if (image)
		CHECK_EQ(info.parent_id, ids[image - 1]);
	else
		CHECK_EQ(info.parent_id, 0);
	CHECK_OK(uffd_image_verify(img, NULL));
}

int main(int argc, char **argv)
{
	uint8_t buf[PAGE], want[PAGE];
	uint64_t ids[NIMAGES], bad = 0;
	struct uffd_image_chain *chain;
	struct uffd_image *img;
	int image, region, page, newest, ret;
	const char *dir;
	char s;

	if (argc == 3 && !strcmp(argv[1], "--make-chain")) {
		for (image = 0; image < NIMAGES; image++)
			write_image(argv[2], image);
		return 0;
	}
	dir = t_img_dir();
	for (image = 0; image < NIMAGES; image++)
		write_image(dir, image);

	chain = uffd_image_chain_open(t_img_path(0, dir, "d2.img"), &bad);
	if (!chain)
		FAIL("chain open: %s at %" PRIu64, strerror(errno), bad);
	CHECK_EQ(uffd_image_chain_length(chain), NIMAGES);
	CHECK(!uffd_image_chain_get(chain, NIMAGES));
	CHECK(!uffd_image_chain_get(chain, -1));
	for (image = 0; image < NIMAGES; image++)
		check_info(uffd_image_chain_get(chain, NIMAGES - 1 - image), image, ids);

	for (region = 0; region < 2; region++) {
		for (page = 0; state[0][region][page]; page++) {
			/* each image alone */
			for (image = 0; image < NIMAGES; image++) {
				img = uffd_image_chain_get(chain, NIMAGES - 1 - image);
				s = state[image][region][page];
				ret = uffd_image_read_page(img, region, page, buf);
				CHECK_EQ(ret, s == 'D' ? 1 : s == 'Z' ? 0 : -ENOENT);
				t_fill(want, PAGE, seed(image, region, page));
				if (s == 'D' && memcmp(buf, want, PAGE))
					FAIL("%s: region %d page %d differs", names[image],
					     region, page);
			}
			/* the chain: the newest image that records it */
			for (newest = NIMAGES - 1; newest >= 0; newest--)
				if (state[newest][region][page] != '-')
					break;
			s = newest >= 0 ? state[newest][region][page] : 'Z';
			memset(buf, 0xaa, PAGE);
			ret = uffd_image_chain_read_page(chain, region, page, buf);
			if (s == 'D') {
				CHECK_EQ(ret, 1);
				t_fill(want, PAGE, seed(newest, region, page));
				if (memcmp(buf, want, PAGE))
					FAIL("chain: region %d page %d is not %s's", region, page,
					     names[newest]);
			} else {
				CHECK_EQ(ret, 0);
				if (!t_is_zero(buf, PAGE))
					FAIL("chain: region %d page %d not zero", region, page);
			}
		}
	}
	CHECK_EQ(uffd_image_chain_read_page(chain, 0, NPAGES, buf), -EINVAL);
	CHECK_EQ(uffd_image_chain_read_page(chain, 2, 0, buf), -EINVAL);
	uffd_image_chain_close(chain);

	/* a chain opened at a middle image ends at the base */
	chain = uffd_image_chain_open(t_img_path(0, dir, "d1.img"), &bad);
	CHECK(chain);
	CHECK_EQ(uffd_image_chain_length(chain), 2);
	CHECK_EQ(uffd_image_chain_read_page(chain, 0, 3, buf), 0);
	CHECK_EQ(uffd_image_chain_read_page(chain, 0, 4, buf), 0);
	CHECK_EQ(uffd_image_chain_read_page(chain, 0, 2, buf), 1);
	t_fill(want, PAGE, seed(1, 0, 2));
	CHECK(!memcmp(buf, want, PAGE));
	uffd_image_chain_close(chain);
	return T_EXIT_PASS;
}
