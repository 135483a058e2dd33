/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The consistency checker: a built-in workload whose memory can prove that
 * a snapshot is exactly the state at its instant.
 *
 * T writer threads update a table of 4 KiB pages.  Each write takes the
 * next value of a global version clock (versions start at 1) and stamps a
 * page with it in three places, in this order:
 *
 *   offset 0     u64 version, u64 page index     (the header)
 *   offset 2048  u64 f(version, index)           (the middle)
 *   offset 4088  u64 g(version, index)           (the checksum)
 *
 * f and g are different keyed bijections of the version, so each stamp
 * decodes back to the version it was made from: a page copied while being
 * written is "torn" (its stamps name different versions) and caught, and so
 * is a page restored at the wrong index.  Every other byte of a page stays
 * zero.  Writer w owns the pages p with p % T == w, so a page has one writer
 * and its versions only grow.
 *
 * uffd_checker_mark_instant(), called while the writers are paused, starts
 * an epoch: from then on a writer about to overwrite a page for the first
 * time in the epoch first records the version the page had (its version at
 * the instant).  So at any later time the checker knows, for every page,
 * the version it had at the instant - recorded, or still current - and
 * can verify an image or a restored copy page by page: the same version,
 * not torn, nothing from after the instant.  A never-written page is all
 * zeros (version 0), which an image records as a hole.
 *
 * The writers keep every page's versions in side arrays of their own, and
 * verifying reads only those (never the live table), so it may run while
 * the writers do.  The control calls (start, pause, resume, mark_instant,
 * stop, free) are meant to be made from one thread.
 */
#ifndef LIBUFFD_CHECKER_H
#define LIBUFFD_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uffd/uffd.h>	/* UFFD_OPTS */

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct uffd_checker;
struct uffd_image_chain;

/* Memory the table lives in. */
enum uffd_checker_mem {
	UFFD_CHECKER_ANON = 0,		/* private anonymous */
	UFFD_CHECKER_SHMEM,		/* a memfd, shared mapping */
};

struct uffd_checker_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	size_t bytes;			/* table size (multiple of 4 KiB; 0: 1 GiB) */
	int writers;			/* writer threads (0: 2; at most one
					   per page) */
	enum uffd_checker_mem mem;
	unsigned seed;			/* which pages are filled, and each
					   writer's page choice (0: 1) */
	double fill;			/* fraction of pages written once before
					   start, in page order, versions 1, 2...
					   (0..1; the rest stay zero) */
	size_t hot_bytes;		/* the writers write only the first
					   hot_bytes of the table (a multiple of
					   4 KiB; 0: all of it) */
	double rate;			/* writes per second, all writers
					   together (0: as fast as they can) */
};

/*
 * Map and pre-fill the table (opts NULL: all defaults).  NULL with errno:
 * EINVAL (bad opts), ENOMEM, or mmap's / memfd_create's errno.
 */
struct uffd_checker *uffd_checker_new(const struct uffd_checker_opts *o);
void *uffd_checker_area(const struct uffd_checker *c);
size_t uffd_checker_len(const struct uffd_checker *c);

/*
 * Start the writers (they run until paused or stopped; a stopped checker
 * may be started again).  0, -EBUSY (already running), or
 * pthread_create's error (then no writer runs).
 */
int uffd_checker_start(struct uffd_checker *c);
/*
 * Returns once every writer is parked between two writes (it spins for
 * 5 us, then sleeps until the last one parks).  No effect when the
 * writers are not running.  Writers cost one relaxed load per write for
 * this.
 */
void uffd_checker_pause(struct uffd_checker *c);
/* Wake all parked writers at once.  No effect when not paused. */
void uffd_checker_resume(struct uffd_checker *c);
/*
 * Callbacks of the right shape for uffd_snap_opts.pause/resume (arg = c).
 * The pause callback also marks the instant: a snapshot's pause is the
 * instant its image stands for.
 */
void uffd_checker_pause_cb(void *c);
void uffd_checker_resume_cb(void *c);
/*
 * The instant an image is about to stand for: the table as it is now.
 * Only while paused, or while the writers are not running (before start,
 * after stop); ignored while they run.
 */
void uffd_checker_mark_instant(struct uffd_checker *c);
/* Stop and join the writers (no effect when not running). */
void uffd_checker_stop(struct uffd_checker *c);
/* Writes done so far (all writers; pre-fill not counted). */
uint64_t uffd_checker_writes(const struct uffd_checker *c);
/* Stop the writers, unmap the table, free c (NULL: nothing). */
void uffd_checker_free(struct uffd_checker *c);

/*
 * Check that mem (uffd_checker_len() bytes: a copy, a restored mapping, or
 * the area itself while paused at the instant) is exactly the table at the
 * last marked instant; the writers may be running.  0; -EINVAL when no
 * instant was marked yet; or -EBADMSG with a one-line reason in msg (msg
 * may be NULL) about the first bad page, one of:
 *
 *   page 1234: version 77 (after the instant), expected 51
 *   page 1234: version 30 (older), expected 51
 *   page 1234: version 0 (zero page), expected 51
 *   page 1234: version 40 (never this page's), expected 51
 *   page 9: torn (header 12, middle of 11, checksum of 12)
 *              (a stamp that is all zeros reads "middle zero")
 *   page 9: header of page 17 (version 12)
 *   page 9: stray bytes at offset 1000 (version 12)
 */
int uffd_checker_verify_memory(struct uffd_checker *c, const void *mem,
			       char *msg, size_t msglen);
/*
 * The same for an image chain whose region `region` holds the table (its
 * address need not be the table's): each page is read with
 * uffd_image_chain_read_page(), a page recorded as zero or absent being
 * version 0.  Also -EINVAL when the region does not exist or is not
 * uffd_checker_len() bytes of 4 KiB pages, and a read's error as it is
 * (msg: "page N: " and the error).
 */
int uffd_checker_verify_image(struct uffd_checker *c, struct uffd_image_chain *chain,
			      int region, char *msg, size_t msglen);

/*
 * Handing the writers to another process: a migration moves the table,
 * and the writers go on there where they stopped.
 *
 * uffd_checker_export(), while the writers are paused at a marked instant
 * (or stopped), writes the writers' state - the version clock, the
 * instant, each writer's random state and count, the hot set and rate -
 * into buf: a small blob (64 + 16 bytes per writer) for the migration's
 * pause.  Returns its length; with buf NULL, the length it needs; -ENOSPC
 * when len is smaller; -EINVAL when the writers run or no instant was
 * marked.
 *
 * uffd_checker_adopt() makes a checker over area, a table of len bytes
 * that holds (or will hold, page by page as they arrive) the exporter's
 * table at its instant, with the exported state: uffd_checker_start()
 * starts writers that go on from there.  The area stays the caller's
 * (uffd_checker_free() does not unmap it).  An adopted table has no
 * history of its own: each page's first write here reads the page first
 * and records the version it found (a page that is not one whole version
 * of itself is remembered as bad).  NULL with errno EINVAL (not a state
 * of this length, or one this library does not read) or ENOMEM.
 *
 * uffd_checker_instant_versions() fills versions[0..npages) with each
 * page's version at the last instant (the exporter's truth; npages must
 * be uffd_checker_len() / 4096): 0 or -EINVAL.
 *
 * uffd_checker_adopt_versions(), on an adopted checker whose writers are
 * paused or stopped, proves its table against those versions: a page
 * written here must have held the exporter's version when first written
 * here and must hold the last version written here now (nothing older
 * arrived over it); a page not written here must hold the exporter's
 * version now.  Then it takes the versions as the pages' history, so that
 * uffd_checker_mark_instant() and uffd_checker_verify_memory() work as on
 * the exporter.  0, -EINVAL, -EBUSY (writers running), or -EBADMSG with
 * the first bad page in msg, as uffd_checker_verify_memory() words it, or
 *
 *   page 7: version 12 when first written here, the source had 15
 *   page 7: torn (header 3, middle of 2, checksum of 3) when first written here
 */
int uffd_checker_export(struct uffd_checker *c, void *buf, size_t len);
struct uffd_checker *uffd_checker_adopt(void *area, size_t len, const void *state,
					size_t state_len);
int uffd_checker_instant_versions(struct uffd_checker *c, uint64_t *versions, size_t npages);
int uffd_checker_adopt_versions(struct uffd_checker *c, const uint64_t *versions, size_t npages,
				char *msg, size_t msglen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
