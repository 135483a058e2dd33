/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: a working-set file's header and index as the page
 * server checks them before it trusts them (uffd__ws_parse_header and
 * uffd__ws_parse_index).  An accepted header bounds everything after it:
 * at most one entry per source page, the data offset its count implies;
 * an accepted index names only pages inside the source.
 */
#include <stdlib.h>

#include "serve/wset.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
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
