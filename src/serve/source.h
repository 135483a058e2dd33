/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the page server serves from: an image (or chain) or a raw memory
 * file, seen as one run of bytes - "the source" - so that both handshakes
 * describe a client's regions the same way, by an offset into it (as
 * Firecracker does for its memory file).  An image's regions are laid end
 * to end in their order: region i starts at the sum of the lengths before
 * it.  Read-only after open (and serve_source_no_alloc()), without
 * locks: any number of threads read pages at once, each into its own
 * buffer, one pread per page, and share the file's page cache.
 */
#ifndef LIBUFFD_SERVE_SOURCE_H
#define LIBUFFD_SERVE_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <uffd/image.h>

struct serve_extent {
	uint64_t addr, len;	/* where the image recorded it (0 for a raw file) */
	uint64_t offset;	/* in the source */
	uint32_t page_size;
	int region;		/* the image's region index */
};

struct serve_source {
	bool raw;
	char *path;		/* absolute when it could be resolved */
	uint64_t size;		/* bytes, a multiple of the page size */
	uint64_t id;		/* the newest image's id; a raw file's identity */
	int fd;			/* raw: the file; -1 for an image */
	struct uffd_image_chain *chain;
	int nextents;
	struct serve_extent *ext;
	bool no_alloc;		/* serve_source_no_alloc() */
};

/* Exactly one of image and mem_file.  NULL with errno (EOPNOTSUPP: an image
 * with pages of another size than 4 KiB; EINVAL: a memory file that is not
 * a regular file, or empty). */
struct serve_source *serve_source_open(const char *image, const char *mem_file);
void serve_source_close(struct serve_source *s);

/* The page at byte off (page-aligned, below size): 1 data in buf, 0 a zero
 * page (buf undefined), or -errno (-EIO for a file cut short). */
int serve_source_read(const struct serve_source *s, uint64_t off, void *buf);

/*
 * Reads from now on allocate nothing (a client's fallback: engine.h): an
 * image's index is trusted now, and the first read of each of its chunks
 * checks the chunk's CRC a page at a time through the caller's buffer,
 * not through an allocated one.  Call it before any other thread reads.
 * 0, or -EBADMSG (a damaged image) or another -errno: reads go on as
 * before (and fail as they would have).
 */
int serve_source_no_alloc(struct serve_source *s);

#endif
