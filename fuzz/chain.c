/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the chain opener (parent links by name and id, region
 * tables), and reading and checking a chain.  The input is a flags byte
 * (fuzz.h), a count of files (1 to 4), then each file as a 32-bit
 * little-endian length and its bytes (the last takes what is left); they
 * are written as f0 (the newest) to f3 in a directory of their own, so a
 * delta names its parent "f1", "f2"...  The chain of f0 is opened, every
 * page it records is read (bounded), it is checked, and - when small
 * enough - restored eagerly into new memory.
 */
#include <sys/stat.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

#include "fuzz.h"
#include "image/internal.h"

#define MAX_FILES	4
#define MAX_PAGE	(64u << 10)
#define MAX_READS	256
#define MAX_RESTORE	(64ULL << 20)	/* bytes of regions restored at most */

static uint8_t scratch[MAX_PAGE];

static void read_chain(struct uffd_image_chain *c, const struct uffd_image_info *info)
{
	uint64_t from, start, end;
	int r, reads = 0;

	for (r = 0; r < info->nregions; r++) {
		const struct uffd_image_region *reg = &info->regions[r];

		if (reg->page_size > MAX_PAGE)
			continue;
		uffd_image_chain_read_page(c, r, 0, scratch);
		uffd_image_chain_read_page(c, r, reg->len / reg->page_size - 1, scratch);
		for (from = 0; reads < MAX_READS &&
			       uffd__image_chain_next_run(c, r, from, &start, &end); from = end)
			for (; start < end && reads < MAX_READS; start++, reads++)
				uffd_image_chain_read_page(c, r, start, scratch);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *dir = fuzz_dir();
	struct uffd_image_info info;
	struct uffd_image_chain *c;
	struct uffd_restore *rs;
	uint64_t bad, total = 0, len;
	char path[MAX_FILES][192], bad_file[192];
	uint8_t flags, *f;
	int i, nfiles;

	if (size < 2)
		return 0;
	flags = data[0];
	nfiles = data[1] % MAX_FILES + 1;
	data += 2;
	size -= 2;
	for (i = 0; i < MAX_FILES; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/f%d", dir, i);
		unlink(path[i]);
	}
	for (i = 0; i < nfiles; i++) {
		len = size;
		if (i < nfiles - 1 && size >= 4) {
			len = fuzz_le(data, 4);
			data += 4;
			size -= 4;
			if (len > size)
				len = size;
		}
		f = malloc(len + 1);
		if (!f)
			abort();
		memcpy(f, data, len);
		if (flags & FUZZ_FIX_CRCS)
			fuzz_fix_image(f, len);
		fuzz_write_file(path[i], f, len);
		free(f);
		data += len;
		size -= len;
	}

	c = uffd_image_chain_open(path[0], &bad);
	if (c) {
		if (uffd_image_chain_length(c) < 1 ||
		    uffd_image_info(uffd_image_chain_get(c, 0), &info))
			abort();
		read_chain(c, &info);
		for (i = 0; i < info.nregions; i++)	/* regions live with c */
			total += info.regions[i].len;
		uffd_image_chain_close(c);
	}
	uffd_image_chain_check(path[0], bad_file, sizeof(bad_file), &bad);
	if (c && total <= MAX_RESTORE) {
		rs = uffd_restore_open(path[0], UFFD_RESTORE_ANYWHERE);
		uffd_restore_close(rs, true);
	}
	return 0;
}
