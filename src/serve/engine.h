/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Serving one process's memory from the source: the engine that the
 * server runs for each client, and that a client runs for itself when
 * the server dies (the same code, so a fallback restores exactly what
 * the server would have).
 *
 * One thread drives it (serve_engine_step() in a loop): it services every
 * queued fault and event first (the runtime in UFFD_WAIT_EPOLL mode), and
 * only when none is queued does a slice of background work - the working
 * set, then the rest in address order - so a demand fault waits for at
 * most one slice.  Because the faults, the events and the background work
 * of the client's own address space all happen in that one thread, the
 * state needs no lock: an madvise(DONTNEED) whose REMOVE was read marks
 * its pages before any later background copy looks at them, and one that
 * was not read yet makes that copy fail with EAGAIN (the kernel's rule),
 * after which the event is read first.  A forked child's address space
 * is served by the runtime's thread for it, on demand, with a copy of the
 * parent's state taken at the fork.
 *
 * Addresses: a client region is a run of the source's bytes mapped at an
 * address.  mremap moves and munmap cuts the runtime's regions; the
 * engine mirrors that in a per-address-space table of spans (address
 * range -> region and page), and madvise(DONTNEED) marks the region's
 * pages removed: zero from then on, as the kernel makes them for memory
 * nobody handles.
 */
#ifndef LIBUFFD_SERVE_ENGINE_H
#define LIBUFFD_SERVE_ENGINE_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uffd/handler.h>

#include "proto.h"
#include "source.h"
#include "util/bitmap.h"
#include "wset.h"

/* One region as the client described it (sorted by address). */
struct serve_region {
	uint64_t addr, len, offset;
	uint64_t pages;
};

/* [start, end) holds pages [page, ...) of region `region`. */
struct serve_span {
	uint64_t start, end;
	int region;
	uint64_t page;
};

struct serve_engine;
struct serve_mm;

/* The runtime region's data: which address space and which region. */
struct serve_rdata {
	struct serve_mm *mm;
	int index;
};

/* One address space: the client's, or a forked child's. */
struct serve_mm {
	struct serve_engine *e;
	bool root;
	struct serve_span *spans;
	int nspans, cap;
	struct bitmap *removed;		/* per region (empty until a REMOVE) */
	struct serve_rdata *rdata;	/* per region */
	const struct uffd *u;		/* its userfaultfd (a child's: the
					   runtime's copy) */
	struct serve_mm *last_child;	/* being created by a FORK */
	struct serve_mm *next;
};

struct serve_engine_opts {
	const struct serve_source *src;	/* NULL: every missing page is
					   poisoned (nothing to read) */
	const struct serve_wset *ws;	/* prefetch this working set */
	bool fill;			/* then the rest, in the background */
	bool record;			/* remember the order of demand faults */
	unsigned spin_us;		/* poll without sleeping this long after
					   the last message (0: the runtime's) */
	/* Root address space changes, for the client (a server's notes). */
	void (*note)(void *arg, const struct serve_event *ev);
	void *note_arg;
	/* Clients whose working set is not in yet, shared by the engines of
	 * one server (atomic; NULL: none): the background fill of every
	 * client waits while it is not zero, so a working set never queues
	 * behind another client's fill. */
	int *ws_active;
	/* A page could not be read and the fd cannot poison: the caller
	 * ends the client (SIGBUS) rather than serve it wrong data. */
	void (*fatal)(void *arg);
	void *fatal_arg;
};

/* What the counters of an engine hold (atomics). */
struct serve_engine_counts {
	uint64_t faults, prefetched, filled, zero, errors;
};

struct serve_engine {
	struct serve_engine_opts o;
	struct uffd u;			/* the root userfaultfd */
	struct uffd_handler *h;
	bool started;
	int nregions;
	struct serve_region *regions;
	int *by_offset;			/* region indices sorted by offset */
	struct serve_mm *root;
	pthread_mutex_t mms_lock;	/* the list of address spaces */
	struct serve_mm *mms;
	struct bitmap *installed;	/* per region: filled in the root (then
					   present, or removed since) */
	/* background work, driven by the engine's thread only */
	uint64_t ws_next;		/* next working-set entry */
	uint64_t piece_first, piece_n;	/* entries in buf */
	uint64_t advised;		/* WILLNEED given up to this offset */
	bool ws_done;
	bool ws_counted;		/* in *o.ws_active */
	int fill_region;
	uint64_t fill_page;
	bool fill_done, done;
	bool fill_incomplete;		/* a page could not be filled: never
					   unregister, serve on demand */
	uint8_t *buf;			/* a piece of the working set */
	uint64_t last_activity_ns;
	/* record */
	uint64_t *rec;
	uint64_t nrec, rec_cap;
	struct bitmap rec_seen;
	struct serve_engine_counts counts;
	int dead;			/* atomic: the root's process is gone */
	bool fatal_called;
};

/*
 * Set up an engine for regions m[0..n) (checked by
 * uffd__serve_check_mappings(): sorted, page-aligned, inside the source)
 * with one span per region.  0 or -ENOMEM.  Nothing is registered yet.
 */
int serve_engine_init(struct serve_engine *e, const struct serve_mapping *m, int n,
		      const struct serve_engine_opts *o);
/*
 * Apply a change of the root address space reported by a server (a
 * client's standby engine, before it starts).
 */
void serve_engine_apply(struct serve_engine *e, const struct serve_event *ev);
/*
 * Start serving the userfaultfd u (taken over: closed by release): a
 * runtime handler in UFFD_WAIT_EPOLL mode, and every span registered for
 * MISSING faults (the kernel accepts a range registered again on the same
 * userfaultfd).  wake_all: wake every span afterwards, for faults read by
 * a server that died before answering them.  0, or -errno with the span
 * that failed in *bad (the registration's error: -EINVAL nothing mapped
 * there, -EBUSY registered on another userfaultfd).
 */
int serve_engine_start(struct serve_engine *e, const struct uffd *u, bool wake_all, int *bad);

enum {
	ENGINE_IDLE = 0,	/* nothing to do until the fd is readable */
	ENGINE_BUSY = 1,	/* call again at once */
	ENGINE_DONE = 2,	/* every page is in, no child is left: the
				   regions were unregistered, release it */
	ENGINE_WAIT_CHILD = 3,	/* filled, but a forked child is still
				   served: call again within 500 ms */
	ENGINE_YIELD = 4,	/* the fill waits for other clients' working
				   sets: call again within a millisecond */
};
/* One step (see the top of this file): ENGINE_*, or -ESRCH (the process
 * is gone), -EIO (a page could not be read and could not be poisoned). */
int serve_engine_step(struct serve_engine *e);
/*
 * Step until there is nothing to do, then wait for the userfaultfd or one
 * of extra[0..nextra) (POLLIN) - spinning first for spin_us after the last
 * message.  Returns like serve_engine_step() when it is not ENGINE_IDLE,
 * or ENGINE_IDLE when one of the extra fds is ready (their revents set).
 */
int serve_engine_run(struct serve_engine *e, struct pollfd *extra, int nextra);

/* The counters (summed over the threads that serve it). */
void serve_engine_counts(const struct serve_engine *e, struct serve_engine_counts *c);

/*
 * Stop and free everything.  The client's memory is never unregistered
 * here (ENGINE_DONE did that when it was right); the root fd is closed.
 * Forked children still alive lose their server (their fds close).
 */
void serve_engine_release(struct serve_engine *e);

#endif
