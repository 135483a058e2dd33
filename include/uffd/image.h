/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd memory images: the file format of snapshots and incremental
 * checkpoints, and how to write, check, read and compose them.
 *
 * An image holds the contents of a set of regions (address, length, page
 * size) at one instant.  A base image holds every page that is not zero; a
 * delta image names its parent and holds only the pages that changed since
 * the parent's instant (pages that became zero are recorded as zero, not as
 * data).  Pages may be written in any order; each page at most once.
 *
 * On disk (all integers little-endian, CRCs are CRC32C, documented byte by
 * byte in man/uffd-image.5):
 *
 *   header      64 bytes at 0: magic "UFFDIMG1", u32 version (2; 1 is read
 *               too), u32 flags
 *               (bit 0: DELTA), u32 page size (the writer's, informational),
 *               u32 region count (1..4096), u32 chunk pages (the most a
 *               chunk holds, 1..64; written as 64), u32 zero, u64 image id
 *               (random, not 0), u64 parent id (0 in a base), u64 instant
 *               (CLOCK_REALTIME ns), u32 zero, u32 CRC of bytes 0..59 and
 *               then the parent field
 *   parent      256 bytes at 64: the parent's file name, NUL-padded (a
 *               delta; all zeros in a base)
 *   regions     at 320, nregions x 32 bytes: u64 address, u64 length, u32
 *               page size, u32 flags, u64 zero; then u32 CRC of the table.
 *               Chunks start at 324 + 32 * nregions.
 *   chunks      any number, in any order, each: a 32-byte header (magic
 *               "CHNK", u16 region, u16 page count 1..64, u64 first page,
 *               u64 present bitmap, u64 zero bitmap; bit i is page first+i,
 *               and each page of the chunk is in exactly one bitmap), then
 *               the present pages' data in page order, then u32 CRC of
 *               header and data.  No page is in two chunks.
 *   trailer     the last 32 bytes: magic "UFFDEND1", u64 chunk count, u64
 *               page count (data and zero), u32 CRC of every chunk header
 *               in file order (version 1: zero), u32 CRC of bytes 0..27
 *
 * Holes cost nothing: a page no chunk holds takes no byte of the file, and
 * a restore does not touch it.  So a small file may describe a large
 * region; the regions of one image add up to at most UFFD_IMAGE_MAX_BYTES.
 *
 * A writer builds the file under "NAME.tmp-PID", and uffd_image_commit()
 * writes the trailer, fsyncs the file, renames it to NAME and fsyncs the
 * directory: a file named NAME is always complete.  A failure or an abort
 * unlinks the temporary file.
 */
#ifndef LIBUFFD_IMAGE_H
#define LIBUFFD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uffd/uffd.h>	/* UFFD_OPTS */

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define UFFD_IMAGE_VERSION 3	/* written; 1 to 3 are read */
#define UFFD_IMAGE_MAX_REGIONS 4096
#define UFFD_IMAGE_PARENT_MAX 256
/*
 * The most memory one image describes: the sum of its regions' lengths,
 * 128 TiB (the user address space of x86-64 with 4-level page tables).
 * A restore maps every region, so a file may not ask for more.
 */
#define UFFD_IMAGE_MAX_BYTES (1ULL << 47)

/* Region flags: what the memory was (informational, for restore). */
#define UFFD_IMAGE_ANON		(1u << 0)
#define UFFD_IMAGE_SHMEM	(1u << 1)
#define UFFD_IMAGE_HUGETLB	(1u << 2)

struct uffd_image_region {
	uint64_t addr;
	uint64_t len;
	uint32_t page_size;	/* 4096, or 2 MiB for hugetlbfs */
	uint32_t flags;		/* UFFD_IMAGE_* */
};

/* ---- writing --------------------------------------------------------- */

struct uffd_image_writer;

/*
 * Start an image of the given regions at path.  parent: the parent image's
 * path for a delta (its id and file name are recorded), or NULL for a base.
 * instant_ns: the instant the image stands for (0: now).  NULL with errno:
 * EINVAL (bad regions; a parent with other regions, or not in path's
 * directory, where chains look for it), EEXIST (NAME.tmp-PID exists), the
 * parent's open error, or the error creating the file.  Page sizes are
 * powers of two from 512 bytes to 1 GiB; address and length multiples;
 * lengths add up to at most UFFD_IMAGE_MAX_BYTES.
 */
struct uffd_image_writer *uffd_image_create(const char *path,
					    const struct uffd_image_region *regions,
					    int nregions, const char *parent,
					    uint64_t instant_ns);

/*
 * Record count (1..64) pages of region starting at page index first: data
 * holds the pages that are present, one after another, in order; zero_mask
 * (bit i: page first+i is zero, no data) may be 0.  One put is one chunk.
 * Thread-safe (puts must all have returned before commit or abort).  0,
 * -EEXIST (a page written twice: nothing is written), -EINVAL (outside the
 * region, a bad count or mask), or the I/O error (-ENOSPC, -EIO...), which
 * every later put returns too and commit returns after removing the
 * temporary file.
 */
int uffd_image_put(struct uffd_image_writer *w, int region, uint64_t first,
		   uint32_t count, const void *data, uint64_t zero_mask);
/* The same from pages scattered in memory: pages[i] is page first+i's
 * contents, or NULL for a zero page (one pwritev, no copy). */
int uffd_image_putv(struct uffd_image_writer *w, int region, uint64_t first,
		    uint32_t count, const void *const *pages);
/* One page: data, or NULL for a zero page. */
int uffd_image_put_page(struct uffd_image_writer *w, int region, uint64_t page,
			const void *data);

/*
 * Trailer, fsync, rename, fsync the directory; frees w.  0 or -errno (a
 * put's remembered error, or this step's): then the temporary file is
 * removed and no file named path claims to be this image (if only the
 * directory fsync failed, path is removed again).
 */
int uffd_image_commit(struct uffd_image_writer *w);
/* Drop the temporary file; frees w. */
void uffd_image_abort(struct uffd_image_writer *w);

/* Bytes written so far (headers included, the trailer not yet). */
uint64_t uffd_image_bytes(const struct uffd_image_writer *w);

/* ---- reading --------------------------------------------------------- */

struct uffd_image;

/*
 * Open an image and check its header, region table and trailer, and every
 * chunk header: its fields, and (version 2 on) all of them against the
 * trailer's CRC of headers (version 3: read at once from their copy) - a damaged header is named by its chunk's
 * offset, found by the chunks' own CRCs (chunk data is otherwise checked
 * by uffd_image_verify() and on first read).  Only headers are read, never
 * page data, however large the regions.  NULL with errno: ENOENT, EISDIR,
 * EINVAL (path is not a regular file - a FIFO, a socket, a device: refused
 * without opening it, so never blocked), EBADMSG (not an image / corrupt:
 * *bad_offset, when not NULL, receives the file offset of the first bad
 * structure - 0 for the header and parent name, 320 for the region table's
 * CRC, 320 + 32 * i for region i (also the one that takes the total past
 * UFFD_IMAGE_MAX_BYTES), a chunk's offset, the trailer's - or, for a file
 * cut short, its length), EPROTO (a version this libuffd does not read).
 */
struct uffd_image *uffd_image_open(const char *path, uint64_t *bad_offset);
void uffd_image_close(struct uffd_image *img);

struct uffd_image_info {
	uint32_t version;
	bool delta;
	uint64_t id, parent_id;
	char parent[UFFD_IMAGE_PARENT_MAX];	/* file name, "" for a base */
	uint64_t instant_ns;
	int nregions;
	const struct uffd_image_region *regions;
	uint64_t chunks;
	uint64_t pages;				/* recorded: data and zero */
	uint64_t zero_pages;			/* recorded as zero */
	uint64_t file_size;
};
int uffd_image_info(struct uffd_image *img, struct uffd_image_info *info);

/*
 * Read every chunk and check its CRC32C.  0, or -EBADMSG with *bad_offset
 * the offset of the first bad chunk (a truncated file: the offset where
 * data ends).
 */
int uffd_image_verify(struct uffd_image *img, uint64_t *bad_offset);

/*
 * The page's contents in this image alone: 1 data copied to buf, 0 the
 * page is recorded as zero (buf zeroed), -ENOENT not in this image (a hole
 * in a base: zero; unchanged in a delta: ask the parent), -EINVAL (no such
 * region or page), -EBADMSG (damage: the chunk holding the page fails its
 * CRC, or the file was cut short), or -errno.  Nothing damaged is ever
 * returned as data: the first read of any page of a chunk reads the whole
 * chunk and checks its CRC (once; later reads of the chunk are one pread).
 * A version 1 file has no CRC of its chunk headers, so its first read
 * checks every chunk (as uffd_image_verify()) and fails with -EBADMSG if
 * any is damaged.
 */
int uffd_image_read_page(struct uffd_image *img, int region, uint64_t page, void *buf);

/* ---- chains ---------------------------------------------------------- */

/*
 * Open an image and its ancestors (parents are looked up by file name in
 * the image's directory), newest first, checking that ids link up and
 * region tables match.  The chain reads a page from the newest image that
 * has it.  NULL with errno: as uffd_image_open() for a file of the chain
 * (*bad_offset in that file), or EBADMSG for a broken link, with
 * *bad_offset the child's field that does not hold: 64 (parent name: no
 * such file), 40 (parent id: another image, or a loop), 320 (regions).
 */
struct uffd_image_chain;
struct uffd_image_chain *uffd_image_chain_open(const char *path, uint64_t *bad_offset);
void uffd_image_chain_close(struct uffd_image_chain *c);
int uffd_image_chain_length(const struct uffd_image_chain *c);
struct uffd_image *uffd_image_chain_get(struct uffd_image_chain *c, int i); /* 0: newest */
/*
 * 1 data, 0 zero (buf zeroed; also a page no image has), or -errno:
 * -EBADMSG for damage in any image the answer depends on (as
 * uffd_image_read_page(); every chunk header of every image counts, since
 * one that lies hides the page it holds: a version 1 image is read whole
 * on the chain's first read).  uffd_image_chain_check() names the file.
 */
int uffd_image_chain_read_page(struct uffd_image_chain *c, int region, uint64_t page,
			       void *buf);

/*
 * Everything a restore of the chain ending at path relies on, checked
 * file by file and reading all of each (every chunk CRC): 0 if sound, else
 * the error of uffd_image_chain_open() or uffd_image_verify() for the
 * first file at fault, newest first, whose path is copied to file (at most
 * file_size bytes with the NUL; file may be NULL) and, for EBADMSG, the
 * offset in that file to *bad_offset (if not NULL).  A broken link is the
 * child's fault (its parent field).  For naming the damage after a call
 * failed with -EBADMSG.
 */
int uffd_image_chain_check(const char *path, char *file, size_t file_size,
			   uint64_t *bad_offset);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
