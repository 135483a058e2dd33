/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: libuffd's page-server frames (uffd__serve_frame_parse
 * and every payload decoder, as the server and the client read them).  A
 * frame that parses has exactly the size it says; every decoder either
 * refuses the payload or fills its struct within bounds; a stream of
 * frames is walked to its end, as a connection would be.  The first input
 * byte decides, as for the image targets (fuzz.h), whether each frame's
 * CRC is made right before the parser sees it (bit 0 set: the decoders
 * behind the checksum get fuzzed) or left as it is (the checksum does).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "serve/proto.h"
#include "util/le.h"

int LLVMFuzzerTestOneInput(const unsigned char *input, size_t insize);

static struct serve_mapping maps[UFFD_SERVE_MAX_REGIONS];

/* Make every frame's CRC right, walking the frames by their lengths. */
static void fix_crcs(uint8_t *f, size_t n)
{
	size_t pos = 0;

	while (n - pos >= SERVE_HDR) {
		uint32_t len = get_le32(f + pos + 8);

		if (len > SERVE_MAX_PAYLOAD || len > n - pos - SERVE_HDR)
			break;
		put_le32(f + pos + 12, crc32c(crc32c(0, f + pos, 12), f + pos + SERVE_HDR, len));
		pos += SERVE_HDR + len;
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *input, size_t insize)
{
	unsigned char *data;
	size_t pos = 0, size;

	if (!insize)
		return 0;
	size = insize - 1;
	data = malloc(size + 1);
	if (!data)
		abort();
	memcpy(data, input + 1, size);
	if (input[0] & FUZZ_FIX_CRCS)
		fix_crcs(data, size);
	while (pos < size) {
		struct serve_frame f;
		struct serve_hello h;
		struct serve_layout l;
		struct serve_answer a;
		struct serve_event ev;
		struct serve_counts k;
		uint32_t mflags;
		int ret = uffd__serve_frame_parse(data + pos, size - pos, &f), n;

		if (ret <= 0)
			break;
		if ((size_t)ret > size - pos || (size_t)ret != SERVE_HDR + f.len ||
		    f.payload != data + pos + SERVE_HDR)
			abort();
		uffd__serve_hello_get(&f, &h);
		if (!uffd__serve_layout_get(&f, &l, maps, UFFD_SERVE_MAX_REGIONS) &&
		    (l.nextents > UFFD_SERVE_MAX_REGIONS || !memchr(l.path, 0, sizeof(l.path))))
			abort();
		n = uffd__serve_map_get(&f, maps, UFFD_SERVE_MAX_REGIONS, &mflags);
		if (n > UFFD_SERVE_MAX_REGIONS || (n > 0 && (mflags & ~SERVE_MAP_SHARED)))
			abort();
		if (n > 0)
			uffd__serve_check_mappings(maps, n, 1ull << 40, NULL, 0);
		if (!uffd__serve_answer_get(&f, &a) &&
		    (a.status > 0 || !memchr(a.reason, 0, sizeof(a.reason))))
			abort();
		uffd__serve_event_get(&f, &ev);
		uffd__serve_counts_get(&f, &k);
		pos += ret;
	}
	free(data);
	return 0;
}
