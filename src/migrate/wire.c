/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The migration's message parser and header encoder (see wire.h).
 *
 * Nothing here does I/O or keeps state: a header is checked against the
 * stated maximum of its type before the caller reads its payload, and a
 * payload is checked field by field against the layout both sides agreed
 * on.  Whatever a peer sends, the answer is a decoded message whose every
 * region and page index is in range and whose every length adds up, or an
 * error - which is what the fuzz target (fuzz/migrate-wire.c) holds it to.
 */
#include <errno.h>
#include <string.h>

#include "util/crc32c.h"
#include "wire.h"

static uint64_t max_len(uint8_t type, uint16_t count, const struct mig_layout *lay)
{
	switch (type) {
	case MIG_HELLO:
		return MIG_HELLO_BASE + 16ull * MIG_MAX_REGIONS;
	case MIG_WELCOME:
		return 24;
	case MIG_PAGES:
		return (uint64_t)MIG_PAGE_ENTRY * count + MIG_MAX_DATA;
	case MIG_REQUEST:
		return (uint64_t)MIG_REQ_ENTRY * count;
	case MIG_SWITCHOVER:
		return MIG_SWITCHOVER_BASE + mig_bitmap_bytes(lay) + MIG_BLOB_MAX;
	case MIG_NEED:
		return MIG_NEED_BASE + mig_bitmap_bytes(lay);
	case MIG_RESUMED:
	case MIG_SYNC:
		return 8;
	case MIG_ROUND:
		return 16;
	case MIG_ERROR:
		return MIG_ERROR_BASE + MIG_MAX_TEXT;
	default:		/* DONE, COMPLETE, END */
		return 0;
	}
}

static uint64_t min_len(uint8_t type, uint16_t count, const struct mig_layout *lay)
{
	switch (type) {
	case MIG_HELLO:
		return MIG_HELLO_BASE + 16;
	case MIG_PAGES:
		return (uint64_t)MIG_PAGE_ENTRY * count;
	case MIG_SWITCHOVER:
		return MIG_SWITCHOVER_BASE + mig_bitmap_bytes(lay);
	case MIG_ERROR:
		return MIG_ERROR_BASE;
	default:		/* exact sizes */
		return max_len(type, count, lay);
	}
}

uint64_t mig_max_payload(const struct mig_layout *lay)
{
	uint64_t m = (uint64_t)MIG_PAGE_ENTRY * MIG_MAX_BATCH + MIG_MAX_DATA;
	uint64_t sw = max_len(MIG_SWITCHOVER, 0, lay);

	if (sw > m)
		m = sw;
	if (MIG_HELLO_BASE + 16ull * MIG_MAX_REGIONS > m)
		m = MIG_HELLO_BASE + 16ull * MIG_MAX_REGIONS;
	return m;
}

void mig_put_hdr(void *buf, enum mig_type type, uint8_t flags, uint16_t count, uint32_t len)
{
	uint8_t *b = buf;

	put_le32(b, MIG_MAGIC);
	b[4] = type;
	b[5] = flags;
	b[6] = count;
	b[7] = count >> 8;
	put_le32(b + 8, len);
	put_le32(b + 12, crc32c(0, b, 12));
}

int mig_parse_hdr(const void *buf, const struct mig_layout *lay, struct mig_hdr *h)
{
	const uint8_t *b = buf;
	bool counted;

	if (get_le32(b) != MIG_MAGIC || get_le32(b + 12) != crc32c(0, b, 12))
		return -EPROTO;
	h->type = b[4];
	h->flags = b[5];
	h->count = b[6] | b[7] << 8;
	h->len = get_le32(b + 8);
	if (h->type < MIG_HELLO || h->type >= MIG_TYPE_END || h->flags)
		return -EPROTO;
	counted = h->type == MIG_PAGES || h->type == MIG_REQUEST;
	if (counted ? h->count < 1 || h->count > MIG_MAX_BATCH : h->count != 0)
		return -EPROTO;
	if (h->len < min_len(h->type, h->count, lay) || h->len > max_len(h->type, h->count, lay))
		return -EPROTO;
	return 0;
}

/* Bits past the last page must be clear; returns the number set. */
static int check_bitmap(const uint8_t *bitmap, const struct mig_layout *lay, uint64_t *set)
{
	uint64_t words = mig_bitmap_bytes(lay) / 8, i, n = 0;

	for (i = 0; i < words; i++) {
		uint64_t w = get_le64(bitmap + 8 * i);

		if (i == words - 1 && lay->total_pages % 64)
			if (w >> (lay->total_pages % 64))
				return -EPROTO;
		n += __builtin_popcountll(w);
	}
	*set = n;
	return 0;
}

static int parse_hello(const struct mig_hdr *h, const uint8_t *p, struct mig_msg *m)
{
	struct mig_hello *he = &m->hello;
	uint32_t i;

	he->vmin = get_le32(p);
	he->vmax = get_le32(p + 4);
	he->channel = get_le32(p + 8);
	he->flags = get_le32(p + 12);
	he->mode = get_le32(p + 16);
	he->nregions = get_le32(p + 20);
	he->session = get_le64(p + 24);
	he->regions = p + MIG_HELLO_BASE;
	if (he->vmin > he->vmax || he->channel > MIG_CHAN_URGENT ||
	    he->flags & ~(MIG_HELLO_ONE_CHANNEL | MIG_HELLO_RESUME) || he->mode > 2 ||
	    get_le64(p + 32) || he->nregions < 1 || he->nregions > MIG_MAX_REGIONS ||
	    h->len != MIG_HELLO_BASE + 16ull * he->nregions)
		return -EPROTO;
	for (i = 0; i < he->nregions; i++)
		if (get_le32(he->regions + 16 * i + 12))
			return -EPROTO;
	return 0;
}

static int parse_pages(const struct mig_hdr *h, const uint8_t *p, const struct mig_layout *lay,
		       struct mig_msg *m, int *bad)
{
	const uint8_t *data = p + (size_t)MIG_PAGE_ENTRY * h->count;
	uint64_t want = (uint64_t)MIG_PAGE_ENTRY * h->count;
	int i, first_bad = -1;

	m->pages.n = h->count;
	/* Every entry and the total length first: no data is touched
	 * before the lengths are known to add up. */
	for (i = 0; i < h->count; i++) {
		const uint8_t *e = p + (size_t)MIG_PAGE_ENTRY * i;
		struct mig_page *pg = &m->pages.p[i];

		pg->region = get_le32(e);
		pg->flags = get_le32(e + 4);
		pg->page = get_le64(e + 8);
		pg->crc = get_le32(e + 16);
		pg->data = NULL;
		if (pg->region >= (uint32_t)lay->nregions || pg->page >= lay->r[pg->region].npages ||
		    pg->flags & ~(MIG_PAGE_ZERO | MIG_PAGE_ANSWER) || get_le32(e + 20))
			return -EPROTO;
		if (pg->flags & MIG_PAGE_ZERO) {
			if (pg->crc)
				return -EPROTO;
			continue;
		}
		want += lay->r[pg->region].page_size;
		if (want > h->len)
			return -EPROTO;
	}
	if (want != h->len)
		return -EPROTO;
	for (i = 0; i < h->count; i++) {
		struct mig_page *pg = &m->pages.p[i];

		if (pg->flags & MIG_PAGE_ZERO)
			continue;
		pg->data = data;
		if (first_bad < 0 && crc32c(0, data, lay->r[pg->region].page_size) != pg->crc)
			first_bad = i;
		data += lay->r[pg->region].page_size;
	}
	if (first_bad >= 0) {
		if (bad)
			*bad = first_bad;
		return -EBADMSG;
	}
	return 0;
}

static int parse_requests(const struct mig_hdr *h, const uint8_t *p, const struct mig_layout *lay,
			  struct mig_msg *m)
{
	int i;

	m->req.n = h->count;
	for (i = 0; i < h->count; i++) {
		const uint8_t *e = p + (size_t)MIG_REQ_ENTRY * i;

		m->req.r[i].region = get_le32(e);
		m->req.r[i].page = get_le64(e + 8);
		if (m->req.r[i].region >= (uint32_t)lay->nregions || get_le32(e + 4) ||
		    m->req.r[i].page >= lay->r[m->req.r[i].region].npages)
			return -EPROTO;
	}
	return 0;
}

static int parse_switchover(const struct mig_hdr *h, const uint8_t *p, const struct mig_layout *lay,
			    struct mig_msg *m)
{
	uint64_t bytes = mig_bitmap_bytes(lay), set;

	m->sw.flags = get_le32(p);
	m->sw.blob_len = get_le32(p + 4);
	m->sw.pages = get_le64(p + 8);
	if (m->sw.flags & ~MIG_SW_POSTCOPY || m->sw.blob_len > MIG_BLOB_MAX ||
	    get_le64(p + 16) != bytes || h->len != MIG_SWITCHOVER_BASE + bytes + m->sw.blob_len)
		return -EPROTO;
	m->sw.bitmap = p + MIG_SWITCHOVER_BASE;
	m->sw.blob = m->sw.bitmap + bytes;
	if (check_bitmap(m->sw.bitmap, lay, &set) || set != m->sw.pages)
		return -EPROTO;
	/* Stop-and-copy: nothing may be left for after. */
	if (!(m->sw.flags & MIG_SW_POSTCOPY) && set)
		return -EPROTO;
	return 0;
}

static int parse_need(const uint8_t *p, const struct mig_layout *lay, struct mig_msg *m)
{
	uint64_t set;

	m->need.pages = get_le64(p);
	if (get_le64(p + 8) != mig_bitmap_bytes(lay))
		return -EPROTO;
	m->need.bitmap = p + MIG_NEED_BASE;
	if (check_bitmap(m->need.bitmap, lay, &set) || set != m->need.pages)
		return -EPROTO;
	return 0;
}

static int parse_error(const struct mig_hdr *h, const uint8_t *p, struct mig_msg *m)
{
	uint32_t i;

	m->error.code = get_le32(p);
	m->error.flags = get_le32(p + 4);
	m->error.len = get_le32(p + 8);
	m->error.text = (const char *)p + MIG_ERROR_BASE;
	if (m->error.len != h->len - MIG_ERROR_BASE || m->error.code > 4095 ||
	    m->error.flags & ~MIG_ERR_RESUMED)
		return -EPROTO;
	for (i = 0; i < m->error.len; i++)
		if ((unsigned char)m->error.text[i] < 0x20 || (unsigned char)m->error.text[i] > 0x7e)
			return -EPROTO;
	return 0;
}

int mig_parse_body(const struct mig_hdr *h, const void *body, const struct mig_layout *lay,
		   struct mig_msg *m, int *bad)
{
	const uint8_t *p = body;

	m->h = *h;
	switch (h->type) {
	case MIG_HELLO:
		return parse_hello(h, p, m);
	case MIG_WELCOME:
		m->welcome.version = get_le32(p);
		m->welcome.status = get_le32(p + 4);
		m->welcome.session = get_le64(p + 8);
		m->welcome.flags = get_le32(p + 16);
		return m->welcome.status > 4095 || m->welcome.flags & ~MIG_WELCOME_SWITCHED ||
		       get_le32(p + 20) ? -EPROTO : 0;
	case MIG_PAGES:
		return parse_pages(h, p, lay, m, bad);
	case MIG_REQUEST:
		return parse_requests(h, p, lay, m);
	case MIG_SWITCHOVER:
		return parse_switchover(h, p, lay, m);
	case MIG_NEED:
		return parse_need(p, lay, m);
	case MIG_RESUMED:
		m->resumed.ns = get_le64(p);
		return 0;
	case MIG_SYNC:
		m->sync.token = get_le64(p);
		return 0;
	case MIG_ROUND:
		m->round.round = get_le32(p);
		m->round.dirty = get_le64(p + 8);
		return get_le32(p + 4) || m->round.dirty > lay->total_pages ? -EPROTO : 0;
	case MIG_ERROR:
		return parse_error(h, p, m);
	case MIG_DONE:
	case MIG_COMPLETE:
	case MIG_END:
		return 0;
	default:
		return -EPROTO;
	}
}

uint32_t mig_zero_crc(uint32_t page_size)
{
	static uint32_t cache[2];	/* 4 KiB, 2 MiB; atomics, 0 = unknown */
	static const uint8_t zeros[4096];
	int slot = page_size == 4096 ? 0 : page_size == MIG_MAX_PAGE_SIZE ? 1 : -1;
	uint32_t crc;
	size_t off;

	if (slot >= 0 && (crc = __atomic_load_n(&cache[slot], __ATOMIC_RELAXED)))
		return crc;
	crc = 0;
	for (off = 0; off < page_size; off += sizeof(zeros))
		crc = crc32c(crc, zeros, sizeof(zeros));
	if (slot >= 0)
		__atomic_store_n(&cache[slot], crc, __ATOMIC_RELAXED);
	return crc;
}
