/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd dirty tracking: which pages were written since I last looked?
 *
 * A tracker watches ranges of this process's memory and answers, at each
 * collect, with the pages written since the previous collect that re-armed
 * them (or since they were added).  Four backends give the same answers at
 * different costs; the best one this machine offers is chosen at run time
 * (uffd_tracking_backend()), or the caller forces one:
 *
 *   UFFD_TRACK_WP_ASYNC   userfaultfd write-protect with WP_ASYNC: the kernel
 *                         resolves write faults itself by clearing the page's
 *                         uffd-wp bit, and one PAGEMAP_SCAN per collect
 *                         reports and re-protects (~1 us per written page).
 *   UFFD_TRACK_SYNC_WP    userfaultfd write-protect, faults served by a
 *                         runtime thread that records the page and
 *                         un-protects it; sees each first write (on_write).
 *                         Also registered for MISSING faults: a read of a
 *                         page that is not there gets a write-protected
 *                         zero page of its own (a round trip, a page).
 *   UFFD_TRACK_SOFT_DIRTY clear_refs + pagemap bit 55, where the kernel has
 *                         CONFIG_MEM_SOFT_DIRTY (probed by effect).  Reset
 *                         is process-wide: one soft-dirty tracker at a time.
 *   UFFD_TRACK_MPROTECT   mprotect(PROT_READ) + a SIGSEGV handler; works
 *                         without userfaultfd; each written page splits a
 *                         VMA, so it fails with -ENOSPC (everything then
 *                         reported as written) near vm.max_map_count / 2
 *                         written pages.
 *
 * Writes the kernel makes on the program's behalf (read(2) into a tracked
 * page, a vmsplice, io_uring) are reported by WP_ASYNC, SYNC_WP (unless the
 * userfaultfd is user-mode-only) and SOFT_DIRTY.  With MPROTECT they are
 * not seen: the system call fails with EFAULT instead, as for any read-only
 * page.
 *
 * Changes to the tracked memory (both userfaultfd backends follow them
 * through the kernel's events, and every call waits until the events the
 * kernel has handed over are applied): MADV_DONTNEED/REMOVE of a tracked
 * page reports it as written (its contents changed to zeros; a collect that
 * comes between the event and the zap itself reports it, and the next one
 * again); mremap
 * moves the tracked pages with the memory, a part of a range as well as
 * all of it; munmap stops tracking what went away and keeps the rest.
 * MPROTECT and SOFT_DIRTY do not follow them.
 *
 * MPROTECT limits: at most 1024 ranges in the process (-ENOSPC beyond),
 * ranges may not overlap (-EEXIST), and each written page costs a VMA.
 *
 * fork(): in a child the tracked memory is plain memory (writable, its
 * writes recorded by nobody); the trackers it inherits answer -ECHILD and
 * uffd_track_free() of one frees nothing there.
 *
 * Transparent huge pages: on 6.18 the kernel splits a write-protected THP
 * at the first write, so one written byte reports one page; kernels that
 * track at huge-page granularity report all 512.  Set no_thp to
 * MADV_NOHUGEPAGE the tracked ranges (the default leaves them alone).
 */
#ifndef LIBUFFD_TRACK_H
#define LIBUFFD_TRACK_H

#include <uffd/uffd.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Dirty-tracking backends, best first; see uffd_tracking_backend(). */
enum uffd_track_backend {
	UFFD_TRACK_AUTO = 0,	/* let the probes choose (uffd_track_new) */
	UFFD_TRACK_WP_ASYNC,	/* WP_ASYNC + PAGEMAP_SCAN: kernel resolves */
	UFFD_TRACK_SYNC_WP,	/* uffd write-protect, faults to a handler */
	UFFD_TRACK_SOFT_DIRTY,	/* clear_refs + pagemap bit 55 */
	UFFD_TRACK_MPROTECT,	/* mprotect + SIGSEGV */
};
/* The backend the core's feature probes choose on this machine (never
 * AUTO), and a backend's name ("wp-async+pagemap-scan", ...; NULL if
 * unknown). */
enum uffd_track_backend uffd_tracking_backend(void);
const char *uffd_track_backend_name(enum uffd_track_backend b);

struct uffd_tracker;

struct uffd_track_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	enum uffd_track_backend backend;	/* UFFD_TRACK_AUTO (0) or forced */
	bool no_thp;		/* MADV_NOHUGEPAGE the tracked ranges */
	/*
	 * SYNC_WP and MPROTECT: called for the first write to a page since it
	 * was last armed, before the write lands.  MPROTECT calls it from a
	 * SIGSEGV handler: async-signal-safe code only.
	 */
	void (*on_write)(void *page, void *arg);
	void *arg;
	/*
	 * SYNC_WP only (EINVAL with any other backend, AUTO included): each
	 * write fault is resolved by the writing thread itself, from the
	 * runtime's SIGBUS handler (uffd/handler.h, "In-thread mode"), with
	 * no hand-off: a fraction of the cost.  on_write then runs in that
	 * signal handler (async-signal-safe code only); a system call that
	 * writes a protected page (read(2) into it), or reads a page never
	 * touched (write(2) from it), fails with EFAULT instead of being
	 * served; and a write racing with a collect's re-arm may be reported
	 * by that collect and again by the next.
	 */
	bool in_thread;
};

/* A tracker; NULL with errno (EOPNOTSUPP: the backend asked for is not
 * available here). o may be NULL (auto, THP left alone, no callback). */
struct uffd_tracker *uffd_track_new(const struct uffd_track_opts *o);

/* Start tracking [addr, addr+len) (page-aligned, private or shared
 * anonymous or shmem memory): everything in it counts as clean now. */
int uffd_track_add(struct uffd_tracker *t, void *addr, size_t len);

/* The backend in use (UFFD_TRACK_AUTO for a NULL t). */
enum uffd_track_backend uffd_track_backend_of(const struct uffd_tracker *t);

/* collect() flags */
#define UFFD_TRACK_REARM (1u << 0)	/* re-protect what is reported, in the
					   same pass: the next collect reports
					   only newer writes */

/* Written pages as ranges; the library grows ranges as needed. */
struct uffd_track_result {
	struct uffd_range *ranges;	/* [start, end) byte addresses */
	size_t nranges;
	size_t cap;
	uint64_t pages;			/* total pages written */
};

/*
 * The pages written since they were last armed, merged into ranges in
 * address order.  Without UFFD_TRACK_REARM they stay unprotected and are
 * reported again next time.  Returns 0 or -errno: -ENOSPC when the
 * MPROTECT backend ran out of VMAs (every tracked page is reported as
 * written, and tracking goes on after a rearm).
 */
int uffd_track_collect(struct uffd_tracker *t, unsigned flags,
		       struct uffd_track_result *res);
/*
 * The same as a bitmap: bit i is page i of the tracked ranges taken in the
 * order they were added.  nbits must cover them all (uffd_track_pages()).
 * *pages (may be NULL) receives the number of bits set.
 */
int uffd_track_collect_bitmap(struct uffd_tracker *t, unsigned flags,
			      uint64_t *bitmap, size_t nbits, uint64_t *pages);
void uffd_track_result_free(struct uffd_track_result *res);

/* Pages tracked (the bitmap's size in bits). */
size_t uffd_track_pages(const struct uffd_tracker *t);

/* Forget what was written and re-protect everything. */
int uffd_track_reset(struct uffd_tracker *t);

struct uffd_track_stats {
	enum uffd_track_backend backend;
	uint64_t tracked_bytes;
	uint64_t collects;
	uint64_t pages_reported;	/* summed over collects */
	uint64_t write_faults;		/* SYNC_WP, MPROTECT: faults seen */
	uint64_t removed_pages;		/* reported because of REMOVE events */
	bool overflowed;		/* MPROTECT ran out of VMAs */
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};
int uffd_track_stats(struct uffd_tracker *t, struct uffd_track_stats *s);

/* Stop tracking everything (un-protect) and free the tracker. */
void uffd_track_free(struct uffd_tracker *t);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
