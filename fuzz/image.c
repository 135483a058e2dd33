/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the image reader.  The input (after its first byte, see
 * fuzz.h) is an image file; it is opened, described, verified, and every
 * page it records is read - through the index (uffd__image_next_run) and
 * at the ends of each region - as a restore would.  Reads are bounded so
 * that one input stays quick whatever its regions claim.
 */
#include <sys/mman.h>
#include <uffd/image.h>

#include "fuzz.h"
#include "image/internal.h"

#define MAX_PAGE	(64u << 10)	/* pages read only up to this size */
#define MAX_READS	256

static uint8_t *scratch;	/* MAX_PAGE */

static void read_some(struct uffd_image *img, const struct uffd_image_info *info)
{
	uint64_t from, start, end;
	int r, reads = 0;

	for (r = 0; r < info->nregions; r++) {
		const struct uffd_image_region *reg = &info->regions[r];
		uint64_t npages = reg->len / reg->page_size;

		if (reg->page_size > MAX_PAGE)
			continue;
		uffd_image_read_page(img, r, 0, scratch);
		uffd_image_read_page(img, r, npages - 1, scratch);
		uffd_image_read_page(img, r, npages, scratch);	/* -EINVAL */
		for (from = 0; reads < MAX_READS &&
			       uffd__image_next_run(img, r, from, &start, &end); from = end)
			for (; start < end && reads < MAX_READS; start++, reads++)
				uffd_image_read_page(img, r, start, scratch);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct uffd_image_info info;
	struct uffd_image *img;
	uint64_t bad;
	uint8_t *f;
	char path[64];

	if (fd < 0) {
		fd = memfd_create("uffd-fuzz-image", MFD_CLOEXEC);
		scratch = malloc(MAX_PAGE);
		if (fd < 0 || !scratch)
			abort();
	}
	if (!size)
		return 0;
	f = malloc(size);
	if (!f)
		abort();
	memcpy(f, data + 1, size - 1);
	if (data[0] & FUZZ_FIX_CRCS)
		fuzz_fix_image(f, size - 1);
	if (ftruncate(fd, 0) || pwrite(fd, f, size - 1, 0) != (ssize_t)(size - 1))
		abort();
	free(f);

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	img = uffd_image_open(path, &bad);
	if (!img)
		return 0;
	if (uffd_image_info(img, &info))
		abort();
	if (data[0] & 0x02)
		uffd_image_verify(img, &bad);
	read_some(img, &info);
	uffd_image_verify(img, &bad);
	uffd_image_close(img);
	return 0;
}
