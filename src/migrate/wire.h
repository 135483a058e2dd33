/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The migration's wire format: fixed little-endian headers, and a parser
 * that is a pure function (bytes and the memory's layout in, a decoded
 * message or an error out), so that it can be fuzzed on its own.
 *
 * Every message is a 16-byte header and a payload:
 *
 *   u32 magic "UMIG"  u8 type  u8 flags  u16 count  u32 len  u32 crc
 *
 * crc is the CRC32C of the header's first 12 bytes; len is the payload's
 * length, checked against the type's stated maximum (below) before a byte
 * of the payload is read; count is the number of entries of PAGES and
 * REQUEST (1..64), 0 otherwise.  Payloads (sizes in bytes; regions and
 * pages are numbered from 0, a page in its region's page size):
 *
 *   HELLO      40 + 16n   u32 version min, max; u32 channel (0 stream,
 *                         1 urgent); u32 flags (bit 0 one channel, bit 1
 *                         resume); u32 mode; u32 n regions (1..4096);
 *                         u64 session; u64 zero; n x (u64 length, u32 page
 *                         size, u32 zero).  Source to destination, first
 *                         on each connection.
 *   WELCOME    24         u32 version chosen; u32 status (0, or an errno:
 *                         EPROTONOSUPPORT, EINVAL layout, ESTALE session,
 *                         EBUSY not resumable); u64 session; u32 flags
 *                         (bit 0 switched over); u32 zero.  The answer.
 *   PAGES      24c + data c entries (u32 region, u32 flags: bit 0 zero
 *                         page, bit 1 an answer to a request; u64 page;
 *                         u32 CRC32C of the page; u32 zero), then the data
 *                         of the entries that are not zero pages, in
 *                         order.  data <= 4 MiB, pages <= 2 MiB.
 *   REQUEST    16c        c entries (u32 region, u32 zero, u64 page).
 *   SWITCHOVER 24 + B + b u32 flags (bit 0 postcopy follows); u32 blob
 *                         length b (<= 64 KiB); u64 pages in the bitmap;
 *                         u64 bitmap bytes B (exactly 8 per 64 pages of
 *                         all regions); the bitmap (bit g, little-endian
 *                         u64 words, is the g-th page counting region by
 *                         region: the destination lacks it); the blob.
 *   NEED       16 + B     u64 pages; u64 B; the bitmap (the destination
 *                         still lacks these: after a resume's WELCOME).
 *   RESUMED    8          u64 the destination's CLOCK_MONOTONIC ns.
 *   ROUND      16         u32 round; u32 zero; u64 pages dirty.
 *   DONE, COMPLETE, END 0 (every page sent; every page here; the last
 *                         message on this connection).
 *   ERROR      12 + t     u32 errno; u32 flags (bit 0: the program was
 *                         started at the destination); u32 t (<= 200); t
 *                         bytes of printable text.
 *   SYNC       8          u64 token.  The source's, before its pause; the
 *                         destination sends it back once it has placed
 *                         everything that came before it.
 *
 * A page's CRC that does not match fails the migration (-EBADMSG); any
 * other deviation is garbage that ends the connection it came on
 * (-EPROTO).
 */
#ifndef LIBUFFD_MIGRATE_WIRE_H
#define LIBUFFD_MIGRATE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/le.h"		/* get_le32() and the others: every field */

/* Bitmaps go to the socket straight from memory as u64 words. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the migration's bitmaps are sent as little-endian words"
#endif

#define MIG_MAGIC		0x47494d55u	/* "UMIG" */
#define MIG_VERSION		1
#define MIG_HDR_SIZE		16
#define MIG_MAX_REGIONS		4096
#define MIG_MAX_BATCH		64		/* entries per PAGES/REQUEST */
#define MIG_PAGE_ENTRY		24
#define MIG_REQ_ENTRY		16
#define MIG_MAX_DATA		(4u << 20)	/* page bytes in one PAGES */
#define MIG_MAX_PAGE_SIZE	(2u << 20)
#define MIG_MIN_PAGE_SIZE	4096u
#define MIG_MAX_TEXT		200
#define MIG_MAX_PAGES		(1ull << 32)	/* of all regions */
#define MIG_BLOB_MAX		(64u << 10)	/* = UFFD_MIG_BLOB_MAX */
#define MIG_HELLO_BASE		40
#define MIG_SWITCHOVER_BASE	24
#define MIG_NEED_BASE		16
#define MIG_ERROR_BASE		12

enum mig_type {
	MIG_HELLO = 1,
	MIG_WELCOME,
	MIG_PAGES,
	MIG_REQUEST,
	MIG_SWITCHOVER,
	MIG_NEED,
	MIG_RESUMED,
	MIG_ROUND,
	MIG_DONE,
	MIG_COMPLETE,
	MIG_END,
	MIG_ERROR,
	MIG_SYNC,
	MIG_TYPE_END,
};

/* HELLO */
#define MIG_CHAN_STREAM		0
#define MIG_CHAN_URGENT		1
#define MIG_HELLO_ONE_CHANNEL	(1u << 0)
#define MIG_HELLO_RESUME	(1u << 1)
/* WELCOME */
#define MIG_WELCOME_SWITCHED	(1u << 0)
/* PAGES entry flags */
#define MIG_PAGE_ZERO		(1u << 0)
#define MIG_PAGE_ANSWER		(1u << 1)
/* SWITCHOVER */
#define MIG_SW_POSTCOPY		(1u << 0)
/* ERROR */
#define MIG_ERR_RESUMED		(1u << 0)

/* What both sides know of the memory: it bounds every message. */
struct mig_layout_region {
	uint64_t npages;
	uint32_t page_size;
	uint64_t first;			/* global number of its first page */
};

struct mig_layout {
	int nregions;
	const struct mig_layout_region *r;
	uint64_t total_pages;
};

/* Bitmap bytes for the layout: 8 per 64 pages. */
static inline uint64_t mig_bitmap_bytes(const struct mig_layout *lay)
{
	return (lay->total_pages + 63) / 64 * 8;
}

struct mig_hdr {
	uint8_t type, flags;
	uint16_t count;
	uint32_t len;
};

struct mig_page {
	uint32_t region;
	uint32_t flags;			/* MIG_PAGE_* */
	uint64_t page;
	uint32_t crc;
	const uint8_t *data;		/* NULL: a zero page */
};

struct mig_req {
	uint32_t region;
	uint64_t page;
};

struct mig_hello {
	uint32_t vmin, vmax, channel, flags, mode, nregions;
	uint64_t session;
	const uint8_t *regions;		/* nregions x 16 bytes */
};

struct mig_msg {
	struct mig_hdr h;
	union {
		struct mig_hello hello;
		struct {
			uint32_t version, status, flags;
			uint64_t session;
		} welcome;
		struct {
			int n;
			struct mig_page p[MIG_MAX_BATCH];
		} pages;
		struct {
			int n;
			struct mig_req r[MIG_MAX_BATCH];
		} req;
		struct {
			uint32_t flags;
			uint64_t pages;
			const uint8_t *bitmap;	/* little-endian u64 words */
			const uint8_t *blob;
			uint32_t blob_len;
		} sw;
		struct {
			uint64_t pages;
			const uint8_t *bitmap;
		} need;
		struct {
			uint64_t ns;
		} resumed;
		struct {
			uint32_t round;
			uint64_t dirty;
		} round;
		struct {
			uint32_t code, flags, len;
			const char *text;
		} error;
		struct {
			uint64_t token;
		} sync;
	};
};

/*
 * Decode and check a header (MIG_HDR_SIZE bytes at buf): magic, CRC, a
 * known type, count and len within the type's bounds for this layout.
 * 0 or -EPROTO.
 */
int mig_parse_hdr(const void *buf, const struct mig_layout *lay, struct mig_hdr *h);

/*
 * Decode a payload of h->len bytes (h from mig_parse_hdr).  Pointers in m
 * point into body.  0; -EPROTO (garbage: a region or page out of range,
 * unknown flags, lengths that do not add up, bits past the last page, a
 * text that is not text); -EBADMSG (a page's CRC does not match: m->pages
 * holds the entries, *bad the index of the first bad one).
 */
int mig_parse_body(const struct mig_hdr *h, const void *body, const struct mig_layout *lay,
		   struct mig_msg *m, int *bad);

/* The largest payload a header may announce for this layout. */
uint64_t mig_max_payload(const struct mig_layout *lay);

/* Encode a header for a payload of len bytes. */
void mig_put_hdr(void *buf, enum mig_type type, uint8_t flags, uint16_t count, uint32_t len);

/* Bitmaps on the wire are little-endian u64 words: test bit g. */
static inline bool mig_wire_bit(const uint8_t *bitmap, uint64_t g)
{
	return bitmap[g / 8] & (1u << (g % 8));
}

/* The CRC32C of a page of zeros of this size (cached per size). */
uint32_t mig_zero_crc(uint32_t page_size);

#endif
