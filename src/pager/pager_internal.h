/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the pager's files share: the life of a page, a map, the pager, and
 * the calls one file makes into another (see include/uffd/pager.h for the
 * user's view).
 *
 * Every page of a map has a state, changed only under the pager's lock:
 *
 *   EMPTY --fill--> ACTIVE --deactivate--> INACTIVE --evict--> EMPTY
 *                     ^                        |
 *                     +------- reactivate -----+   (a touch: a cheap fault)
 *
 * Work that leaves the lock (I/O, ioctls, copies) first sets the page BUSY;
 * whoever meets a BUSY page waits for the pager's "changed" condition (a
 * fault) or passes it by (eviction).  So no two threads ever work on one
 * page, and a write blocked on write-protect is let through only once the
 * page is ACTIVE again: write-back never copies a page that is changing.
 *
 * An ACTIVE page is mapped (write-protected until its first write marks it
 * DIRTY); an INACTIVE page lives in the map's shadow, a private mapping of
 * the same length at which each page keeps its offset, so there is no slot
 * allocator and a page is found in both places by its index.
 *
 * The files, in the order a page meets them:
 *
 *   pager.c      the API: a pager and its threads, maps made and unmade
 *   fault.c      MISSING and write-protect faults, in a servicing thread
 *                or (in-thread mode) in the faulting thread's SIGBUS handler
 *   fill.c       reading pages from the store and mapping them
 *   readahead.c  sequential streams, and the threads that read ahead of them
 *   batch.c      faults' reads gathered, many in flight at once
 *   bounce.c     the per-thread buffers reads and write-backs go through,
 *                and those in-thread faults read into
 *   account.c    the buffer's accounts: every count a page's move changes,
 *                and room for a fill
 *   queue.c      the inactive queue, oldest first
 *   evict.c      the CLOCK hand, deactivation, eviction, and zap batching
 *   writeback.c  dirty pages to the store: eviction's runs, and the ranges
 *                of flush, evict and unmap
 *   zapped.c     pages the program zapped or unmapped itself, found where
 *                the pager meets them (a fault, a copy out of the map)
 *   check.c      the invariants of all the above, for tests to assert
 */
#ifndef LIBUFFD_PAGER_INTERNAL_H
#define LIBUFFD_PAGER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <uffd/handler.h>
#include <uffd/pager.h>
#include <uffd/uffd.h>

#include "util/stats.h"

enum page_state {
	P_EMPTY = 0,
	P_ACTIVE,
	P_INACTIVE,
	P_BUSY,		/* a thread works on it outside the lock */
	P_BAD,		/* the store could not read it: poisoned */
};

/* page flags */
#define PF_DIRTY	(1u << 0)
#define PF_PINNED	(1u << 1)
/* Turns of the clock hand a mapped page is passed over: one after it is
 * read in, three after a touch brought it back from the inactive list
 * (a page used again is likelier to be used again: zipf-like skew). */
#define PF_REF_SHIFT	3
#define PF_REF		(3u << PF_REF_SHIFT)
#define REF_FILLED	1u
#define REF_REUSED	3u
/* Read ahead, not asked for: it goes on the inactive queue as it is
 * mapped, and when its turn comes it is dropped, clean and unwritten,
 * rather than deactivated (use-once, as the kernel treats read-ahead): a
 * stream costs no copies to the shadow.  The hand leaves it alone. */
#define PF_STREAM	(1u << 5)
/* check.c's mark, set and cleared while it holds the lock. */
#define PF_CHECKED	(1u << 6)
/* Read ahead into the shadow, not mapped yet (a stream's mark): the touch
 * that maps it makes it read ahead like the others (PF_STREAM), not a
 * page used again. */
#define PF_PARKED	(1u << 7)

#define BATCH_PAGES	64		/* pages deactivated or evicted per round */
#define ZAP_MAX		64		/* ranges zapped with one TLB flush */
#define RA_STREAMS	16		/* sequential streams followed per map */
#define READERS		4		/* read-ahead threads: some read while
					   others map what they read */

struct zap {
	struct iovec v[ZAP_MAX];
	int n;
};

struct pmap {
	struct uffd_pager *p;
	char *addr, *shadow;
	size_t len, psize, npages;
	uint64_t off;			/* of addr in the store */
	int64_t store_size;		/* at map time; < 0 unknown */
	struct uffd_store *store;
	unsigned flags;
	bool writable;
	struct uffd_region *region;
	uint8_t *state, *pflags;
	uint8_t *gen;			/* deactivations, mod 256 */
	uint32_t *dropped_seq;		/* the handler's read count when the
					   page was last evicted (see
					   stale_fault) */
	struct {			/* sequential streams (pages) */
		size_t next;		/* a fault here continues it */
		size_t win;		/* its last synchronous window */
		size_t async;		/* read ahead in groups from here
					   (0: not yet) */
		size_t end;		/* and posted up to here */
	} ra[RA_STREAMS];
	unsigned ra_victim;
	int users;			/* threads working on it unlocked */
	bool dying;
	int error;			/* first write-back error */
	struct pmap *next;
};

/* An inactive-queue entry (or a read-ahead page's: drop); stale once the
 * page was reactivated, written or refilled (gen, state). */
struct qent {
	struct pmap *m;
	size_t idx;
	uint8_t gen;
	bool drop;
};

struct ra_req {
	struct pmap *m;
	size_t idx, n;
	size_t mark;		/* its first page, parked (readahead.c) */
};

/* A fault's read gathered with others (batch.c): pages [idx, idx+n)
 * claimed BUSY, for the thread that faulted on fault_idx. */
struct fill_job {
	struct pmap *m;
	size_t idx, n, fault_idx;
	bool write;
};

#define SIGNAL_BOUNCES	32		/* in-thread faults reading at once
					   into a buffer of their own (one bit
					   each of sig_bounce_busy) */

#define JOBS_MAX	128		/* faults' reads queued */
#define JOB_BATCH	32		/* of them, in flight at once */
#define JOB_READERS	2		/* servicing threads reading them */

struct uffd_pager {
	struct uffd u;
	struct uffd_handler *h;
	struct uffd_pager_opts o;
	pthread_mutex_t lock;
	pthread_cond_t changed;		/* a page left BUSY, a map went */
	pthread_cond_t work;		/* the evictors */
	pthread_cond_t read_work;	/* the readers: read-ahead, faults' reads */
	struct pmap *maps;
	size_t resident, resident_peak, inactive, pinned;	/* bytes */
	size_t stream_bytes;		/* mapped pages marked PF_STREAM */
	/* The hand skips its turn when the last one found nothing to take
	 * and took no reference away, until a page may have become its to
	 * take (a page mapped without PF_STREAM: eligible_gen moves). */
	uint64_t eligible_gen, idle_gen;
	bool hand_idle;
	size_t high, low;				/* bytes */
	size_t min_evict;		/* pages evicted at least per zap: 16,
					   or 1/64 of a small buffer */
	/* inactive queue: a growable ring, with room promised to pages
	 * being deactivated (qreserved) */
	struct qent *q;
	size_t qhead, qlen, qcap, qreserved;
	/* clock hand */
	struct pmap *hand_map;
	size_t hand_idx;
	/* read-ahead requests: waiting, and the one each reader reads
	 * (ra_cur[i].m NULL: none) */
	struct ra_req ra[16];
	int nra;
	struct ra_req ra_cur[READERS];
	int readers_started;
	/* faults' reads queued, and the servicing threads reading them */
	struct fill_job jobs[JOBS_MAX];
	int njobs, job_readers;
	pthread_t *threads;
	int nthreads;
	bool stopping;
	pthread_key_t bounce_key;
	bool bounce_key_made;
	/* In-thread mode: the buffers faults read into from the SIGBUS
	 * handler, where nothing may be allocated (bounce.c). */
	char *sig_bounce;
	size_t sig_bounce_len;		/* each */
	uint32_t sig_bounce_busy;	/* atomic: a bit per buffer taken */
	int pidfd;			/* ours, for process_madvise */
	int mem_fd, pagemap_fd;		/* /proc/self/mem and pagemap (zapped.c) */
	struct zap shadow_zap;		/* reactivated pages' shadows to free
					   (at most ZAP_MAX runs, not counted
					   in the buffer) */
	struct uffd_pager_stats st;
};


/* A run of pages of one map, worked on together (deactivation, eviction). */
struct run {
	struct pmap *m;
	size_t idx, n;
	bool dirty;		/* some page of it */
	int err;
	bool drop;		/* clean read-ahead: evict, no shadow copy */
	uint64_t gone;		/* pages found gone from the map (bit k:
				   idx+k; zapped.c) */
	uint64_t not_ours;	/* of those, pages not in it any more */
};
/* A run's pages are bits of those masks, and of protect_ours' (zapped.c):
 * runs are cut at BATCH_PAGES. */
_Static_assert(BATCH_PAGES <= 64, "a run's pages are the bits of a uint64_t");

static inline size_t page_index(const struct pmap *m, const void *addr)
{
	return (size_t)((const char *)addr - m->addr) / m->psize;
}

static inline char *page_addr(const struct pmap *m, size_t idx)
{
	return m->addr + idx * m->psize;
}

static inline char *shadow_addr(const struct pmap *m, size_t idx)
{
	return m->shadow + idx * m->psize;
}

static inline uint64_t store_off(const struct pmap *m, size_t idx)
{
	return m->off + (uint64_t)idx * m->psize;
}

/*
 * Bytes of pages [idx, idx+n) within the store's size at map time: reads
 * and write-backs stop there, so what a map shows of its store is what it
 * writes back, and a map never grows its store.
 */
static inline size_t clipped_len(const struct pmap *m, size_t idx, size_t n)
{
	uint64_t off = store_off(m, idx);
	size_t len = n * m->psize;

	if (m->store_size < 0)
		return len;
	if (off >= (uint64_t)m->store_size)
		return 0;
	return len < (uint64_t)m->store_size - off ? len : (uint64_t)m->store_size - off;
}

static inline void set_state(struct pmap *m, size_t idx, size_t n, enum page_state s)
{
	memset(m->state + idx, s, n);
}

/*
 * The inactive list is kept at half of what is resident (as the kernel
 * balances its lists): long enough for a page to be touched before its
 * turn to go comes, short enough that the pages in use stay mapped.
 */
static inline size_t inactive_target(const struct uffd_pager *p)
{
	return p->resident / 2;
}

/* Over half full and the inactive list short: the evictor ages pages. */
static inline bool aging(const struct uffd_pager *p)
{
	return p->resident > p->o.buffer_bytes / 2 && p->inactive < inactive_target(p);
}

static inline void timed_wait(pthread_cond_t *c, pthread_mutex_t *lock, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(c, lock, &ts);
}

/* The calls between the pager's files. */

/* account.c: every count a page's move changes (lock held) */
size_t uffd__claim_empty(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n);
void uffd__unclaim(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		   enum page_state to);
void uffd__page_filled(struct uffd_pager *p, struct pmap *m, size_t idx, bool stream);
void uffd__page_deactivated(struct uffd_pager *p, struct pmap *m, size_t idx);
void uffd__page_parked(struct uffd_pager *p, struct pmap *m, size_t idx);
void uffd__page_reactivated(struct uffd_pager *p, struct pmap *m, size_t idx, bool write);
void uffd__page_evicted(struct uffd_pager *p, struct pmap *m, size_t idx,
			enum page_state was, uint32_t seq);
void uffd__page_unbusy(struct uffd_pager *p, struct pmap *m, size_t idx,
		       enum page_state was);
void uffd__page_set_dirty(struct uffd_pager *p, struct pmap *m, size_t idx);
void uffd__page_clear_dirty(struct uffd_pager *p, struct pmap *m, size_t idx);
void uffd__page_pin(struct uffd_pager *p, struct pmap *m, size_t idx);
void uffd__map_forget_pages(struct uffd_pager *p, struct pmap *m);
void uffd__map_unuse(struct uffd_pager *p, struct pmap *m);
/* (without the lock: calls on_error) */
void uffd__report_error(struct pmap *m, size_t idx, size_t n, int err, bool write);

/* queue.c (lock held, but init) */
int uffd__queue_init(struct uffd_pager *p);
size_t uffd__queue_reserve(struct uffd_pager *p, size_t n);
void uffd__queue_unreserve(struct uffd_pager *p, size_t n);
void uffd__queue_push_reserved(struct uffd_pager *p, struct pmap *m, size_t idx, bool drop);
int uffd__queue_push(struct uffd_pager *p, struct pmap *m, size_t idx, bool drop);
bool uffd__queue_pop(struct uffd_pager *p, struct qent *e);
void uffd__queue_forget(struct uffd_pager *p, struct pmap *m);

/* evict.c */
void uffd__zap_flush(struct uffd_pager *p, struct zap *z);
void uffd__zap_add(struct uffd_pager *p, struct zap *z, void *addr, size_t len);
bool uffd__evict_to(struct uffd_pager *p, size_t goal);
void *uffd__evictor_main(void *arg);

/* bounce.c (without the lock) */
void *uffd__bounce_get(struct uffd_pager *p, size_t len);
void uffd__bounce_free(void *arg);
int uffd__signal_bounces_new(struct uffd_pager *p);
void uffd__signal_bounces_free(struct uffd_pager *p);
void uffd__shadow_ready(struct uffd_pager *p);
char *uffd__read_buffer(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			int *slot);
void uffd__read_buffer_put(struct uffd_pager *p, int slot);

/* fill.c (without the lock) */
ssize_t uffd__read_done(struct pmap *m, char *buf, size_t want, ssize_t got);
ssize_t uffd__store_read(struct pmap *m, size_t idx, size_t n, char *buf);
int uffd__map_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		 const char *src, size_t fault_idx, bool write_fault, size_t *in);
int uffd__map_read(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		   size_t idx, size_t n, const char *buf, ssize_t got,
		   size_t fault_idx, bool write_fault, bool read_ahead);
int uffd__fill_claimed(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		       size_t idx, size_t n, size_t fault_idx, bool write_fault);

/* readahead.c (lock held, but the threads) */
size_t uffd__ra_bytes(const struct uffd_pager *p);
size_t uffd__ra_pages(const struct uffd_pager *p, const struct pmap *m);
void uffd__ra_marker(struct uffd_pager *p, struct pmap *m, size_t idx);
size_t uffd__ra_window(struct uffd_pager *p, struct pmap *m, size_t idx);
void uffd__ra_trim(struct uffd_pager *p, struct pmap *m, size_t idx);
void *uffd__readahead_main(void *arg);

/* batch.c (lock held; fill_batched lets go of it when it returns true,
 * jobs_drain while it reads) */
bool uffd__fill_batched(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			bool write);
void uffd__jobs_drain(struct uffd_pager *p, int rounds);

/* fault.c */
extern const struct uffd_region_ops uffd__pager_ops;
void uffd__wait_settled(struct uffd_pager *p, struct pmap *m, size_t idx);

/* check.c: for tests.  0, or -EUCLEAN with the first broken invariant in
 * why (-EBUSY: the threads did not settle). */
int uffd__pager_check(struct uffd_pager *p, char *why, size_t len);

/* zapped.c */
void uffd__zapped_open(struct uffd_pager *p);
void uffd__zapped_close(struct uffd_pager *p);
bool uffd__page_gone(struct uffd_pager *p, const struct pmap *m, size_t idx);
int uffd__protect_ours(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		       uint64_t *not_ours);
bool uffd__range_ours(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n);
void uffd__unmap_ours(struct uffd_pager *p, struct pmap *m);
uint64_t uffd__copy_out(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			char *dst, uint64_t skip);
void uffd__forget_gone(struct uffd_pager *p, struct pmap *m, size_t idx, bool ours);

/* writeback.c (without the lock) */
void uffd__writeback_runs(struct uffd_pager *p, struct run *r, int nr);
int uffd__writeback_range(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			  bool drop);

#endif
