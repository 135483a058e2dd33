/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the migration's message parser (src/migrate/wire.c), as a
 * peer's bytes reach it - a connection's stream of messages, each a
 * 16-byte header and the payload the header announces, parsed against a
 * fixed layout of three regions (16 pages of 4 KiB, 2 of 2 MiB, 70 of
 * 4 KiB: 88 pages, a bitmap whose last word is partly past the end).
 *
 * A fuzzer that had to guess CRC32Cs would never get past them, so the
 * first input byte has a say: bit 0 set, each header's CRC is recomputed
 * (the header checks behind it get fuzzed), bit 1 set, each page entry's
 * CRC too (the payload checks behind it get fuzzed); clear, the bytes go
 * in as they are (the checksums themselves do).
 *
 * What the parser is held to, for every message it accepts: every index
 * in range of the layout, every pointer into the payload it was given and
 * every length within it, the counts it reports equal to what the payload
 * holds.  Anything else is a bug: abort(), and libFuzzer keeps the input.
 * A message it refuses ends the stream, as it ends a connection.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/wire.h"
#include "util/crc32c.h"

#define FIX_HEADER_CRC	0x01
#define FIX_PAGE_CRCS	0x02

static const struct mig_layout_region regions[3] = {
	{ 16, 4096, 0 }, { 2, 2u << 20, 16 }, { 70, 4096, 18 },
};
static const struct mig_layout layout = { 3, regions, 88 };

static void expect(int cond)
{
	if (!cond)
		abort();
}

/* p is inside [base, base+len), and so is [p, p+n). */
static void within(const uint8_t *p, uint64_t n, const uint8_t *base, uint64_t len)
{
	expect(p >= base && p <= base + len && n <= len - (uint64_t)(p - base));
}

static void fix_page_crcs(uint8_t *body, const struct mig_hdr *h)
{
	uint64_t data = (uint64_t)MIG_PAGE_ENTRY * h->count;
	int i;

	for (i = 0; i < h->count; i++) {
		uint8_t *e = body + (size_t)MIG_PAGE_ENTRY * i;
		uint32_t region = get_le32(e);
		uint64_t ps;

		if (get_le32(e + 4) & MIG_PAGE_ZERO)
			continue;
		if (region >= 3)
			return;
		ps = regions[region].page_size;
		if (data + ps > h->len)
			return;
		put_le32(e + 16, crc32c(0, body + data, ps));
		data += ps;
	}
}

static void check(const struct mig_msg *m, const uint8_t *body)
{
	uint64_t len = m->h.len, bytes = mig_bitmap_bytes(&layout);
	int i;

	switch (m->h.type) {
	case MIG_HELLO:
		expect(m->hello.nregions >= 1 && m->hello.nregions <= MIG_MAX_REGIONS);
		within(m->hello.regions, 16ull * m->hello.nregions, body, len);
		break;
	case MIG_PAGES:
		expect(m->pages.n == m->h.count && m->pages.n >= 1 && m->pages.n <= MIG_MAX_BATCH);
		for (i = 0; i < m->pages.n; i++) {
			const struct mig_page *p = &m->pages.p[i];

			expect(p->region < 3 && p->page < regions[p->region].npages);
			if (p->data)
				within(p->data, regions[p->region].page_size, body, len);
			else
				expect(p->flags & MIG_PAGE_ZERO);
		}
		break;
	case MIG_REQUEST:
		expect(m->req.n == m->h.count && m->req.n >= 1 && m->req.n <= MIG_MAX_BATCH);
		for (i = 0; i < m->req.n; i++)
			expect(m->req.r[i].region < 3 &&
			       m->req.r[i].page < regions[m->req.r[i].region].npages);
		break;
	case MIG_SWITCHOVER:
		within(m->sw.bitmap, bytes, body, len);
		within(m->sw.blob, m->sw.blob_len, body, len);
		expect(m->sw.blob_len <= MIG_BLOB_MAX && m->sw.pages <= layout.total_pages);
		break;
	case MIG_NEED:
		within(m->need.bitmap, bytes, body, len);
		expect(m->need.pages <= layout.total_pages);
		break;
	case MIG_ERROR:
		within((const uint8_t *)m->error.text, m->error.len, body, len);
		expect(m->error.len <= MIG_MAX_TEXT);
		break;
	default:
		expect(m->h.type > 0 && m->h.type < MIG_TYPE_END);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	uint64_t cap = mig_max_payload(&layout);
	uint8_t flags;

	if (!buf && !(buf = malloc(cap + MIG_HDR_SIZE)))
		abort();
	if (!size)
		return 0;
	flags = data[0];
	data++;
	size--;
	while (size >= MIG_HDR_SIZE) {
		struct mig_hdr h;
		struct mig_msg m;
		int bad = -1, ret;

		memcpy(buf, data, MIG_HDR_SIZE);
		if (flags & FIX_HEADER_CRC)
			put_le32(buf + 12, crc32c(0, buf, 12));
		if (mig_parse_hdr(buf, &layout, &h))
			return 0;
		expect(h.len <= cap);
		if (size - MIG_HDR_SIZE < h.len)
			return 0;	/* the connection ended midway */
		/* The payload on its own, as mig_recv() receives it: a read
		 * past it would be caught by AddressSanitizer. */
		memcpy(buf, data + MIG_HDR_SIZE, h.len);
		if (h.type == MIG_PAGES && (flags & FIX_PAGE_CRCS))
			fix_page_crcs(buf, &h);
		ret = mig_parse_body(&h, buf, &layout, &m, &bad);
		if (ret == -EBADMSG)
			expect(h.type == MIG_PAGES && bad >= 0 && bad < h.count);
		else if (!ret)
			check(&m, buf);
		else
			expect(ret == -EPROTO);
		if (ret)
			return 0;
		data += MIG_HDR_SIZE + h.len;
		size -= MIG_HDR_SIZE + h.len;
	}
	return 0;
}
