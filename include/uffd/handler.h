/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd runtime: servicing threads that turn page faults and events on a
 * userfaultfd into callbacks on registered regions.
 *
 * A service describes regions (an address range, a page size, register
 * modes, callbacks, private data) and the handler does the rest: it reads
 * messages in batches, coalesces duplicate faults on one page, calls the
 * region's callback, resolves with DONTWAKE and wakes each run of pages once
 * per batch, keeps the region table true across FORK/REMAP/REMOVE/UNMAP,
 * retries what the kernel asks to retry, and measures itself.
 *
 * Fault policy, per kind, when a region has no callback for it:
 *   MISSING -> zero page (UFFDIO_ZEROPAGE; UFFDIO_COPY of zeros on hugetlbfs)
 *   WP      -> un-protect the page
 *   MINOR   -> UFFDIO_CONTINUE the page
 * The same default resolution is applied when a callback returns 0 without
 * having resolved the faulting page, and when it returns an error (then, if
 * the userfaultfd has UFFD_FEAT_POISON, a MISSING or MINOR page is poisoned
 * instead so the access raises SIGBUS; stats.callback_errors counts these).
 * No fault is left blocked because a callback forgot it.  The one exception:
 * when the default itself fails (CONTINUE of a page that is not in the page
 * cache) and POISON was not negotiated, the fault waits until the region is
 * unregistered (uffd_handler_stop) - negotiate POISON to get SIGBUS instead.
 *
 * Races, as the kernel documents them: -EEXIST from a fill means someone else
 * resolved the page (the handler wakes it and counts it); -ENOENT means the
 * range went away (the handler wakes the address so the faulting thread
 * re-faults against the new layout, and drops the fault); -EAGAIN means
 * events are pending (the handler reads them, updates the table, and
 * retries); -ESRCH/-ENOSPC mean the process is gone (that userfaultfd's
 * threads stop cleanly, stats.dead_contexts counts it).
 *
 * Lifetime: uffd_handler_stop() (and free, started or not) joins every
 * thread the handler started, then unregisters every region: a thread that
 * faults there later, or was still blocked, completes as an ordinary fault
 * (anonymous MISSING pages read as zeros, WP writes proceed).  A start after
 * a stop registers the regions again (WP protection is not restored).
 *
 * With EVENT_* features negotiated the kernel blocks a thread doing
 * mremap/munmap/madvise/fork until a servicing thread has read the event:
 * never do those on registered memory from inside a callback when the
 * handler has a single thread.  Callbacks run with the region table
 * read-locked: uffd_handler_add/remove/stop/free from inside any callback
 * would deadlock.
 *
 * FORK: the child's userfaultfd gets its own context with a copy of the
 * parent's regions (same ops and data) and one servicing thread of its own,
 * even in UFFD_WAIT_EPOLL mode; it ends when the child's address space is
 * gone.  A stop unregisters the children's regions too, and a later start
 * does not bring them back.  glibc's fork() holds its allocator's locks
 * until its FORK is read: a callback that allocates may wait for a fork of
 * this process that waits for the callback's thread (with one thread, a
 * hang).  The handler's own code takes none of those locks on its
 * servicing threads.
 *
 * In-thread mode (opts.in_thread, an explicit choice): faults are resolved
 * by the thread that took them, with no hand-off to a servicing thread.
 * The userfaultfd must have been opened with UFFD_FEAT_SIGBUS (and without
 * EVENT_FORK): the kernel then raises SIGBUS in the faulting thread, and a
 * handler libuffd installs for the process (once, shared by every
 * in-thread handler, the previous action put back when the last is freed)
 * runs the region's callback or the default right there, then returns so
 * the access runs again.  A SIGBUS that is not libuffd's - another
 * si_code, an address outside every in-thread region, a fault that can
 * neither be resolved nor poisoned - goes to the action installed before
 * (its handler, with its mask; or the default action: the process dies of
 * it as it would have).  Faults are resolved from uffd_handler_add() on;
 * the handler's thread (UFFD_WAIT_BLOCK by default) only reads events.
 * What changes for the program:
 *  - Callbacks run in a signal handler, on the faulting thread, with the
 *    program's asynchronous signals blocked: async-signal-safe code only
 *    (the uffd_fault_* helpers and core calls are; no malloc, no lock the
 *    interrupted code may hold, no stdio, no uffd_region_* or handler
 *    calls).  f->region is a copy of the region as it was when the fault
 *    was taken (compare f->data, not f->region); f->tid is gettid() with
 *    THREAD_ID.  UFFD_FAULT_DEFERRED means the access faults again (the
 *    callback is called again) until the page is resolved; -EAGAIN makes
 *    it fault again after a sched_yield().  A fault a callback takes on
 *    in-thread memory is resolved the same way, nested (4 deep at most).
 *    A callback that fails has its page poisoned, as above, and the
 *    access that faulted gets its SIGBUS at once (the program's action,
 *    si_code BUS_ADRERR).  A kernel without memory-failure support
 *    raises a poisoned page's SIGBUS as BUS_ADRERR too, which looks like
 *    a fault: there each later access of the page calls the callback
 *    again, which must fail again (where such SIGBUS is BUS_MCEERR_AR it
 *    goes to the program's action without a callback).  A thread
 *    cancelled meanwhile is cancelled once its fault is resolved, not at
 *    a cancellation point inside the callback.
 *  - A system call that reads or writes an unresolved page does not wait:
 *    it fails with EFAULT (read(2) into a missing or write-protected page,
 *    for instance).  Touch such memory before handing it to the kernel, or
 *    keep system-call buffers outside in-thread regions.
 *  - A thread that blocks SIGBUS dies of its first fault (the kernel
 *    unblocks the signal and resets it to the default action):
 *    uffd_handler_new() fails with EBUSY if any thread blocks it then.  A
 *    thread's stack cannot be in an in-thread region (the signal frame
 *    goes there): uffd_handler_add() refuses the calling thread's with
 *    EINVAL.  The handler does not use the alternate signal stack (a
 *    fault taken on one runs there, nested in that signal's handler).  A
 *    SIGBUS handler installed before libuffd's is chained to; one
 *    installed later must chain to libuffd's, or it gets its faults:
 *    uffd_handler_new() and uffd_handler_add() fail with EBUSY while the
 *    action is not libuffd's.
 *  - In a fork() child, in-thread regions are plain memory; the child
 *    may make in-thread handlers of its own.
 */
#ifndef LIBUFFD_HANDLER_H
#define LIBUFFD_HANDLER_H

#include <uffd/uffd.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct uffd_handler;
struct uffd_region;

/* What a callback sees.  Valid only during the callback. */
struct uffd_fault {
	struct uffd_region *region;
	void *addr;		/* aligned down to the region's page size */
	uint64_t exact;		/* the address the kernel reported */
	enum uffd_fault_kind kind;
	bool write;
	uint32_t tid;		/* 0 unless THREAD_ID was negotiated */
	uint64_t seq;		/* batches of messages the handler had read
				   when it read this one: see
				   uffd_region_read_seq() */
	void *data;		/* the region's private data */
	/* private to the runtime */
	void *batch_;
	bool resolved_;
};

/* A callback's return value. */
#define UFFD_FAULT_RESOLVED	0	/* done (defaults fill in anything left) */
#define UFFD_FAULT_DEFERRED	1	/* the service resolves it later with
					   uffd_region_*() from any thread */

struct uffd_region_ops {
	int  (*missing)(struct uffd_fault *f);
	int  (*wp)(struct uffd_fault *f);
	int  (*minor)(struct uffd_fault *f);
	/* REMAP (called for each piece that moved, after the move: a piece
	 * that started at ev->remap.from + d now starts at ev->remap.to + d;
	 * regions the mremap overwrote at the destination are dropped), REMOVE,
	 * UNMAP (called before r shrinks or goes away; a wholly unmapped
	 * region is freed after the callback returns), FORK (r is the child's
	 * copy of a parent region).
	 * Called from a servicing thread with the region table locked: do not
	 * add or remove regions from here. */
	void (*event)(struct uffd_region *r, const struct uffd_event *ev);
};

/* How servicing threads wait for the next message. */
enum uffd_wait {
	UFFD_WAIT_DEFAULT = 0,		/* chosen by measurement: SPIN_THEN_BLOCK */
	UFFD_WAIT_BLOCK,		/* poll(2) until a message arrives */
	UFFD_WAIT_SPIN_THEN_BLOCK,	/* poll the fd without sleeping for
					   spin_us after the last message, then
					   block */
	UFFD_WAIT_EPOLL,		/* no threads (but for forked
					   children): the caller polls
					   uffd_handler_fd() and calls
					   uffd_handler_dispatch() */
};

struct uffd_handler_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	int threads;		/* servicing threads; 0 = 1; at most
				   UFFD_HANDLER_MAX_THREADS */
	enum uffd_wait wait;	/* a UFFD_WAIT_* value */
	unsigned spin_us;	/* 0 = default (UFFD_DEFAULT_SPIN_US); at
				   most UFFD_HANDLER_MAX_SPIN_US */
	int batch;		/* messages per read; 0 = default (64);
				   above 64 reads 64 */
	bool in_thread;		/* faults resolved by the faulting thread:
				   see "In-thread mode" above */
};

/* Limits of uffd_handler_opts: beyond them uffd_handler_new() fails with
 * EINVAL (as it does for a negative threads or batch, or an unknown wait). */
#define UFFD_HANDLER_MAX_THREADS 1024
#define UFFD_HANDLER_MAX_SPIN_US 1000000	/* one second */

/* Default bound on spinning: covers the gap between sequential faults of a
 * running thread (~20 us here) with room, and costs at most this much CPU
 * per fault burst.  See `uffd bench fault`. */
#define UFFD_DEFAULT_SPIN_US 200

/*
 * A handler over an open userfaultfd (the caller keeps owning u and closes
 * it after uffd_handler_free).  The fd is switched to non-blocking.  o may
 * be NULL (all defaults).  NULL with errno set on failure: EINVAL (u NULL,
 * an option out of its range; in_thread without UFFD_FEAT_SIGBUS or with
 * EVENT_FORK), EBADF (u->fd negative), EBUSY (in_thread: a thread blocks
 * SIGBUS, or libuffd's SIGBUS action was replaced), ENOMEM, ...
 */
struct uffd_handler *uffd_handler_new(struct uffd *u, const struct uffd_handler_opts *o);

/*
 * Register [addr, addr+len) in the given modes (UFFD_REG_*) with callbacks.
 * page_size: 0 means the base page; 2 MiB for hugetlbfs.  ops may be NULL
 * (all defaults).  NULL with errno on failure (EINVAL unaligned or
 * overlapping an existing region, or the kernel's errno from registering).
 */
struct uffd_region *uffd_handler_add(struct uffd_handler *h, void *addr, size_t len,
				     size_t page_size, unsigned modes,
				     const struct uffd_region_ops *ops, void *data);
/* Unregister and forget a region (not from inside its own callback). */
int uffd_handler_remove(struct uffd_region *r);

/* Region accessors (valid while the region exists). */
void *uffd_region_addr(const struct uffd_region *r);
size_t uffd_region_len(const struct uffd_region *r);
size_t uffd_region_page_size(const struct uffd_region *r);
void *uffd_region_data(const struct uffd_region *r);
/*
 * Give r other private data: from r's event callback (a FORK callback
 * gives the child's copy, which starts with the parent's data, data of its
 * own, before the child's servicing thread starts), or while no callback
 * of r can run.  0 or -EINVAL.
 */
int uffd_region_set_data(struct uffd_region *r, void *data);
/*
 * Batches of messages read so far for r's userfaultfd.  A service that
 * records it when it changes a page can tell a fault read before the
 * change (f->seq <= the recorded count) from one read after: a fault read
 * before a page was filled and dropped again is stale, its thread woken by
 * the fill.
 */
uint64_t uffd_region_read_seq(const struct uffd_region *r);
struct uffd *uffd_region_uffd(const struct uffd_region *r);

int  uffd_handler_start(struct uffd_handler *h);
/* Join all threads, unregister all regions (see "Lifetime" above). */
int  uffd_handler_stop(struct uffd_handler *h);
void uffd_handler_free(struct uffd_handler *h);

/*
 * Wait until every event already read from the userfaultfd has been
 * applied (region table updated, event callbacks returned).  The kernel
 * lets an mremap/munmap/madvise return once its event is read, so a thread
 * that just did one calls this before trusting the table.  Not from a
 * callback.  Returns 0.
 */
int uffd_handler_sync(struct uffd_handler *h);

/* UFFD_WAIT_EPOLL: the fd to watch for POLLIN, and one round of servicing
 * (returns messages handled, 0 if none were queued, or -errno). */
int uffd_handler_fd(struct uffd_handler *h);
int uffd_handler_dispatch(struct uffd_handler *h);

/* Resolve helpers for callbacks.  len may exceed a page (read-ahead); it is
 * clipped to the region.  They batch wake-ups and apply the EEXIST policy
 * (someone else resolved it: success).  0 or -errno. */
int uffd_fault_copy(struct uffd_fault *f, const void *src, size_t len);
/* Copy to another address of the fault's region (read-ahead elsewhere). */
int uffd_fault_copy_at(struct uffd_fault *f, void *dst, const void *src, size_t len);
/* Copy mapping the pages write-protected (the region has UFFD_REG_WP): the
 * first write to each then raises a WP fault. */
int uffd_fault_copy_wp(struct uffd_fault *f, void *dst, const void *src, size_t len);
int uffd_fault_zero(struct uffd_fault *f, size_t len);
int uffd_fault_continue(struct uffd_fault *f, size_t len);
int uffd_fault_unprotect(struct uffd_fault *f, size_t len);

/* The same, outside a callback (deferred faults, prefetch): wake at once.
 * -EAGAIN (events pending) is retried, from past the pages the kernel
 * filled before it, until a second passes without progress, while the
 * servicing threads read the events.  Should the rest of the range leave
 * r meanwhile (unmapped, moved), they return 0, as for -ENOENT. */
int uffd_region_copy(struct uffd_region *r, void *dst, const void *src, size_t len);
int uffd_region_copy_wp(struct uffd_region *r, void *dst, const void *src, size_t len);
int uffd_region_zero(struct uffd_region *r, void *dst, size_t len);

/* Latency histogram: bucket i counts services that took [2^i, 2^(i+1)) ns
 * from message read to wake (bucket 0 also counts < 1 ns). */
#define UFFD_HIST_BUCKETS 32

struct uffd_handler_stats {
	uint64_t faults[3];		/* by enum uffd_fault_kind */
	uint64_t events[5];		/* fork, remap, remove, unmap, unknown */
	uint64_t messages;		/* messages read */
	uint64_t reads;			/* read(2) calls that returned messages */
	uint64_t coalesced;		/* duplicate faults merged in a batch */
	uint64_t pages_resolved;	/* pages filled, continued or unprotected */
	uint64_t wakes;			/* UFFDIO_WAKE calls made */
	uint64_t retries;		/* -EAGAIN: retried after events */
	uint64_t eexist;		/* resolved by someone else */
	uint64_t enoent;		/* dropped: the range went away */
	uint64_t unknown_addr;		/* faults outside every region */
	uint64_t callback_errors;	/* callbacks that returned < 0 */
	uint64_t dead_contexts;		/* userfaultfds whose process is gone */
	uint64_t contexts;		/* userfaultfds serviced (1 + forks) */
	uint64_t latency_ns_sum;
	uint64_t latency_ns_max;
	uint64_t hist[UFFD_HIST_BUCKETS];
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};

/* Sum of every thread's counters so far (consistent per counter).  A fill
 * wakes the faulting thread before its counters are added: read them once
 * the work is done, and allow them a moment to catch up with a thread that
 * was just woken. */
int uffd_handler_stats(struct uffd_handler *h, struct uffd_handler_stats *s);
/* Upper bound (ns) of the bucket holding the q-quantile (0 < q <= 1). */
uint64_t uffd_stats_quantile_ns(const struct uffd_handler_stats *s, double q);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
