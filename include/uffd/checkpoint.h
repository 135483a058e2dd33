/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd incremental checkpoints: a base image, then delta images that
 * hold only the pages written since the previous checkpoint.
 *
 * A checkpointer tracks its regions with a dirty tracker (uffd/track.h,
 * the best backend here: WP_ASYNC + PAGEMAP_SCAN).  Each uffd_ckpt_take()
 * stops the program's writers (the pause callback), collects and re-arms
 * the written pages in one pass, writes them into the image, lets the
 * writers go, and makes the image durable: so a checkpoint after little
 * change is small, and its pause is proportional to the change.  The first
 * checkpoint is a base holding every page that is not zero (its pause is
 * proportional to the memory: take a live snapshot instead when that is
 * too long); the next ones are deltas naming their parent, in the same
 * directory.  Pages that became zero (MADV_DONTNEED) are recorded as zero.
 * uffd_restore_open() and uffd_image_chain_open() compose a chain;
 * `uffd snapshot-info` shows it.
 */
#ifndef LIBUFFD_CHECKPOINT_H
#define LIBUFFD_CHECKPOINT_H

#include <uffd/image.h>
#include <uffd/track.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct uffd_ckpt;

struct uffd_ckpt_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	enum uffd_track_backend backend;	/* UFFD_TRACK_AUTO (0) */
	/* Stop and restart the program's writers around each checkpoint
	 * (both NULL: the caller guarantees nothing writes meanwhile). */
	void (*pause)(void *arg);
	void (*resume)(void *arg);
	void *arg;
};

struct uffd_ckpt_stats {
	int sequence;			/* 0 for the base */
	uint64_t pages_written;		/* pages in this image (data + zero) */
	uint64_t bytes;			/* its file size */
	uint64_t pause_ns;		/* the writers were stopped */
	uint64_t duration_ns;		/* take() from call to durable */
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};

/* Start tracking the regions (4 KiB pages).  NULL with errno. */
struct uffd_ckpt *uffd_ckpt_new(const struct uffd_image_region *regions, int nregions,
				const struct uffd_ckpt_opts *o);
/*
 * Write the next checkpoint to path (a base the first time, else a delta
 * whose parent is the previous path, which must be in the same directory).
 * 0 or -errno; on failure no file named path exists, and the next take
 * still covers every page written since the last successful one.
 */
int uffd_ckpt_take(struct uffd_ckpt *c, const char *path, struct uffd_ckpt_stats *st);
void uffd_ckpt_free(struct uffd_ckpt *c);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
