/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: a working-set file's header and index as the page
 * server checks them before it trusts them (uffd__ws_parse_header and
 * uffd__ws_parse_index).  An accepted header bounds everything after it:
 * at most one entry per source page, the data offset its count implies;
 * an accepted index names only pages inside the source.  The first input
 * byte's bit 0 has the header's and the index's CRCs made right first
 * (fuzz.h), so the checks behind them get fuzzed too.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "serve/wset.h"
#include "util/le.h"

int LLVMFuzzerTestOneInput(const unsigned char *input, size_t insize);

/* Make the header's CRC right, and the index's for the count it states. */
static void fix_crcs(uint8_t *f, size_t n)
{
	uint64_t count;

	if (n < WS_HDR)
		return;
	put_le32(f + 60, crc32c(0, f, 60));
	count = get_le64(f + 32);
	if (count <= (n - WS_HDR) / 12 && uffd__ws_index_size(count) <= n - WS_HDR)
		put_le32(f + WS_HDR + count * 12, crc32c(0, f + WS_HDR, count * 12));
}

static int one(const unsigned char *data, size_t size)
{
	struct ws_header h;
	uint64_t *pages, i;
	uint32_t *crcs;
	size_t isize;

	if (uffd__ws_parse_header(data, size, &h))
		return 0;
	if (h.count > h.source_size / 4096 || h.data_offset != uffd__ws_data_offset(h.count))
		abort();
	isize = uffd__ws_index_size(h.count);
	if (size - WS_HDR < isize)
		return 0;
	pages = malloc((h.count + 1) * sizeof(*pages));
	crcs = malloc((h.count + 1) * sizeof(*crcs));
	if (pages && crcs && !uffd__ws_parse_index(data + WS_HDR, isize, &h, pages, crcs))
		for (i = 0; i < h.count; i++)
			if (pages[i] >= h.source_size / 4096)
				abort();
	free(pages);
	free(crcs);
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *input, size_t insize)
{
	unsigned char *data;

	if (!insize)
		return 0;
	data = malloc(insize);
	if (!data)
		abort();
	memcpy(data, input + 1, insize - 1);
	if (input[0] & FUZZ_FIX_CRCS)
		fix_crcs(data, insize - 1);
	one(data, insize - 1);
	free(data);
	return 0;
}
