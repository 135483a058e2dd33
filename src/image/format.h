/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bytes of a memory image (man/uffd-image.5), shared by the writer and
 * the reader: offsets, sizes, magics, and little-endian encoding.  Every
 * structure is encoded into a byte array field by field, never by casting a
 * struct, so the file is the same whatever the compiler's padding and the
 * machine's byte order.
 */
#ifndef LIBUFFD_IMAGE_FORMAT_H
#define LIBUFFD_IMAGE_FORMAT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <uffd/image.h>

#include "util/le.h"

#define IMG_MAGIC		"UFFDIMG1"
#define IMG_TRAILER_MAGIC	"UFFDEND1"
#define IMG_CHUNK_MAGIC		"CHNK"
#define IMG_MAGIC_LEN		8
#define IMG_CHUNK_MAGIC_LEN	4

#define IMG_FLAG_DELTA		(1u << 0)
#define IMG_FLAGS_KNOWN		IMG_FLAG_DELTA

/* Header: 64 bytes at offset 0. */
#define IMG_HDR_SIZE		64
#define IMG_HDR_VERSION		8
#define IMG_HDR_FLAGS		12
#define IMG_HDR_PAGE_SIZE	16
#define IMG_HDR_NREGIONS	20
#define IMG_HDR_CHUNK_PAGES	24
#define IMG_HDR_RESERVED1	28
#define IMG_HDR_ID		32
#define IMG_HDR_PARENT_ID	40
#define IMG_HDR_INSTANT		48
#define IMG_HDR_RESERVED2	56
#define IMG_HDR_CRC		60

/* Parent file name: 256 bytes, NUL-padded, covered by the header CRC. */
#define IMG_PARENT_OFF		64
#define IMG_PARENT_SIZE		UFFD_IMAGE_PARENT_MAX

/* Region table: nregions entries of 32 bytes, then their CRC32C. */
#define IMG_REGIONS_OFF		(IMG_PARENT_OFF + IMG_PARENT_SIZE)	/* 320 */
#define IMG_REGION_SIZE		32
#define IMG_REGION_ADDR		0
#define IMG_REGION_LEN		8
#define IMG_REGION_PAGE_SIZE	16
#define IMG_REGION_FLAGS	20
#define IMG_REGION_RESERVED	24
#define IMG_CRC_SIZE		4

/*
 * Page sizes a region may have: a power of two from 512 bytes to 1 GiB (the
 * largest hugetlb page), so a chunk of 64 pages never overflows a length.
 */
#define IMG_PAGE_SIZE_MIN	512u
#define IMG_PAGE_SIZE_MAX	(1u << 30)

/* Chunks: a 32-byte header, the present pages, a CRC32C of both. */
#define IMG_CHUNK_PAGES		64	/* one uint64_t bitmap per kind */
#define IMG_CHUNK_HDR_SIZE	32
#define IMG_CHUNK_REGION	4
#define IMG_CHUNK_COUNT		6
#define IMG_CHUNK_FIRST		8
#define IMG_CHUNK_PRESENT	16
#define IMG_CHUNK_ZERO		24
#define IMG_CHUNK_MIN_SIZE	(IMG_CHUNK_HDR_SIZE + IMG_CRC_SIZE)

/*
 * Trailer: the last 32 bytes of the file.  From version 2 the word at 24
 * is the CRC of every chunk header, in file order: a chunk's own CRC
 * covers its data too, so without it a header could only be trusted after
 * reading the whole file (a version 1 file has zero there).
 */
#define IMG_TRAILER_SIZE	32
#define IMG_TRAILER_CHUNKS	8
#define IMG_TRAILER_PAGES	16
#define IMG_TRAILER_HDRS_CRC	24
#define IMG_TRAILER_CRC		28

/* The first version whose trailer has the chunk headers' CRC. */
#define IMG_VERSION_HDRS_CRC	2

/*
 * From version 3 every chunk header is written again, in file order,
 * between the last chunk and the trailer (chunk count x 32 bytes, covered
 * by the trailer's CRC of headers): a reader gets them all with one read.
 */
#define IMG_VERSION_HDRS_COPY	3

static inline uint64_t img_chunks_start(uint32_t nregions)
{
	return IMG_REGIONS_OFF + (uint64_t)nregions * IMG_REGION_SIZE + IMG_CRC_SIZE;
}

/* Bits [0, count) set: the pages a chunk of count pages covers. */
static inline uint64_t img_count_mask(uint32_t count)
{
	return count >= 64 ? ~0ULL : (1ULL << count) - 1;
}

/* A chunk header, decoded. */
struct img_chunk_header {
	uint32_t region;
	uint32_t count;
	uint64_t first;
	uint64_t present;
	uint64_t zero;
};

static inline void img_encode_chunk_header(uint8_t *p, const struct img_chunk_header *h)
{
	memcpy(p, IMG_CHUNK_MAGIC, IMG_CHUNK_MAGIC_LEN);
	put_le16(p + IMG_CHUNK_REGION, h->region);
	put_le16(p + IMG_CHUNK_COUNT, h->count);
	put_le64(p + IMG_CHUNK_FIRST, h->first);
	put_le64(p + IMG_CHUNK_PRESENT, h->present);
	put_le64(p + IMG_CHUNK_ZERO, h->zero);
}

/* false if the magic is wrong */
static inline bool img_decode_chunk_header(const uint8_t *p, struct img_chunk_header *h)
{
	h->region = get_le16(p + IMG_CHUNK_REGION);
	h->count = get_le16(p + IMG_CHUNK_COUNT);
	h->first = get_le64(p + IMG_CHUNK_FIRST);
	h->present = get_le64(p + IMG_CHUNK_PRESENT);
	h->zero = get_le64(p + IMG_CHUNK_ZERO);
	return !memcmp(p, IMG_CHUNK_MAGIC, IMG_CHUNK_MAGIC_LEN);
}

static inline bool img_page_size_valid(uint64_t ps)
{
	return ps >= IMG_PAGE_SIZE_MIN && ps <= IMG_PAGE_SIZE_MAX && !(ps & (ps - 1));
}

/* A region table entry is usable: page size, alignment, non-empty. */
static inline bool img_region_valid(const struct uffd_image_region *r)
{
	return img_page_size_valid(r->page_size) && r->len && !(r->len % r->page_size) &&
	       !(r->addr % r->page_size) && r->addr + r->len > r->addr;
}

static inline void img_encode_region(uint8_t *p, const struct uffd_image_region *r)
{
	put_le64(p + IMG_REGION_ADDR, r->addr);
	put_le64(p + IMG_REGION_LEN, r->len);
	put_le32(p + IMG_REGION_PAGE_SIZE, r->page_size);
	put_le32(p + IMG_REGION_FLAGS, r->flags);
	put_le64(p + IMG_REGION_RESERVED, 0);
}

/*
 * uffd_image_put() with the pages given one by one: pages[i] is page
 * first + i's data, or NULL for a zero page.  One chunk, one write.
 */
struct uffd_image_writer;

/*
 * The header CRC: bytes [0, 60) of the header, then the parent field, so
 * one checksum covers everything before the region table.
 */
uint32_t img_header_crc(const uint8_t *hdr_and_parent);

/*
 * Open an image file for reading: the fd (its fstat in *st), or -errno:
 * -EISDIR for a directory, -EINVAL for anything else that is not a regular
 * file (a FIFO, a socket, a device), which is refused before it is opened,
 * so no open blocks (a FIFO with no writer) or has side effects (a tty, a
 * tape); the open itself is O_NONBLOCK in case the file changed between
 * the look and the open, and the fd is checked again.
 */
int uffd__image_open_regular(const char *path, struct stat *st);

/* Same addresses, lengths, page sizes and flags, in the same order. */
bool img_regions_equal(const struct uffd_image_region *a, int na,
		       const struct uffd_image_region *b, int nb);

/* The directory part of path ("." when it has none), malloc'd; NULL: ENOMEM. */
char *img_dirname(const char *path);
/* The file name part of path (a pointer into it). */
const char *img_basename(const char *path);
/* dir "/" name, malloc'd; NULL: ENOMEM. */
char *img_join(const char *dir, const char *name);

#endif
