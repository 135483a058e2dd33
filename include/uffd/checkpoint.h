/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd incremental checkpoints: a base image, then delta images that
 * hold only the pages written since the previous checkpoint.
 *
 * By default a checkpointer is live: it keeps its regions write-protected
 * on a userfaultfd of its own, so the first write to a page after a
 * checkpoint faults once (the page is remembered and un-protected alone).
 * A checkpoint's instant protects those pages again - most of them before
 * the pause callback, while the program runs, and inside the pause only
 * what it wrote meanwhile - and the image is then written in the
 * background with the live snapshot's copy-before-write (uffd/snapshot.h):
 * a write to a page not yet saved first copies it into a bounded buffer.
 * So the writers' pause is the instant only, not the delta's writing;
 * the price is a synchronous fault on each page's first write after each
 * checkpoint (~10 us, against ~1 us for WP_ASYNC tracking).
 *
 * Forcing a tracker backend (WP_ASYNC, MPROTECT, SOFT_DIRTY: trackers that
 * cannot hold a write back) gives the stopped way instead: each checkpoint
 * pauses the writers, collects and re-arms the written pages, writes them,
 * and lets the writers go - cheap first writes, a pause proportional to
 * the delta.
 *
 * The first checkpoint is a base holding every page that is not zero; the
 * next ones are deltas naming their parent, in the same directory.  Pages
 * that became zero (MADV_DONTNEED) are recorded as zero.
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
	enum uffd_track_backend backend;	/* UFFD_TRACK_AUTO (0): live;
						   SYNC_WP: live; the others:
						   stopped */
	/* Stop and restart the program's writers around each checkpoint's
	 * instant (both NULL: the caller guarantees nothing writes meanwhile). */
	void (*pause)(void *arg);
	void (*resume)(void *arg);
	void *arg;
	size_t buffer_bytes;		/* live: copy-before-write buffer (0: 1/64
					   of the regions, 1 to 64 MiB) */
};

struct uffd_ckpt_stats {
	int sequence;			/* 0 for the base */
	uint64_t pages_written;		/* pages in this image (data + zero) */
	uint64_t bytes;			/* its file size */
	uint64_t pause_ns;		/* the writers were stopped */
	uint64_t duration_ns;		/* begin to durable */
	uint64_t copied_before_write;	/* live: saved by a write, into the buffer */
	uint64_t sync_writes;		/* live: saved by a write, buffer full */
	uint64_t reserved_[6];		/* later fields take these: the size
					   never changes (see uffd.h) */
};

/* Start tracking the regions (4 KiB pages).  NULL with errno. */
struct uffd_ckpt *uffd_ckpt_new(const struct uffd_image_region *regions, int nregions,
				const struct uffd_ckpt_opts *o);
/*
 * Write the next checkpoint to path (a base the first time, else a delta
 * whose parent is the previous path, which must be in the same directory):
 * uffd_ckpt_begin() then uffd_ckpt_wait() with no timeout.  0 or -errno; on
 * failure no file named path exists, and the next checkpoint still covers
 * every page written since the last successful one.
 */
int uffd_ckpt_take(struct uffd_ckpt *c, const char *path, struct uffd_ckpt_stats *st);
/*
 * The checkpoint's instant; returns with the image being written (live; the
 * stopped way writes it before returning).  0, -EBUSY (one begun and not
 * yet waited for), or -errno (nothing was begun; the pages wait for the
 * next one).
 */
int uffd_ckpt_begin(struct uffd_ckpt *c, const char *path);
/*
 * Wait for the checkpoint begun: 0 when it is durable, -ETIMEDOUT
 * (timeout_ms >= 0 passed: call again), -ENOENT (none begun), or its error.
 * st (may be NULL) receives its statistics once it is over.
 */
int uffd_ckpt_wait(struct uffd_ckpt *c, int timeout_ms, struct uffd_ckpt_stats *st);
/*
 * Live: the calling thread is about to write [addr, addr + len) - remember
 * the pages and un-protect them (saving first what a checkpoint being
 * written still needs) in this thread, so the write does not fault and
 * wait for the servicing thread.  For programs that know where they write;
 * the fault stays the safety net for every write not announced.  0 (also
 * for the stopped way, and outside the regions) or -errno.
 */
int uffd_ckpt_prepare_write(struct uffd_ckpt *c, void *addr, size_t len);
void uffd_ckpt_free(struct uffd_ckpt *c);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
