/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Working-set files: the pages a restore touched, in the order it touched
 * them, with their contents, so that a later restore reads them in one
 * sequential pass (REAP, ASPLOS'21).  All integers little-endian:
 *
 *   0    "UFFDWS01"
 *   8    u32 version (1)           12  u32 page size (4096)
 *   16   u64 source id             24  u64 source size (bytes)
 *   32   u64 count                 40  u64 data offset
 *   48   u64 zero                  56  u32 zero   60  u32 CRC32C of 0..59
 *   64   count x u64: the source page numbers (offset / page size), each
 *        at most once, in the order they were touched
 *        count x u32: the CRC32C of each page's data
 *        u32 CRC32C of the two arrays
 *   data offset (the first page boundary after that): count pages
 *
 * The source id (an image's id; for a raw memory file, its inode, size
 * and modification time) ties the file to what it was recorded from: a
 * working set of another source is refused (ESTALE), never served.  A
 * page whose data does not match its CRC is skipped and served from the
 * source on demand.  Written as "PATH.tmp-PID", fsynced and renamed.
 */
#ifndef LIBUFFD_SERVE_WSET_H
#define LIBUFFD_SERVE_WSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

#define WS_MAGIC	"UFFDWS01"
#define WS_VERSION	1
#define WS_HDR		64

struct ws_header {
	uint32_t version, page_size;
	uint64_t source_id, source_size, count, data_offset;
};

/* Bytes of the two arrays and their CRC that follow the header. */
uint64_t uffd__ws_index_size(uint64_t count);
/* Where the data starts for count pages. */
uint64_t uffd__ws_data_offset(uint64_t count);

/*
 * Decode and check a header (len >= WS_HDR bytes): magic, version, page
 * size, CRC, a count of at most one entry per source page, the data
 * offset that count implies.  0, -EBADMSG, or -EPROTO (another version).
 */
int uffd__ws_parse_header(const uint8_t *buf, size_t len, struct ws_header *h);
/*
 * Decode and check the arrays that follow a header h (buf holds exactly
 * uffd__ws_index_size(h->count) bytes): the CRC, and every page number
 * inside the source.  pages and crcs receive h->count entries each.  0 or
 * -EBADMSG.  (Duplicates are found by the loader, which maps every page.)
 */
int uffd__ws_parse_index(const uint8_t *buf, size_t len, const struct ws_header *h,
			 uint64_t *pages, uint32_t *crcs);

struct serve_wset {
	int fd;
	uint64_t count, data_offset;
	uint64_t *pages;	/* source page numbers, in order */
	uint32_t *crcs;
	uint32_t *slot;		/* per source page: its index + 1, or 0 */
	uint64_t source_pages;
};

/* Load the index of path for src.  NULL with errno: the open's, EBADMSG
 * (corrupt, a page twice), EPROTO, ESTALE (recorded from another source). */
struct serve_wset *serve_wset_load(const char *path, const struct serve_source *src);
void serve_wset_free(struct serve_wset *ws);

/* Read entries [first, first + n) into buf (n pages): one pread.  0 or
 * -errno (-EIO: the file is shorter than its header says). */
int serve_wset_read(const struct serve_wset *ws, uint64_t first, uint64_t n, void *buf);
/* Entry i's data is what was recorded. */
bool serve_wset_page_ok(const struct serve_wset *ws, uint64_t i, const void *page);

/* Write the working set pages[0..count) of src, each read from src, to
 * path (atomically).  0 or -errno. */
int serve_wset_write(const char *path, const struct serve_source *src,
		     const uint64_t *pages, uint64_t count);

#endif
