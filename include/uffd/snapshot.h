/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd live snapshots: a consistent image of memory at one instant,
 * written while the program keeps running, without fork.
 *
 * The instant is the end of a short pause.  Before it, with the program
 * running, every page is write-protected and writes are let through but
 * remembered (precopy); during the pause only the pages written meanwhile
 * are protected again, so the pause is proportional to what the program
 * wrote in those milliseconds, not to its size.  After it, the first
 * write to a protected page makes a servicing thread save the page's
 * aligned group (256 KiB: 64 pages of 4 KiB) and un-protect the group in
 * one call: the pages are copied into a bounded in-memory buffer while it
 * has room, and the writer goes on without waiting for I/O; a background
 * thread streams the protected pages in address order and the buffered
 * ones as they come, un-protecting what it has written.  When the buffer
 * is full the rest of the group is written to the file in the fault,
 * into the page cache (uffd_snap_stats.sync_writes counts those pages).
 *
 * Pages that were never touched or are all zeros are recorded as holes.
 * The image is committed (fsync, rename) only when complete; a failure or
 * a cancel leaves no file behind.
 *
 * The program may unmap, move or discard (MADV_DONTNEED, MADV_REMOVE) its
 * memory during a snapshot: the snapshot follows the kernel's events.
 * Pages saved stay saved; a discard is announced before it happens, and
 * the pages not saved yet are saved first if they can be (the kernel does
 * not wait for that: few pages usually are); pages unmapped or moved are
 * gone before the event comes.  A page whose contents at the instant are
 * lost fails the snapshot with -EFAULT: the image is exactly the instant,
 * or there is none.
 *
 * With opts.in_thread the first write to a page after the instant is
 * resolved by the writing thread itself (the runtime's in-thread mode,
 * uffd/handler.h): from its SIGBUS handler it copies its page's group into
 * the buffer and un-protects it, with no servicing thread in between; when
 * the buffer is full it waits for the background writer to free some
 * (stats.buffer_waits) instead of writing to the image itself.  The price
 * is the mode's: while the snapshot runs, a system call that writes a
 * protected page (read(2) into it) fails with EFAULT; no thread may block
 * SIGBUS (begin fails with EBUSY); and no thread's stack may lie in the
 * regions (uffd_snap_all_regions()' regions hold them: not with in_thread).
 */
#ifndef LIBUFFD_SNAPSHOT_H
#define LIBUFFD_SNAPSHOT_H

#include <uffd/image.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct uffd_snap;

struct uffd_snap_stats {
	uint64_t pause_ns;		/* the program's writers were stopped */
	uint64_t protect_ns;		/* write-protecting before the pause */
	uint64_t precopy_dirty;		/* pages re-protected in the pause */
	uint64_t pages;			/* pages in the regions */
	uint64_t pages_present;		/* not holes at the instant */
	uint64_t copied_before_write;	/* by the fault handler */
	uint64_t written_background;	/* streamed by the writer thread */
	uint64_t sync_writes;		/* buffer full: written in the fault */
	uint64_t zero_pages;		/* present but all zeros: holes */
	uint64_t bytes;			/* image file size so far */
	uint64_t buffer_peak_bytes;	/* most of the buffer in use */
	uint64_t extra_bytes;		/* buffer + bookkeeping allocated */
	uint64_t duration_ns;		/* begin to durable */
	uint64_t skipped_regions;	/* skip_unprotectable: left out */
	bool done;
	int error;			/* 0, or the -errno that ended it */
	uint64_t buffer_waits;		/* in_thread: faults that found the
					   buffer full and faulted again */
	uint64_t reserved_[7];		/* later fields take these: the size
					   never changes (see uffd.h) */
};

struct uffd_snap_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	const char *path;			/* the image to write */
	const struct uffd_image_region *regions;	/* what to snapshot */
	int nregions;
	size_t buffer_bytes;			/* copy-before-write buffer (0: 1/64
						   of the regions, 1 to 64 MiB) */
	/* Stop and restart the program's writers around the instant (both
	 * NULL: the caller guarantees nothing writes during begin). */
	void (*pause)(void *arg);
	void (*resume)(void *arg);
	void *arg;
	bool no_precopy;			/* protect everything in the pause */
	bool skip_unprotectable;		/* leave out regions the kernel will
						   not write-protect (counted in
						   stats.skipped_regions) instead
						   of failing */
	bool in_thread;				/* copy-before-write in the writing
						   thread: see below */
};

/*
 * Take a snapshot: returns after the instant, with the image being written
 * in the background.  NULL with errno (EINVAL bad regions, EOPNOTSUPP no
 * write-protect here, EBUSY a region is registered elsewhere, or the
 * image file's error).
 */
struct uffd_snap *uffd_snap_begin(const struct uffd_snap_opts *o);
/*
 * uffd_snap_begin() in two steps, for a program that announces its writes
 * (uffd_snap_prepare_write()) and wants to do so during the precopy too:
 * uffd_snap_new() sets everything up and protects nothing (NULL with
 * errno, as begin); from then on the handle can be given to the writing
 * threads.  uffd_snap_start() does the rest of begin - precopy, the
 * instant, the writer thread - and returns 0 after the instant, or -errno
 * (then uffd_snap_wait() gives the same error and uffd_snap_free() tears
 * it down); -EALREADY the second time.  Before start, prepare_write does
 * nothing, and wait and cancel answer -EINVAL.
 */
struct uffd_snap *uffd_snap_new(const struct uffd_snap_opts *o);
int uffd_snap_start(struct uffd_snap *s);
/*
 * The calling thread is about to write [addr, addr + len): save the pages
 * the image still needs and un-protect them now, in this thread, so the
 * write does not fault and wait for the servicing thread.  For programs
 * that know where they write (a database writing a value): cheaper than
 * the fault, which stays the safety net for every write not announced.
 * Announce only writes about to happen.  0 (also when the snapshot is
 * done, or for addresses outside it) or -errno (then the write faults as
 * usual).
 */
int uffd_snap_prepare_write(struct uffd_snap *s, void *addr, size_t len);
/* Wait until durable: 0, -ETIMEDOUT (timeout_ms >= 0 passed), or the error
 * (-EFAULT: memory went before it was saved, see the top). */
int uffd_snap_wait(struct uffd_snap *s, int timeout_ms);
/*
 * Stop early: the image is abandoned (no file); memory is un-protected.
 * 0 when cancelled; -EALREADY when the snapshot had committed first (the
 * image stays, complete); else the error that had ended it (no file).
 */
int uffd_snap_cancel(struct uffd_snap *s);
int uffd_snap_stats(struct uffd_snap *s, struct uffd_snap_stats *st);
/* Cancel if still running, and free. */
void uffd_snap_free(struct uffd_snap *s);

/*
 * The regions of "all writable private and shared anonymous memory of this
 * process" from /proc/self/maps, for uffd_snap_opts.regions (*out is
 * malloc'd: free it).  Left out, one line each in skipped (if not NULL):
 * file-backed mappings, kernel mappings, the main thread's stack, and the
 * static data of shared libraries.  Call it just before uffd_snap_begin():
 * the snapshot's own state is allocated after it, outside these regions.
 * Returns the number of regions or -errno.
 */
int uffd_snap_all_regions(struct uffd_image_region **out, char *skipped, size_t skipped_len);

/* ---- restore ---------------------------------------------------------- */

struct uffd_restore;

/* uffd_restore_open() flags */
#define UFFD_RESTORE_LAZY	(1u << 0) /* map now, fill on first touch
					     (+ a background prefetch) */
#define UFFD_RESTORE_ANYWHERE	(1u << 1) /* new mappings wherever the kernel
					     puts them, not the image's
					     addresses */

/*
 * Map the regions of an image (or the chain it ends) as private anonymous
 * memory - at the recorded addresses (failing with EEXIST if something is
 * mapped there), or anywhere with UFFD_RESTORE_ANYWHERE - and fill them:
 * eagerly before returning, or lazily: MISSING faults are served from the
 * image (holes as zero pages) while a background thread prefetches the
 * rest in address order.  NULL with errno.
 */
struct uffd_restore *uffd_restore_open(const char *path, unsigned flags);

struct uffd_restore_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	unsigned flags;			/* UFFD_RESTORE_* */
	bool in_thread;			/* lazy: a first touch is served by
					   the touching thread: see below */
};

/*
 * uffd_restore_open() with options (o NULL: flags 0).  With in_thread (and
 * UFFD_RESTORE_LAZY) the first touch of a page not in yet is served by
 * the thread that touched it, from a SIGBUS handler (the runtime's
 * in-thread mode, uffd/handler.h), with no servicing thread in between;
 * the prefetch runs as without it.  The price is the mode's, until every
 * page is in (uffd_restore_wait): a system call that reads or writes a
 * page not in yet fails with EFAULT (write(2) from it, read(2) into it),
 * and the touching thread needs about 8 KiB of stack free.  NULL with
 * errno: EINVAL (in_thread without UFFD_RESTORE_LAZY, an unknown flag or
 * option), EBUSY (in_thread: a thread blocks SIGBUS, or the program's
 * SIGBUS handler replaced libuffd's), or as uffd_restore_open().
 */
struct uffd_restore *uffd_restore_open_opts(const char *path, const struct uffd_restore_opts *o);
/* Where region i now lives, and how many regions there are. */
void *uffd_restore_addr(const struct uffd_restore *r, int region);
int uffd_restore_regions(const struct uffd_restore *r);
/* Lazy: wait until every page is in (0, -ETIMEDOUT, or the error). */
int uffd_restore_wait(struct uffd_restore *r, int timeout_ms);

struct uffd_restore_stats {
	uint64_t pages;			/* in the regions */
	uint64_t faulted;		/* touched before the prefetch came */
	uint64_t prefetched;		/* filled by the background thread */
	uint64_t zero;			/* holes and zero pages */
	uint64_t duration_ns;		/* open to all pages in */
	bool done;
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};
int uffd_restore_stats(struct uffd_restore *r, struct uffd_restore_stats *st);
/* Finish (lazy: waits for the prefetch) and release the bookkeeping; the
 * restored memory stays mapped.  unmap: also unmap the regions. */
void uffd_restore_close(struct uffd_restore *r, bool unmap);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
