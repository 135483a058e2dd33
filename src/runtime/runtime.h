/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The runtime's internal structures, shared by its files. */
#ifndef LIBUFFD_RUNTIME_H
#define LIBUFFD_RUNTIME_H

#include <pthread.h>
#include <uffd/handler.h>

#include "events_lock.h"

#include "util/stats.h"

struct handler_ctx;

struct uffd_region {
	struct handler_ctx *ctx;
	uint64_t start, len;
	size_t page_size;
	unsigned modes;
	struct uffd_region_ops ops;
	void *data;
};

/* Regions of one userfaultfd, sorted by start, never overlapping. */
struct region_table {
	pthread_rwlock_t lock;
	struct uffd_region **v;
	int n, cap;
};

int region_table_init(struct region_table *t);
void region_table_destroy(struct region_table *t);	/* frees the regions */
/* Insert; -EEXIST if it overlaps.  Caller holds the write lock. */
int region_table_insert(struct region_table *t, struct uffd_region *r);
/* Detach r from the table (not freed).  Caller holds the write lock. */
void region_table_remove(struct region_table *t, struct uffd_region *r);
/* The region containing addr or NULL.  Caller holds a lock. */
struct uffd_region *region_table_lookup(struct region_table *t, uint64_t addr);
/* Apply REMAP/UNMAP to the table, calling ops->event first. Write lock. */
void region_table_remap(struct region_table *t, uint64_t from, uint64_t to,
			uint64_t len, const struct uffd_event *ev);
void region_table_unmap(struct region_table *t, uint64_t start, uint64_t end,
			const struct uffd_event *ev);
/* Call ops->event of every region overlapping [start, end).  Any lock. */
void region_table_notify(struct region_table *t, uint64_t start, uint64_t end,
			 const struct uffd_event *ev);

/* One userfaultfd being serviced: the handler's own, or a forked child's. */
struct handler_ctx {
	struct uffd_handler *h;
	struct uffd *u;
	struct uffd child_uffd;		/* u points here for FORK children */
	struct region_table table;
	pthread_mutex_t read_lock;	/* read + event processing, see handler.c */
	uint64_t read_seq;		/* batches of messages read (atomic) */
	int dead;			/* atomic: the process is gone */
	bool is_child;
	bool awaits_thread;		/* a child the starter has not started a
					   thread for yet (handler's lock) */
	struct handler_ctx *next;
	/* In-thread mode (inthread.c): the faults of this userfaultfd are
	 * resolved in the faulting threads, from regions published to them. */
	bool in_thread;
	int it_stopped;			/* atomic: stopped, faults retry */
	uint64_t ev_started, ev_done;	/* atomic: reads begun, applied */
	struct handler_ctx *it_next;	/* attached in-thread contexts */
};

/* Counters: one set per servicing thread, bumped with STAT_ADD. */

/* A few address runs, merged as they are added (a batch's bookkeeping). */
#define RANGE_SET_MAX 64
struct range_set {
	int n;
	struct { uint64_t start, end; } r[RANGE_SET_MAX];
};
/* Add [start, end), merging with a touching run; false when full. */
bool range_set_add(struct range_set *s, uint64_t start, uint64_t end);
bool range_set_contains(const struct range_set *s, uint64_t addr);

/* A batch being serviced: what the resolve helpers need to defer wakes. */
struct batch {
	struct handler_ctx *ctx;
	struct uffd_handler_stats *st;
	bool dontwake;			/* more than one fault: wake at the end */
	struct range_set wake;		/* filled with DONTWAKE, to wake */
	struct range_set resolved;	/* filled in this batch: later faults
					   there need no callback */
};

void batch_add_wake(struct batch *b, uint64_t start, uint64_t end);
void batch_flush_wakes(struct batch *b);

/* The process behind ctx is gone: its threads stop (counted once). */
void ctx_mark_dead(struct handler_ctx *ctx, struct uffd_handler_stats *st);

/* Default resolution of a fault the callback did not resolve. */
int fault_resolve_default(struct uffd_fault *f, bool failed);
/* Whether that default, for a callback that failed, poisons the page (a
 * MISSING or MINOR fault, with UFFD_FEAT_POISON). */
bool fault_can_poison(const struct uffd_fault *f);

/* Where fills outside a callback (uffd_region_*) are counted. */
struct uffd_handler_stats *handler_extra_stats(struct handler_ctx *ctx);

/* The region's callback for f's kind (UFFD_FAULT_RESOLVED if none).
 * Inline: both fault paths (handler.c, inthread.c) call it per fault. */
static inline int run_callback(struct uffd_fault *f)
{
	const struct uffd_region_ops *ops = &f->region->ops;
	int (*cb)(struct uffd_fault *) =
		f->kind == UFFD_FAULT_MISSING ? ops->missing :
		f->kind == UFFD_FAULT_WP ? ops->wp : ops->minor;

	return cb ? cb(f) : UFFD_FAULT_RESOLVED;
}

/* One service's latency, into the histogram of st. */
static inline void record_latency(struct uffd_handler_stats *st, uint64_t ns)
{
	int bucket = ns ? 63 - __builtin_clzll(ns) : 0;

	if (bucket >= UFFD_HIST_BUCKETS)
		bucket = UFFD_HIST_BUCKETS - 1;
	STAT_ADD(st, hist[bucket], 1);
	STAT_ADD(st, latency_ns_sum, ns);
	if (ns > __atomic_load_n(&st->latency_ns_max, __ATOMIC_RELAXED))
		__atomic_store_n(&st->latency_ns_max, ns, __ATOMIC_RELAXED);
}

/*
 * In-thread mode (inthread.c).  attach: the checks of uffd_handler_new()
 * (a thread blocking SIGBUS: -EBUSY), the SIGBUS handler installed (first
 * context) and ctx published.  detach: unpublished, callbacks waited out,
 * the handler restored with the last context.  republish: after ctx's
 * table changed; the regions that left are remembered as strays (a fault
 * raised before they were unregistered may still be delivered).  0 or
 * -errno (-ENOMEM: the old table stays).  Never with a table lock held.
 */
int uffd__inthread_attach(struct handler_ctx *ctx);
void uffd__inthread_detach(struct handler_ctx *ctx);
int uffd__inthread_republish(void);
void uffd__inthread_stray(uint64_t start, uint64_t end);
/* Whether [start, start+len) holds the calling thread's stack. */
bool uffd__inthread_holds_my_stack(uint64_t start, uint64_t len);
/* -EBUSY when the SIGBUS action is no longer libuffd's, else 0. */
int uffd__inthread_check_action(void);

#endif
