/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A base image round-trips exactly: two regions (4 KiB pages and 2 MiB
 * pages) written with data pages, zero pages and holes, in scrambled order,
 * in multi-page chunks and single pages; reopened, every page reads back as
 * it was written (data byte for byte, zero as zero, holes as -ENOENT, and
 * as zero through a chain), the info counts are exact, the file is exactly
 * as long as the layout says, checksums verify and no temporary file is
 * left behind.
 *
 *   image-round-trip --make-image PATH   only write the image to PATH and
 *                                        print "chunk OFFSET SIZE" lines
 *                                        (for tests/image-snapshot-info.sh)
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define R0_PAGES 100
#define R1_PAGES 4
#define INSTANT 1700000000123456789ULL

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x10000000, .len = R0_PAGES * PAGE, .page_size = PAGE,
	  .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x40000000, .len = R1_PAGES * HPAGE, .page_size = HPAGE,
	  .flags = UFFD_IMAGE_HUGETLB },
};

/* One put: count pages from first, zero_mask as for uffd_image_put. */
struct put {
	int region;
	uint64_t first;
	uint32_t count;
	uint64_t zero_mask;
	bool single;		/* by uffd_image_put_page */
};

/*
 * Region 0: pages 0,1,3,4 single data (2 a hole); 10..29 one chunk with
 * zeros at 12,15,17,21,29; 40..47 eight data; 50,51 single zeros; 64..99
 * one all-zero chunk; holes 2, 5..9, 30..39, 48,49, 52..63.
 * Region 1: page 1 data, page 3 zero; 0 and 2 holes.
 */
static const struct put plan[] = {
	{ 0, 3, 1, 0, true },
	{ 0, 10, 20, (1ULL << 2) | (1ULL << 5) | (1ULL << 7) | (1ULL << 11) | (1ULL << 19), false },
	{ 1, 3, 1, 1, true },
	{ 0, 0, 1, 0, true },
	{ 0, 50, 1, 1, true },
	{ 0, 64, 36, (1ULL << 36) - 1, false },
	{ 1, 1, 1, 0, false },
	{ 0, 4, 1, 0, true },
	{ 0, 40, 8, 0, false },
	{ 0, 51, 1, 1, true },
	{ 0, 1, 1, 0, true },
};
#define NPUTS ((int)(sizeof(plan) / sizeof(plan[0])))

enum page_kind { HOLE, DATA, ZERO };

static unsigned page_seed(int region, uint64_t page)
{
	return region * 1000 + page + 1;
}

static enum page_kind expected_kind(int region, uint64_t page)
{
	int i;

	for (i = 0; i < NPUTS; i++)
		if (plan[i].region == region && page >= plan[i].first &&
		    page < plan[i].first + plan[i].count)
			return plan[i].zero_mask & (1ULL << (page - plan[i].first)) ? ZERO : DATA;
	return HOLE;
}

/* The present pages of one put, filled with their patterns. */
static void *put_data(const struct put *p)
{
	size_t ps = regions[p->region].page_size, n = 0;
	uint8_t *data = malloc(p->count * ps);
	uint32_t i;

	CHECK(data);
	for (i = 0; i < p->count; i++)
		if (!(p->zero_mask & (1ULL << i)))
			t_fill(data + n++ * ps, ps, page_seed(p->region, p->first + i));
	return data;
}

/* Write the image in a scrambled order (a fixed permutation). */
static void write_image(const char *path, uint64_t *expect_size)
{
	static const int order[NPUTS] = { 7, 2, 9, 0, 5, 10, 3, 8, 1, 6, 4 };
	struct uffd_image_writer *w;
	uint64_t size = T_IMG_CHUNKS_START(2);
	int i;

	w = uffd_image_create(path, regions, 2, NULL, INSTANT);
	if (!w)
		FAIL("uffd_image_create: %s", strerror(errno));
	CHECK_EQ(uffd_image_bytes(w), size);
	for (i = 0; i < NPUTS; i++) {
		const struct put *p = &plan[order[i]];
		void *data = put_data(p);

		if (p->single)
			CHECK_OK(uffd_image_put_page(w, p->region, p->first,
						     p->zero_mask ? NULL : data));
		else
			CHECK_OK(uffd_image_put(w, p->region, p->first, p->count,
						data, p->zero_mask));
		free(data);
		size += T_IMG_CHUNK_HDR + 4 + (uint64_t)regions[p->region].page_size *
			(p->count - __builtin_popcountll(p->zero_mask));
		CHECK_EQ(uffd_image_bytes(w), size);
	}
	CHECK_OK(uffd_image_commit(w));
	/* version 3: every chunk header again, then the trailer */
	*expect_size = size + NPUTS * T_IMG_CHUNK_HDR + T_IMG_TRAILER;
}

static int make_image(const char *path)
{
	struct t_chunk chunks[NPUTS];
	uint64_t size;
	int i, n;

	write_image(path, &size);
	n = t_img_chunks(path, chunks, NPUTS);
	for (i = 0; i < n; i++)
		printf("chunk %" PRIu64 " %" PRIu64 "\n", chunks[i].offset, chunks[i].size);
	return 0;
}

static void check_pages(struct uffd_image *img, struct uffd_image_chain *chain)
{
	uint8_t *buf = malloc(HPAGE), *want = malloc(HPAGE);
	int region;
	uint64_t page, npages, ps;

	CHECK(buf && want);
	for (region = 0; region < 2; region++) {
		ps = regions[region].page_size;
		npages = regions[region].len / ps;
		for (page = 0; page < npages; page++) {
			enum page_kind kind = expected_kind(region, page);

			memset(buf, 0xaa, ps);
			switch (kind) {
			case DATA:
				t_fill(want, ps, page_seed(region, page));
				CHECK_EQ(uffd_image_read_page(img, region, page, buf), 1);
				if (memcmp(buf, want, ps))
					FAIL("region %d page %" PRIu64 ": data differs", region, page);
				memset(buf, 0xaa, ps);
				CHECK_EQ(uffd_image_chain_read_page(chain, region, page, buf), 1);
				if (memcmp(buf, want, ps))
					FAIL("chain: region %d page %" PRIu64 ": data differs",
					     region, page);
				break;
			case ZERO:
				CHECK_EQ(uffd_image_read_page(img, region, page, buf), 0);
				if (!t_is_zero(buf, ps))
					FAIL("region %d page %" PRIu64 ": not zeroed", region, page);
				break;
			case HOLE:
				CHECK_EQ(uffd_image_read_page(img, region, page, buf), -ENOENT);
				CHECK_EQ(uffd_image_chain_read_page(chain, region, page, buf), 0);
				if (!t_is_zero(buf, ps))
					FAIL("chain: hole %d/%" PRIu64 " not zero", region, page);
				break;
			}
		}
		CHECK_EQ(uffd_image_read_page(img, region, npages, buf), -EINVAL);
	}
	CHECK_EQ(uffd_image_read_page(img, 2, 0, buf), -EINVAL);
	CHECK_EQ(uffd_image_read_page(img, -1, 0, buf), -EINVAL);
	free(buf);
	free(want);
}

int main(int argc, char **argv)
{
	uint64_t size, pages = 0, zero = 0, bad = 0;
	struct uffd_image_chain *chain;
	struct uffd_image_info info;
	struct uffd_image *img;
	const char *dir, *path;
	int i;

	if (argc == 3 && !strcmp(argv[1], "--make-image"))
		return make_image(argv[2]);

	dir = t_img_dir();
	path = t_img_path(0, dir, "base.img");
	write_image(path, &size);
	CHECK_EQ(t_file_size(path), size);
	CHECK_EQ(t_count_files(dir), 1);	/* no NAME.tmp-PID left */

	img = uffd_image_open(path, &bad);
	if (!img)
		FAIL("uffd_image_open: %s at %" PRIu64, strerror(errno), bad);
	CHECK_OK(uffd_image_info(img, &info));
	for (i = 0; i < NPUTS; i++) {
		pages += plan[i].count;
		zero += __builtin_popcountll(plan[i].zero_mask);
	}
	CHECK_EQ(info.version, UFFD_IMAGE_VERSION);
	CHECK_EQ(info.delta, false);
	CHECK(info.id != 0);
	CHECK_EQ(info.parent_id, 0);
	CHECK_EQ(info.parent[0], '\0');
	CHECK_EQ(info.instant_ns, INSTANT);
	CHECK_EQ(info.nregions, 2);
	CHECK(!memcmp(info.regions, regions, sizeof(regions)));
	CHECK_EQ(info.chunks, NPUTS);
	CHECK_EQ(info.chunks, t_img_chunks(path, NULL, 0));
	CHECK_EQ(info.pages, pages);
	CHECK_EQ(info.pages, 4 + 20 + 8 + 2 + 36 + 2);
	CHECK_EQ(info.zero_pages, zero);
	CHECK_EQ(info.zero_pages, 5 + 2 + 36 + 1);
	CHECK_EQ(info.file_size, size);
	CHECK_OK(uffd_image_verify(img, &bad));

	chain = uffd_image_chain_open(path, &bad);
	if (!chain)
		FAIL("uffd_image_chain_open: %s at %" PRIu64, strerror(errno), bad);
	CHECK_EQ(uffd_image_chain_length(chain), 1);
	check_pages(img, chain);
	uffd_image_chain_close(chain);
	uffd_image_close(img);
	return T_EXIT_PASS;
}
