/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the rest of the library uses of images beyond <uffd/image.h>: reads
 * that leave a zero page alone (a restore into fresh memory has nothing to
 * write there), a walk over the pages an image or a chain records (so a
 * restore costs what the file holds, not what its regions span), and the
 * check that makes an image's index trustworthy.
 */
#ifndef LIBUFFD_IMAGE_INTERNAL_H
#define LIBUFFD_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uffd/image.h>

/*
 * Can img's index (what its chunk headers say) be believed?  A version 2
 * file's headers were checked at open against the trailer's CRC of them;
 * a version 1 file has no such CRC, so the first call reads every chunk
 * and checks its CRC (once: later calls answer at once).  0, -EBADMSG with
 * the damaged chunk's offset in *bad, or -errno.
 */
int uffd__image_trust_headers(struct uffd_image *img, uint64_t *bad);

/* How uffd__image_read_page() and uffd__image_chain_read_page() read. */
enum {
	/* A page recorded as zero is written into buf as zeros (without
	 * this, buf is left untouched for it - with IMG_READ_SIGNAL_SAFE,
	 * what it holds then is undefined). */
	IMG_READ_FILL_ZERO = 1 << 0,
	/*
	 * From a signal handler (an in-thread fault): no allocation and no
	 * lock.  The index must be trusted already (uffd__image_chain_trust;
	 * -EINVAL if not), and a chunk's first read checks its CRC through
	 * buf, a page at a time, instead of one allocated buffer.
	 */
	IMG_READ_SIGNAL_SAFE = 1 << 1,
};

/* uffd_image_read_page() with IMG_READ_* flags. */
int uffd__image_read_page(struct uffd_image *img, int region, uint64_t page, void *buf,
			  unsigned flags);

/*
 * The first run of pages at or after page from that img records (data or
 * zero), as [*start, *end): true, or false when there is none.  One binary
 * search; every page of the run is in one chunk.
 */
bool uffd__image_next_run(const struct uffd_image *img, int region, uint64_t from,
			  uint64_t *start, uint64_t *end);

/*
 * The same over a chain: the first run at or after from recorded by some
 * image of it.  Pages outside every run are holes: zero in every image.
 */
bool uffd__image_chain_next_run(const struct uffd_image_chain *c, int region, uint64_t from,
				uint64_t *start, uint64_t *end);

/* uffd_image_chain_read_page() with IMG_READ_* flags. */
int uffd__image_chain_read_page(struct uffd_image_chain *c, int region, uint64_t page,
				void *buf, unsigned flags);

/* Every image of c trusted now (version 1 files are read through once),
 * so that later reads take no lock: 0, -EBADMSG or -errno. */
int uffd__image_chain_trust(struct uffd_image_chain *c);

/*
 * Start the write-back of what w has written since the last call, once
 * that is 8 MiB or more (sync_file_range, not waited for).  For a writer
 * streaming an image in the background, between batches: never from a
 * thread a program waits on, as the submission itself can block.
 */
void uffd__image_start_writeback(struct uffd_image_writer *w);

#endif
