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
 * after which the event is read first.
 *
 * Forked children: a child's address space starts as a copy of its
 * parent's state at the fork (spans, removed pages, and the pages the
 * parent had installed - the child inherited those), and is served by a
 * thread of its own (the runtime's, for a child of a served process; a
 * handler of the engine's, for a child whose fd a client kept).  The
 * engine's thread fills children in the background too - before its own
 * root, since a child cannot serve itself - under the child's lock, the
 * one lock there is between two threads of one client.  Nobody lets go
 * of a live child before every page of it is in: once its userfaultfd is
 * closed, the kernel would hand its missing pages out as zeros.  A
 * child's FORK is reported with the child's fd (the note callback), so
 * that a client can keep that fd and serve the child itself if the
 * server dies.
 *
 * A client's fallback, once its engine serves, calls neither malloc()
 * nor free() - in no fault or event callback, in no step of its thread.
 * glibc's fork() holds the allocator's locks (and stdio's and
 * pthread_atfork's) across the system call, which with EVENT_FORK waits
 * until its FORK message is read; there the one thread that reads the
 * client's userfaultfd is the engine's, and a child's thread holds locks
 * that the engine's thread waits for (the child's, and its reading).  A
 * thread of either kind that waited for the allocator while the client
 * forked would stop that fork, and the client's faults and exit(), for
 * ever.  So the address spaces' state - spans, page bitmaps, the
 * children's - lives in mappings of its own (util/mmalloc.h), the spans
 * are edited in place, and a fallback's source is checked (an image's
 * first read allocates) and its threads are started by another thread of
 * the client's while the engine's reads (serve_engine_start()'s three
 * steps, serve_engine_apply_unread()).  A server's engines
 * run the same code for other processes, whose forks hold their own
 * allocators' locks: there the rule is kept without being needed (and
 * the first read of the server's image allocates, as it may).
 *
 * A shared page cache (cache.h) changes how a page goes in, not what:
 * the same source page, CONTINUEd from the cache instead of copied.
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

#include "cache.h"
#include "proto.h"
#include "source.h"
#include "util/bitmap.h"
#include "wset.h"

/* Pages read from the working set at once (with the shared cache: the
 * pieces its engines claim). */
#define WS_PIECE		64

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
	uint32_t id;			/* 0 the root, then 1, 2, ... as forked */
	struct serve_span *spans;
	int nspans, cap;
	struct bitmap *removed;		/* per region (empty until a REMOVE) */
	struct serve_rdata *rdata;	/* per region */
	const struct uffd *u;		/* its userfaultfd (a child's: the
					   runtime's copy, or own_u) */
	struct serve_mm *last_child;	/* being created by a FORK */
	struct serve_mm *next;
	pthread_mutex_t lock;		/* spans, removed: between the child's
					   thread and the engine's fill */
	struct bitmap *installed;	/* per region: present (or zapped
					   since, which makes it zero) */
	struct uffd own_u;		/* a kept fd (a client's standby) */
	struct uffd_handler *h;		/* serving own_u (a client's fallback) */
	struct uffd_handler *reader;	/* the handler whose thread reads u's
					   messages (NULL: none does) */
	int fill_region;		/* the background fill's cursor */
	uint64_t fill_page;
	bool fill_incomplete;		/* a page could not be put in: the
					   root stays registered, a child is
					   filled again */
	/* children only */
	int dead;			/* atomic: the child's process is gone */
	bool complete;			/* every page in: nothing left to serve */
};

struct serve_engine_opts {
	const struct serve_source *src;	/* NULL: every missing page is
					   poisoned (nothing to read) */
	const struct serve_wset *ws;	/* prefetch this working set */
	/* The regions are MAP_PRIVATE mappings of a shared page cache
	 * (cache.h) at their source offsets: registered for MINOR faults
	 * too, and never taken for zero because the engine put a page there
	 * once (a private mapping's page zapped without a REMOVE - reclaim -
	 * comes back from the cache).  With cache (the server's), pages go
	 * in by UFFDIO_CONTINUE after they were put in the cache; without
	 * (a client's fallback), by UFFDIO_COPY, which makes a private page
	 * whatever the cache holds. */
	bool shared;
	struct serve_cache *cache;
	bool fill;			/* then the rest, in the background */
	bool record;			/* remember the order of demand faults */
	unsigned spin_us;		/* poll without sleeping this long after
					   the last message (0: the runtime's) */
	/* Address-space changes, for the client (a server's notes): the
	 * root's, and a child's (ev->mm); a FORK comes with the child's
	 * userfaultfd in fd (the callee passes it on; the engine keeps its
	 * own), other events with -1.  Called from the thread serving that
	 * address space: the root's and children's concurrently. */
	void (*note)(void *arg, const struct serve_event *ev, int fd);
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
	uint32_t next_mm_id;		/* atomic */
	bool fill_root;			/* fill the root in the background */
	bool fill_children;		/* ... and the children */
	bool finishing;			/* serve_engine_finish(): no yielding */
	struct bitmap *installed;	/* per region: filled in the root (then
					   present, or removed since) */
	/* background work, driven by the engine's thread only */
	uint64_t ws_next;		/* next working-set entry */
	uint64_t piece_first, piece_n;	/* entries in buf */
	uint64_t advised;		/* WILLNEED given up to this offset */
	bool ws_done;
	bool ws_counted;		/* in *o.ws_active */
	bool fill_done, done;		/* the root's cursor: root->fill_* */
	uint8_t *buf;			/* a piece of the working set */
	uint64_t last_activity_ns;
	uint64_t last_fault_ns;		/* atomic: the root's latest fault */
	/* record */
	uint64_t *rec;
	uint64_t nrec, rec_cap;
	struct bitmap rec_seen;
	struct serve_engine_counts counts;
	int dead;			/* atomic: the root's process is gone */
	bool fatal_called;
	bool inexact;			/* standby: a change was missed */
};

/*
 * Set up an engine for regions m[0..n) (checked by
 * uffd__serve_check_mappings(): sorted, page-aligned, inside the source)
 * with one span per region.  0 or -ENOMEM.  Nothing is registered yet.
 */
int serve_engine_init(struct serve_engine *e, const struct serve_mapping *m, int n,
		      const struct serve_engine_opts *o);
/*
 * Apply a change reported by a server to a client's standby engine,
 * before it starts: of the root's or a child's address space, or a FORK
 * with the child's userfaultfd in fd (taken over: closed by release, or
 * here on failure).  0, or -ENOENT (an address space never heard of:
 * the engine is inexact from now on, see serve_engine_inexact()),
 * -ENOMEM (the same).
 */
int serve_engine_apply(struct serve_engine *e, const struct serve_event *ev, int fd);
/*
 * A message of the root's userfaultfd that nobody served (a client's,
 * read after its server died and before its engine starts): an event is
 * applied as the server's note of it would have been - a FORK's child is
 * kept with its fd (taken over), as a server's - and a fault is left for
 * serve_engine_start_root()'s wake to raise again.  Allocates nothing.
 * Returns like serve_engine_apply().
 */
int serve_engine_apply_unread(struct serve_engine *e, const struct uffd_event *ev);
/* A standby engine missed a change: it must not serve from the source. */
void serve_engine_set_inexact(struct serve_engine *e);
bool serve_engine_inexact(const struct serve_engine *e);
/* Close the fds of standby children whose process is gone (they hold
 * nothing up); with all, of every child (the server finished them). */
void serve_engine_drop_children(struct serve_engine *e, bool all);
/* Standby children whose fd is kept, alive or not. */
int serve_engine_children(const struct serve_engine *e);
/*
 * Finish the restore before letting go: fill every live child, and with
 * root the root too, whatever the options said (no waiting for other
 * clients' working sets).  serve_engine_step() says ENGINE_DONE once they
 * are in (with root: and the root unregistered).
 */
void serve_engine_finish(struct serve_engine *e, bool root);
/* The root's process is gone (its pidfd said so): only children remain. */
void serve_engine_root_gone(struct serve_engine *e);
/*
 * Start serving the userfaultfd u (taken over: closed by release): a
 * runtime handler in UFFD_WAIT_EPOLL mode, and every span registered for
 * MISSING faults (the kernel accepts a range registered again on the same
 * userfaultfd).  wake_all: wake every span afterwards, for faults read by
 * a server that died before answering them.  Standby children whose fd
 * is kept get a handler (a thread) of their own, woken the same way.
 * 0, or -errno with in *bad the region of the span that failed (the
 * registration's error: -EINVAL nothing mapped there, -EBUSY registered
 * on another userfaultfd), or -1 when no region is at fault (the
 * handler could not be made or started: -ENOMEM, -EAGAIN).
 *
 * The same in three steps, for a client's fallback, whose thread reads
 * the client's userfaultfd and so must not wait for what a fork of the
 * client holds (see the top of this file) - starting a thread allocates:
 * serve_engine_prepare() makes the handler and starts its thread (the
 * starter of forked children's threads), registering and reading
 * nothing, in a thread that may wait for a fork; serve_engine_start_root()
 * registers the root's spans and wakes them, allocating nothing; and
 * serve_engine_start_children() starts the kept children's handlers, in a
 * thread that may wait for a fork, while the engine's thread serves the
 * root (serve_engine_dispatch(): no background work touches a child
 * until they are started).  u is taken over by prepare, failed or not.
 */
int serve_engine_start(struct serve_engine *e, const struct uffd *u, bool wake_all, int *bad);
int serve_engine_prepare(struct serve_engine *e, const struct uffd *u);
int serve_engine_start_root(struct serve_engine *e, bool wake_all, int *bad);
void serve_engine_start_children(struct serve_engine *e, bool wake_all);
/* Service the queued messages of the root (and nothing else): how many,
 * or -errno. */
int serve_engine_dispatch(struct serve_engine *e);

enum {
	ENGINE_IDLE = 0,	/* nothing to do until the fd is readable */
	ENGINE_BUSY = 1,	/* call again at once */
	ENGINE_DONE = 2,	/* every page is in, every child's too (or
				   gone): the root's regions were
				   unregistered, release it */
	ENGINE_YIELD = 4,	/* the fill waits for other clients' working
				   sets, or for a child's events: call
				   again within a millisecond */
};
/* One step (see the top of this file): ENGINE_*, or -ESRCH (the process
 * is gone, and no child of it is left to serve), -EIO (a page could not
 * be read and could not be poisoned). */
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
 * Tests only (as util/failalloc.h's hook): fn is called by every engine of
 * this process where a test holds one to make a race happen, in the
 * thread at hand - SERVE_HOOK_STARTED at the end of serve_engine_start_root()
 * (mm: the root), SERVE_HOOK_FORK at the start of each FORK callback,
 * before the child's state is made (mm: the parent).  NULL, as the
 * library runs: none, for one load at each of those points.
 */
enum serve_hook_point { SERVE_HOOK_STARTED, SERVE_HOOK_FORK };
typedef void (*serve_engine_hook_fn)(struct serve_engine *e, enum serve_hook_point where,
				     struct serve_mm *mm);
void uffd__serve_engine_hook(serve_engine_hook_fn fn);

/*
 * Stop and free everything.  The client's memory is never unregistered
 * here (ENGINE_DONE did that when it was right); the root fd is closed.
 * Forked children still alive lose this server (their fds close here):
 * finish them first (serve_engine_finish()) unless someone else holds
 * their fds.
 */
void serve_engine_release(struct serve_engine *e);

#endif
