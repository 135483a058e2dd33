/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live incremental checkpoints (checkpoint.c's default path): the engine
 * that tracks written pages and writes each delta with copy-before-write,
 * so the writers' pause covers the instant only.  See ckpt_live.c.
 */
#ifndef LIBUFFD_SNAPSHOT_CKPT_LIVE_H
#define LIBUFFD_SNAPSHOT_CKPT_LIVE_H

#include <stdbool.h>
#include <uffd/checkpoint.h>

struct ckpt_live;

/* What one checkpoint did (filled by uffd__ckpt_live_wait). */
struct ckpt_live_result {
	uint64_t pages_written;		/* data + zero pages in the image */
	uint64_t bytes;
	uint64_t pause_ns;
	uint64_t copied_before_write;	/* saved by a write fault, into the buffer */
	uint64_t sync_writes;		/* saved by a write fault, buffer full */
};

/*
 * Register the regions (4 KiB pages, private or shared anonymous) for
 * synchronous write-protect and protect them: from now on the first write
 * to each page is seen.  NULL with errno (EOPNOTSUPP: no write-protect of
 * unpopulated memory here; EBUSY: registered elsewhere).
 */
struct ckpt_live *uffd__ckpt_live_new(const struct uffd_image_region *regions, int nregions,
				       size_t buffer_bytes);
/*
 * The instant: pages written since the last one are protected again (most
 * of them before pause(), the rest inside it), then an image of them (of
 * everything for a base) is written in the background to path, a delta of
 * parent unless base.  0 or -errno (-EBUSY: the previous one is still
 * being written; the pages then stay for the next checkpoint).
 */
int uffd__ckpt_live_begin(struct ckpt_live *l, const char *path, const char *parent,
			  bool base, void (*pause)(void *), void (*resume)(void *), void *arg,
			  uint64_t *pause_ns);
/*
 * Wait for the image begun last: 0 (durable), -ETIMEDOUT, or its error -
 * then no file named path exists and its pages go into the next one.
 * -ENOENT if none was begun.  res may be NULL.
 */
int uffd__ckpt_live_wait(struct ckpt_live *l, int timeout_ms, struct ckpt_live_result *res);
/* The program is about to write there: save and un-protect in its thread. */
int uffd__ckpt_live_prepare_write(struct ckpt_live *l, void *addr, size_t len);
/* Stop (an image being written is abandoned), unregister, free. */
void uffd__ckpt_live_free(struct ckpt_live *l);

#endif
