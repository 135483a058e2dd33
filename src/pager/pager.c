/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pager: maps of a store served by MISSING faults, dirty pages found by
 * write-protect faults, and a two-list CLOCK that keeps the resident pages
 * within the buffer (see include/uffd/pager.h for the user's view).
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
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uffd/handler.h>
#include <uffd/pager.h>
#include <uffd/uffd.h>

#include "util/clock.h"
#include "util/mmalloc.h"
#include "util/opts.h"
#include "util/pagecopy.h"

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

#define BATCH_PAGES	64		/* pages deactivated or evicted per round */
#define DEFAULT_BUFFER	(256UL << 20)
#define DEFAULT_RA	(1UL << 20)
#define RA_START_PAGES	4		/* first sequential window */
#define ASYNC_RA_WINDOWS 4		/* windows read ahead in the background */
#define RA_BATCH	8		/* of those, reads in flight at once */
#define ZAP_MAX		64		/* ranges zapped with one TLB flush */
#define RESERVE_WAITS	250		/* 2 ms waits for room, at most */

struct zap {
	struct iovec v[ZAP_MAX];
	int n;
};
#define RA_STREAMS	16		/* sequential streams followed per map */

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
		size_t next, win;
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
};

struct uffd_pager {
	struct uffd u;
	struct uffd_handler *h;
	struct uffd_pager_opts o;
	pthread_mutex_t lock;
	pthread_cond_t changed;		/* a page left BUSY, a map went */
	pthread_cond_t work;		/* evictors and the read-ahead thread */
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
	/* inactive queue: a growable ring */
	struct qent *q;
	size_t qhead, qlen, qcap;
	/* clock hand */
	struct pmap *hand_map;
	size_t hand_idx;
	/* read-ahead requests: waiting, and the one being read (ra_cur.m
	 * NULL: none) */
	struct ra_req ra[16];
	int nra;
	struct ra_req ra_cur;
	pthread_t *threads;
	int nthreads;
	bool stopping;
	pthread_key_t bounce_key;
	int pidfd;			/* ours, for process_madvise */
	struct zap shadow_zap;		/* reactivated pages' shadows to free
					   (at most ZAP_MAX runs, not counted
					   in the buffer) */
	struct uffd_pager_stats st;
};

#define ST_ADD(p, field, n) __atomic_fetch_add(&(p)->st.field, (n), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* helpers */

static size_t page_index(const struct pmap *m, const void *addr)
{
	return (size_t)((const char *)addr - m->addr) / m->psize;
}

static char *page_addr(const struct pmap *m, size_t idx)
{
	return m->addr + idx * m->psize;
}

static char *shadow_addr(const struct pmap *m, size_t idx)
{
	return m->shadow + idx * m->psize;
}

static uint64_t store_off(const struct pmap *m, size_t idx)
{
	return m->off + (uint64_t)idx * m->psize;
}

static void set_state(struct pmap *m, size_t idx, size_t n, enum page_state s)
{
	memset(m->state + idx, s, n);
}

/*
 * The inactive list is kept at half of what is resident (as the kernel
 * balances its lists): long enough for a page to be touched before its
 * turn to go comes, short enough that the pages in use stay mapped.
 */
static size_t inactive_target(const struct uffd_pager *p)
{
	return p->resident / 2;
}

/* Over half full and the inactive list short: the evictor ages pages. */
static bool aging(const struct uffd_pager *p)
{
	return p->resident > p->o.buffer_bytes / 2 && p->inactive < inactive_target(p);
}

static void account(struct uffd_pager *p, ssize_t bytes)
{
	p->resident += bytes;
	if (p->resident > p->resident_peak)
		p->resident_peak = p->resident;
	if (p->resident > p->high || aging(p))
		pthread_cond_broadcast(&p->work);
}

/* A per-thread buffer for reads, big enough for the largest window. */
struct bounce {
	void *buf;
	size_t len;
};

static void bounce_free(void *arg)
{
	struct bounce *b = arg;

	munmap(b->buf, b->len);
	free(b);
}

static void *bounce_get(struct uffd_pager *p, size_t len)
{
	struct bounce *b = pthread_getspecific(p->bounce_key);

	if (b && b->len >= len)
		return b->buf;
	if (b) {
		munmap(b->buf, b->len);
	} else {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		pthread_setspecific(p->bounce_key, b);
	}
	b->len = len;
	b->buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (b->buf == MAP_FAILED) {
		b->buf = NULL;
		b->len = 0;
	}
	return b->buf;
}

/* ------------------------------------------------------------------ */
/* store I/O */

/*
 * A read of want bytes into buf got this far: the bytes that hold data
 * (the rest of the last page zero-filled, as mmap does at the end of a
 * file), or -errno; 0 means the first page is wholly past the end.
 */
static ssize_t read_done(struct pmap *m, char *buf, size_t want, ssize_t got)
{
	if (got < 0)
		return got;
	if ((size_t)got < want) {
		size_t whole = (got + m->psize - 1) / m->psize * m->psize;

		memset(buf + got, 0, whole - got);
		got = whole;
	}
	ST_ADD(m->p, bytes_read, got);
	ST_ADD(m->p, fills, got / m->psize);
	return got;
}

/* Read n pages from idx into buf: read_done's answer. */
static ssize_t store_read(struct pmap *m, size_t idx, size_t n, char *buf)
{
	size_t want = n * m->psize, got = 0;

	while (got < want) {
		ssize_t r = m->store->ops->read(m->store->data, buf + got, want - got,
						store_off(m, idx) + got);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		got += r;
	}
	return read_done(m, buf, want, got);
}

/* Bytes of pages [idx, idx+n) within the store's size at map time: a map
 * never grows its store. */
static size_t clipped_len(const struct pmap *m, size_t idx, size_t n)
{
	uint64_t off = store_off(m, idx);
	size_t len = n * m->psize;

	if (m->store_size < 0)
		return len;
	if (off >= (uint64_t)m->store_size)
		return 0;
	return len < (uint64_t)m->store_size - off ? len : (uint64_t)m->store_size - off;
}

/* Write pages [idx, idx+n) from src, clipped to the store's size. */
static int store_write(struct pmap *m, size_t idx, size_t n, const char *src)
{
	uint64_t off = store_off(m, idx);
	size_t len = clipped_len(m, idx, n), done = 0;

	while (done < len) {
		ssize_t r = m->store->ops->write(m->store->data, src + done, len - done,
						 off + done);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		done += r;
	}
	ST_ADD(m->p, bytes_written, done);
	ST_ADD(m->p, writebacks, n);
	return 0;
}

/* A run of pages to write back, and how it went. */
struct wrun {
	size_t idx, n;
	const char *src;
	int err;
};

/*
 * Write runs of m's pages back: all in flight at once where the store has
 * batches (io_uring), else one after another.  Each run's err is set.
 */
static void store_write_runs(struct pmap *m, struct wrun *v, int n)
{
	struct uffd_store_io io[BATCH_PAGES];
	int i, nio = 0, at[BATCH_PAGES];

	if (n < 2 || n > BATCH_PAGES || !m->store->ops->write_batch) {
		for (i = 0; i < n; i++)
			v[i].err = store_write(m, v[i].idx, v[i].n, v[i].src);
		return;
	}
	for (i = 0; i < n; i++) {
		size_t len = clipped_len(m, v[i].idx, v[i].n);

		v[i].err = 0;
		if (!len)
			continue;
		io[nio] = (struct uffd_store_io){ (void *)v[i].src, len,
						  store_off(m, v[i].idx), 0 };
		at[nio++] = i;
	}
	m->store->ops->write_batch(m->store->data, io, nio);
	for (i = 0; i < nio; i++) {
		struct wrun *w = &v[at[i]];

		if (io[i].res == (ssize_t)io[i].len) {
			ST_ADD(m->p, bytes_written, io[i].len);
			ST_ADD(m->p, writebacks, w->n);
		} else {
			/* Short or failed: once more on its own, for its error. */
			w->err = store_write(m, w->idx, w->n, w->src);
		}
	}
}

static void report_error(struct pmap *m, size_t idx, size_t n, int err, bool write)
{
	if (write)
		ST_ADD(m->p, write_errors, n);
	else
		ST_ADD(m->p, read_errors, n);
	if (m->p->o.on_error)
		m->p->o.on_error(page_addr(m, idx), n * m->psize, err, m->p->o.arg);
}

/* Read-ahead marks (PF_STREAM), counted: the hand has nothing to do when
 * every mapped page is one.  Under the lock. */
static void stream_set(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (!(m->pflags[idx] & PF_STREAM))
		p->stream_bytes += m->psize;
	m->pflags[idx] |= PF_STREAM;
}

static void stream_clear(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (m->pflags[idx] & PF_STREAM)
		p->stream_bytes -= m->psize;
	m->pflags[idx] &= ~PF_STREAM;
}

/*
 * Dirty marks, under the lock.  A dirty page of a private map is the only
 * copy of the change, so it can not be evicted: it counts as pinned.
 */
static void set_dirty(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (m->pflags[idx] & PF_DIRTY)
		return;
	m->pflags[idx] |= PF_DIRTY;
	if (m->pflags[idx] & PF_STREAM)
		p->eligible_gen++;
	stream_clear(p, m, idx);
	if (m->flags & UFFD_PAGER_PRIVATE)
		p->pinned += m->psize;
}

static void clear_dirty(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (!(m->pflags[idx] & PF_DIRTY))
		return;
	m->pflags[idx] &= ~PF_DIRTY;
	if (m->flags & UFFD_PAGER_PRIVATE)
		p->pinned -= m->psize;
}

/* A thread stops working on m unlocked (uffd_pager_unmap waits for it). */
static void unuse(struct uffd_pager *p, struct pmap *m)
{
	m->users--;
	pthread_cond_broadcast(&p->changed);
}

/* ------------------------------------------------------------------ */
/* the inactive queue */

static bool qent_live(const struct qent *e)
{
	if (!e->m || e->m->gen[e->idx] != e->gen)
		return false;
	if (e->drop)
		return e->m->state[e->idx] == P_ACTIVE &&
		       (e->m->pflags[e->idx] & (PF_STREAM | PF_DIRTY | PF_PINNED)) == PF_STREAM;
	return e->m->state[e->idx] == P_INACTIVE;
}

/* Drop stale entries (pages touched since), keeping the order. */
static void queue_compact(struct uffd_pager *p)
{
	size_t i, n = 0;

	for (i = 0; i < p->qlen; i++) {
		struct qent e = p->q[(p->qhead + i) % p->qcap];

		if (qent_live(&e))
			p->q[(p->qhead + n++) % p->qcap] = e;
	}
	p->qlen = n;
}

/* Append page idx (just made INACTIVE, or read ahead: drop) to the queue. */
static int queue_push(struct uffd_pager *p, struct pmap *m, size_t idx, bool drop)
{
	if (p->qlen == p->qcap && p->qlen > 2 * (p->inactive / uffd_page_size()) + 64)
		queue_compact(p);
	if (p->qlen == p->qcap) {
		size_t ncap = p->qcap ? p->qcap * 2 : 1024, i;
		struct qent *nq = malloc(ncap * sizeof(*nq));

		if (!nq)
			return -ENOMEM;
		for (i = 0; i < p->qlen; i++)
			nq[i] = p->q[(p->qhead + i) % p->qcap];
		free(p->q);
		p->q = nq;
		p->qhead = 0;
		p->qcap = ncap;
	}
	p->q[(p->qhead + p->qlen) % p->qcap] = (struct qent){ m, idx, ++m->gen[idx], drop };
	p->qlen++;
	return 0;
}

/* The oldest live entry. */
static bool queue_pop(struct uffd_pager *p, struct qent *e)
{
	while (p->qlen) {
		*e = p->q[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		if (qent_live(e))
			return true;
	}
	return false;
}

static void queue_forget(struct uffd_pager *p, struct pmap *m)
{
	size_t i;

	for (i = 0; i < p->qlen; i++) {
		struct qent *e = &p->q[(p->qhead + i) % p->qcap];

		if (e->m == m)
			e->m = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* deactivation and eviction (called without the lock; take it inside) */

/*
 * Zapping pages costs a TLB shootdown, an IPI to every CPU running this
 * process - tens of microseconds on a VM.  So zaps are gathered and issued
 * as one process_madvise(MADV_DONTNEED) over all the ranges, which the
 * kernel flushes once (6.x; older kernels refuse it for our own pid and
 * each range is madvised on its own).  Only pages nobody else may touch
 * (BUSY, or shadow pages) are ever zapped, so repeating a zap is harmless.
 */
static void zap_flush(struct uffd_pager *p, struct zap *z)
{
	size_t total = 0;
	int i;

	if (!z->n)
		return;
	for (i = 0; i < z->n; i++)
		total += z->v[i].iov_len;
	if (p->pidfd < 0 || syscall(SYS_process_madvise, p->pidfd, z->v, z->n,
				    MADV_DONTNEED, 0) != (ssize_t)total)
		for (i = 0; i < z->n; i++)
			madvise(z->v[i].iov_base, z->v[i].iov_len, MADV_DONTNEED);
	z->n = 0;
}

static void zap_add(struct uffd_pager *p, struct zap *z, void *addr, size_t len)
{
	struct iovec *last = z->n ? &z->v[z->n - 1] : NULL;

	if (last && (char *)last->iov_base + last->iov_len == addr) {
		last->iov_len += len;
		return;
	}
	if (z->n == ZAP_MAX)
		zap_flush(p, z);
	z->v[z->n++] = (struct iovec){ addr, len };
}

/* A run of pages of one map, worked on together. */
struct run {
	struct pmap *m;
	size_t idx, n;
	bool dirty;		/* some page of it */
	int err;
	bool drop;		/* clean read-ahead: evict, no shadow copy */
};

/*
 * Move the runs (ACTIVE pages set BUSY by the caller) to the shadow:
 * block writes, copy, zap, then let blocked writers re-fault (they find
 * the pages INACTIVE and reactivate them).  Without the lock.
 */
static void deactivate_runs(struct uffd_pager *p, struct run *r, int nr)
{
	struct zap z = { .n = 0 };
	int i;

	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;
		char *a = page_addr(m, r[i].idx);

		/* Clean pages are write-protected already.  (Protecting
		 * never takes DONTWAKE: the kernel refuses the pair.) */
		if (m->writable && r[i].dirty &&
		    (r[i].err = uffd_writeprotect(&p->u, a, r[i].n * m->psize, true, 0)))
			continue;	/* can not block writers: keep them */
		/* Writers are blocked now; the copy is ordered by the kernel,
		 * which ThreadSanitizer can not see (util/pagecopy.h). */
		copy_protected_page(shadow_addr(m, r[i].idx), a, r[i].n * m->psize);
		zap_add(p, &z, a, r[i].n * m->psize);
	}
	zap_flush(p, &z);
	for (i = 0; i < nr; i++)
		if (r[i].m->writable && !r[i].err)
			uffd_wake(&p->u, page_addr(r[i].m, r[i].idx), r[i].n * r[i].m->psize);
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;
		size_t k;

		for (k = r[i].idx; k < r[i].idx + r[i].n; k++) {
			m->state[k] = r[i].err ? P_ACTIVE : P_INACTIVE;
			if (!r[i].err)
				queue_push(p, m, k, false);
		}
		p->eligible_gen += r[i].err != 0;
		if (!r[i].err) {
			p->inactive += r[i].n * m->psize;
			ST_ADD(p, deactivations, r[i].n);
		}
		unuse(p, m);
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Advance the clock hand over ACTIVE, unpinned pages and deactivate up to
 * what the inactive list lacks (at least a batch, at most BATCH_PAGES), in
 * contiguous runs.  Called with the lock held; returns with it held.
 * Returns pages deactivated.
 */
static size_t deactivate_some(struct uffd_pager *p)
{
	size_t done = 0, scanned = 0, total = 0, want = BATCH_PAGES;
	struct run r[ZAP_MAX];
	bool counted_down = false;
	struct pmap *m;
	int nr = 0;

	/* Shadow pages still to be freed must go before any is reused. */
	zap_flush(p, &p->shadow_zap);
	/* Nothing the hand may take: all inactive or read ahead, or nothing
	 * new since a turn that found nothing. */
	if (p->resident <= p->inactive + p->stream_bytes ||
	    (p->hand_idle && p->idle_gen == p->eligible_gen))
		return 0;
	if (p->inactive < inactive_target(p) &&
	    (inactive_target(p) - p->inactive) / uffd_page_size() < want)
		want = (inactive_target(p) - p->inactive) / uffd_page_size() + 1;
	/* At most one turn of the hand per call, so a page is passed over
	 * once per turn for each reference it holds. */
	for (m = p->maps; m; m = m->next)
		total += m->npages;
	while (done < want && scanned < total && nr < ZAP_MAX) {
		size_t start, n = 0, k;
		bool dirty = false;

		m = p->hand_map;
		if (!m || p->hand_idx >= m->npages || m->dying) {
			m = m && m->next ? m->next : p->maps;
			p->hand_map = m;
			p->hand_idx = 0;
			if (!m)
				break;
			if (m->dying) {
				p->hand_idx = m->npages;
				scanned++;
				continue;
			}
		}
		start = p->hand_idx;
		while (start + n < m->npages && n < want - done &&
		       m->state[start + n] == P_ACTIVE &&
		       !(m->pflags[start + n] & (PF_PINNED | PF_REF | PF_STREAM)))
			n++;
		if (!n) {
			/* Second chance for a page mapped since the last turn. */
			if (m->state[start] == P_ACTIVE && (m->pflags[start] & PF_REF)) {
				m->pflags[start] -= 1u << PF_REF_SHIFT;
				counted_down = true;
			}
			p->hand_idx++;
			scanned++;
			continue;
		}
		for (k = start; k < start + n; k++)
			dirty |= m->pflags[k] & PF_DIRTY;
		p->hand_idx += n;
		scanned += n;
		set_state(m, start, n, P_BUSY);
		m->users++;
		r[nr++] = (struct run){ m, start, n, dirty, 0, false };
		done += n;
	}
	/* A whole turn with nothing to take or count down: rest. */
	p->hand_idle = !nr && !counted_down && scanned >= total;
	p->idle_gen = p->eligible_gen;
	if (!nr)
		return 0;
	pthread_mutex_unlock(&p->lock);
	deactivate_runs(p, r, nr);
	pthread_mutex_lock(&p->lock);
	return done;
}

/*
 * Evict the runs (INACTIVE pages set BUSY by the caller): write dirty ones
 * back from the shadow, then free the shadow pages.  Without the lock.  A
 * page whose write-back fails is kept, INACTIVE and dirty.
 */
static void evict_runs(struct uffd_pager *p, struct run *r, int nr)
{
	struct wrun w[BATCH_PAGES];
	int i, j, nw, at[BATCH_PAGES];
	struct zap z = { .n = 0 };

	/* Write the dirty runs back, those of one map in one batch. */
	for (i = 0; i < nr; i = j) {
		for (j = i, nw = 0; j < nr && r[j].m == r[i].m; j++)
			if (r[j].dirty && !r[j].drop && !(r[j].m->flags & UFFD_PAGER_PRIVATE)) {
				w[nw] = (struct wrun){ r[j].idx, r[j].n,
						       shadow_addr(r[j].m, r[j].idx), 0 };
				at[nw++] = j;
			}
		store_write_runs(r[i].m, w, nw);
		while (nw--)
			r[at[nw]].err = w[nw].err;
	}
	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;

		if (r[i].drop)		/* mapped, clean, protected: just zap */
			zap_add(p, &z, page_addr(m, r[i].idx), r[i].n * m->psize);
		else if (!r[i].err)
			zap_add(p, &z, shadow_addr(m, r[i].idx), r[i].n * m->psize);
	}
	zap_flush(p, &z);
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;
		uint32_t seq = (uint32_t)uffd_region_read_seq(m->region);
		size_t k;

		for (k = r[i].idx; k < r[i].idx + r[i].n; k++) {
			if (r[i].err) {
				m->state[k] = P_INACTIVE;
				continue;
			}
			m->state[k] = P_EMPTY;
			m->dropped_seq[k] = seq;
			clear_dirty(p, m, k);
			stream_clear(p, m, k);
			p->resident -= m->psize;
			if (!r[i].drop)
				p->inactive -= m->psize;
		}
		if (r[i].err && !m->error)
			m->error = r[i].err;
		if (!r[i].err)
			ST_ADD(p, evictions, r[i].n);
		unuse(p, m);
	}
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < nr; i++)
		if (r[i].err)
			report_error(r[i].m, r[i].idx, r[i].n, r[i].err, true);
}

/* Add inactive page idx of m to the runs (merging with the last); each
 * run holds a use of its map.  Lock held. */
static int add_to_runs(struct run *r, int nr, struct pmap *m, size_t idx, bool drop)
{
	bool dirty = m->pflags[idx] & PF_DIRTY;
	struct run *last = nr ? &r[nr - 1] : NULL;

	if (last && last->m == m && last->idx + last->n == idx && last->dirty == dirty &&
	    last->drop == drop) {
		last->n++;
		return nr;
	}
	r[nr] = (struct run){ m, idx, 1, dirty, 0, drop };
	m->users++;
	return nr + 1;
}

/*
 * Bring the buffer down to goal bytes: keep the inactive list at its
 * target (inactive_target), evict from its old end, a batch at a time.  Called
 * with the lock held; returns with it held.  Returns false when nothing
 * could be done (every page pinned, busy, or dirty in a private map).
 */
static bool evict_to(struct uffd_pager *p, size_t goal)
{
	int idle = 0;

	while (p->resident > goal && !p->stopping) {
		size_t want = (p->resident - goal + uffd_page_size() - 1) / uffd_page_size();
		struct run r[ZAP_MAX];
		struct qent e;
		int nr = 0;

		/* Fill the inactive list first, so what is evicted has had
		 * the time of a whole list to be touched. */
		while (p->inactive < inactive_target(p) && deactivate_some(p))
			idle = 0;
		/* Nothing inactive: a turn may only have counted references
		 * down; a second one finds pages unless all are in use. */
		if (!p->qlen && !deactivate_some(p) && !deactivate_some(p))
			return false;
		/* At least a small batch: one zap for several pages. */
		if (want < p->min_evict)
			want = p->min_evict;
		while (want && nr < ZAP_MAX && queue_pop(p, &e)) {
			if (e.m->dying || (e.m->pflags[e.idx] & PF_PINNED) ||
			    ((e.m->flags & UFFD_PAGER_PRIVATE) &&
			     (e.m->pflags[e.idx] & PF_DIRTY))) {
				/* Going, pinned (since it was deactivated), or
				 * the only copy of a private change.
				 * Bound the walk over such entries. */
				if (++idle > (int)(p->qlen + BATCH_PAGES))
					break;
				continue;
			}
			idle = 0;
			e.m->state[e.idx] = P_BUSY;
			nr = add_to_runs(r, nr, e.m, e.idx, e.drop);
			want--;
		}
		if (!nr) {
			if (idle)
				return false;
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		evict_runs(p, r, nr);
		pthread_mutex_lock(&p->lock);
	}
	return true;
}

static void timed_wait(pthread_cond_t *c, pthread_mutex_t *lock, int ms)
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

/*
 * Make room for bytes more, evicting in the caller's thread if the
 * evictors are behind; when every page is busy (being filled or written
 * back by others), wait for them.  Only pinned pages may push the buffer
 * over: they must stay.  Lock held.
 */
static void reserve(struct uffd_pager *p, struct pmap *m, size_t bytes)
{
	size_t cap = p->o.buffer_bytes;

	int waits = 0;

	/* (A dying map's pages can not be evicted: its unmap is waiting for
	 * this fill, so let it through.  And a fault is never kept waiting
	 * for room for long: past RESERVE_WAITS the buffer is overrun.) */
	while (p->resident + bytes > cap && !p->stopping && !m->dying &&
	       p->pinned + bytes < cap && waits < RESERVE_WAITS) {
		if (!evict_to(p, cap - bytes)) {
			timed_wait(&p->changed, &p->lock, 2);
			waits++;
		}
	}
	account(p, bytes);
}

static void *evictor_main(void *arg)
{
	struct uffd_pager *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		if (p->resident > p->high) {
			if (!evict_to(p, p->low))
				timed_wait(&p->work, &p->lock, 10);
			continue;
		}
		/* Age ahead of need: pages on the inactive list have had
		 * time to be touched by the time eviction needs them. */
		if (aging(p) && deactivate_some(p))
			continue;
		pthread_cond_wait(&p->work, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* fills */

/* The largest window: read_ahead, at most 1/16 of the buffer. */
static size_t ra_pages(const struct uffd_pager *p, const struct pmap *m)
{
	size_t bytes = p->o.read_ahead, n;

	if (bytes == UFFD_PAGER_NO_READ_AHEAD)
		return 1;
	if (bytes > p->o.buffer_bytes / 16)
		bytes = p->o.buffer_bytes / 16;
	n = bytes / m->psize;
	return n ? n : 1;
}

/*
 * Claim up to n EMPTY pages from idx (stopping at the first that is not),
 * making room for them.  Lock held.  Returns pages claimed (BUSY).
 */
static size_t claim_empty(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n)
{
	size_t k = 0;

	if (idx >= m->npages)
		return 0;
	if (idx + n > m->npages)
		n = m->npages - idx;
	while (k < n && m->state[idx + k] == P_EMPTY)
		k++;
	if (!k)
		return 0;
	set_state(m, idx, k, P_BUSY);
	reserve(p, m, k * m->psize);
	return k;
}

/* Undo a claim of pages whose read failed. */
static void unclaim(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		    enum page_state to)
{
	set_state(m, idx, n, to);
	p->resident -= n * m->psize;
	pthread_cond_broadcast(&p->changed);
}

/* Pages [idx, idx+n) are mapped; the faulting one is dirty if written. */
static void publish(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		    size_t fault_idx, bool write_fault, bool read_ahead)
{
	size_t i;

	set_state(m, idx, n, P_ACTIVE);
	for (i = idx; i < idx + n; i++) {
		stream_clear(p, m, i);
		m->pflags[i] = (m->pflags[i] & ~PF_REF) | REF_FILLED << PF_REF_SHIFT;
		/* In a window (n > 1) the faulting page is part of the
		 * stream too. */
		if (read_ahead && (i != fault_idx || n > 1) && !(m->pflags[i] & PF_PINNED)) {
			stream_set(p, m, i);
			queue_push(p, m, i, true);
		} else {
			p->eligible_gen++;
		}
	}
	if (write_fault && fault_idx >= idx && fault_idx < idx + n)
		set_dirty(p, m, fault_idx);
	pthread_cond_broadcast(&p->changed);
}

/* Copy n pages at idx, write-protected or not, for fault f (NULL: outside
 * a fault: read-ahead, prefetch).  Nothing to copy: 0. */
static int copy_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		   const char *src, bool wp)
{
	char *dst = page_addr(m, idx);
	size_t len = n * m->psize;

	if (!n)
		return 0;
	if (f)
		return wp ? uffd_fault_copy_wp(f, dst, src, len)
			  : uffd_fault_copy_at(f, dst, src, len);
	return wp ? uffd_region_copy_wp(m->region, dst, src, len)
		  : uffd_region_copy(m->region, dst, src, len);
}

/*
 * Copy n pages into the map at idx: write-protected where the map is
 * writable, except the faulting page when the fault is a write (it is
 * dirty from the start: one fault, not two).
 */
static int map_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		  const char *src, size_t fault_idx, bool write_fault)
{
	size_t ps = m->psize, before;
	int ret;

	if (!m->writable || !write_fault || fault_idx < idx || fault_idx >= idx + n)
		return copy_in(m, f, idx, n, src, m->writable);
	/* Protected before it, the written page not, protected after it. */
	before = fault_idx - idx;
	ret = copy_in(m, f, idx, before, src, true);
	if (!ret)
		ret = copy_in(m, f, fault_idx, 1, src + before * ps, false);
	if (!ret)
		ret = copy_in(m, f, fault_idx + 1, n - before - 1,
			      src + (before + 1) * ps, true);
	return ret;
}

/*
 * Map pages [idx, idx+n) (claimed BUSY) that a read of the store brought
 * into buf (got: read_done's answer).  f is the fault being served (NULL:
 * prefetch or read-ahead).  Returns 0 or -errno (then the pages are BAD or
 * back to EMPTY).
 */
static int map_read(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		    size_t idx, size_t n, const char *buf, ssize_t got,
		    size_t fault_idx, bool write_fault, bool read_ahead)
{
	size_t full = got > 0 ? (size_t)got / m->psize : 0;
	int ret;

	ret = full ? map_in(m, f, idx, full, buf, fault_idx, write_fault) : 0;
	pthread_mutex_lock(&p->lock);
	if (ret && ret != -EEXIST) {
		unclaim(p, m, idx, n, P_EMPTY);
		pthread_mutex_unlock(&p->lock);
		return ret;
	}
	if (full)
		publish(p, m, idx, full, fault_idx, write_fault, read_ahead);
	if (full < n) {
		/* Past the end of the store, or a read error: the faulting
		 * page is poisoned by the caller (and stays so), the others
		 * are tried again when touched. */
		unclaim(p, m, idx + full, n - full, P_EMPTY);
		if (got < 0 && fault_idx >= idx && fault_idx < idx + n)
			m->state[fault_idx] = P_BAD;
	}
	pthread_mutex_unlock(&p->lock);
	if (got < 0) {
		report_error(m, idx, n, (int)got, false);
		return (int)got;
	}
	return full ? 0 : -EFAULT;
}

/*
 * Read pages [idx, idx+n) (claimed BUSY) from the store and map them.
 * f is the fault being served (NULL: prefetch or read-ahead).  Returns 0 or
 * -errno (then the pages are BAD or back to EMPTY).
 */
static int fill_claimed(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
			size_t idx, size_t n, size_t fault_idx, bool write_fault)
{
	char *buf = bounce_get(p, n * m->psize);

	/* Around a fault it is read-ahead; a prefetch was asked for. */
	return map_read(p, m, f, idx, n, buf, buf ? store_read(m, idx, n, buf) : -ENOMEM,
			fault_idx, write_fault, f != NULL);
}

/*
 * Read-ahead: claimed runs of pages filled at once, the reads all in
 * flight together where the store can (read_batch: io_uring).
 */
struct ra_chunk {
	size_t idx, n;
};

static void fill_chunks(struct uffd_pager *p, struct pmap *m, const struct ra_chunk *c,
			int nc)
{
	struct uffd_store_io io[RA_BATCH];
	size_t total = 0, at = 0;
	char *buf;
	int i;

	for (i = 0; i < nc; i++)
		total += c[i].n * m->psize;
	buf = bounce_get(p, total);
	for (i = 0; i < nc; i++, at += io[i - 1].len)
		io[i] = (struct uffd_store_io){ buf + at, c[i].n * m->psize,
						store_off(m, c[i].idx), -ENOMEM };
	if (buf && nc > 1 && m->store->ops->read_batch)
		m->store->ops->read_batch(m->store->data, io, nc);
	else if (buf)
		for (i = 0; i < nc; i++)
			io[i].res = store_read(m, c[i].idx, c[i].n, io[i].buf);
	for (i = 0; i < nc; i++) {
		ssize_t got = io[i].res;

		if (buf && nc > 1 && m->store->ops->read_batch)
			got = read_done(m, io[i].buf, io[i].len, got);
		map_read(p, m, NULL, c[i].idx, c[i].n, io[i].buf, got, SIZE_MAX, false, true);
	}
}

static void ra_post(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n)
{
	int i;

	if (idx >= m->npages)
		return;
	for (i = 0; i < p->nra; i++)
		if (p->ra[i].m == m && p->ra[i].idx == idx)
			return;
	if (p->nra == (int)(sizeof(p->ra) / sizeof(p->ra[0])))
		return;
	p->ra[p->nra++] = (struct ra_req){ m, idx, n };
	m->users++;
	pthread_cond_broadcast(&p->work);
}

/*
 * A fault at idx: read-ahead of m still to do at or before idx is late -
 * the program got there first (this thread was kept from running), and
 * those pages are filled by the fault, or were used and dropped since,
 * and reading them again would be waste.  Requests start past idx.  Lock
 * held.
 */
static void ra_trim(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	int i;

	for (i = -1; i < p->nra; i++) {
		struct ra_req *r = i < 0 ? &p->ra_cur : &p->ra[i];

		if (r->m == m && idx >= r->idx && idx < r->idx + r->n) {
			r->n -= idx + 1 - r->idx;
			r->idx = idx + 1;
		}
	}
}

/*
 * The read-ahead thread: fills windows posted by sequential faults, in
 * the background, a window at a time.  The request being read is
 * p->ra_cur, where faults can trim it (ra_trim).
 */
static void *readahead_main(void *arg)
{
	struct uffd_pager *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		struct ra_req *r = &p->ra_cur;
		struct pmap *m;

		if (!p->nra) {
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		*r = p->ra[0];
		memmove(p->ra, p->ra + 1, --p->nra * sizeof(p->ra[0]));
		m = r->m;
		if (r->idx + r->n > m->npages)
			r->n = r->idx < m->npages ? m->npages - r->idx : 0;
		while (r->n && !m->dying && !p->stopping) {
			struct ra_chunk c[RA_BATCH];
			int nc = 0;

			/* Claim up to RA_BATCH windows, then read them together;
			 * r->idx and r->n are what is left to do. */
			while (r->n && nc < RA_BATCH) {
				size_t at = r->idx, end = r->idx + r->n, k, win = ra_pages(p, m);

				if (win > r->n)
					win = r->n;
				k = claim_empty(p, m, at, win);
				if (k) {
					c[nc++] = (struct ra_chunk){ at, k };
					ST_ADD(p, read_ahead, k);
				}
				/* Past the claim, or past a page not EMPTY; a fault
				 * may have trimmed r further while claim_empty
				 * evicted (trimming keeps the end). */
				if (r->idx < at + (k ? k : 1))
					r->idx = at + (k ? k : 1);
				r->n = end > r->idx ? end - r->idx : 0;
			}
			if (!nc)
				continue;
			pthread_mutex_unlock(&p->lock);
			fill_chunks(p, m, c, nc);
			pthread_mutex_lock(&p->lock);
		}
		r->m = NULL;
		unuse(p, m);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* fault callbacks */

/* Wait for a BUSY page to settle.  Lock held. */
static void wait_settled(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	while (m->state[idx] == P_BUSY)
		pthread_cond_wait(&p->changed, &p->lock);
}

/* The page is mapped already: just let the faulting thread go. */
static int wake_only(struct pmap *m, size_t idx)
{
	uffd_wake(&m->p->u, page_addr(m, idx), m->psize);
	return UFFD_FAULT_DEFERRED;
}

/* Map an INACTIVE page (set BUSY) back from the shadow.  Without lock. */
static int reactivate(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		      size_t idx, bool write_fault, bool dirty)
{
	int ret;

	ret = map_in(m, f, idx, 1, shadow_addr(m, idx), idx, write_fault || dirty);
	pthread_mutex_lock(&p->lock);
	if (ret && ret != -EEXIST) {
		m->state[idx] = P_INACTIVE;
	} else {
		/* The shadow copy is freed later, with others, but before the
		 * page can be deactivated into it again (deactivate_some
		 * flushes these first): queued while the page is still BUSY. */
		zap_add(p, &p->shadow_zap, shadow_addr(m, idx), m->psize);
		m->state[idx] = P_ACTIVE;
		p->eligible_gen++;
		m->pflags[idx] = (m->pflags[idx] & ~PF_REF) | REF_REUSED << PF_REF_SHIFT;
		if (write_fault)
			set_dirty(p, m, idx);
		p->inactive -= m->psize;
		ST_ADD(p, hits, 1);
	}
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

/* Size of the synchronous fill for a fault at idx, and read-ahead to post. */
static size_t fill_window(struct uffd_pager *p, struct pmap *m, size_t idx,
			  size_t *async_n)
{
	size_t max = ra_pages(p, m), win;
	int i;

	*async_n = 0;
	if (max <= 1)
		return 1;
	for (i = 0; i < RA_STREAMS; i++)
		if (m->ra[i].next == idx && idx)
			break;
	if (i == RA_STREAMS) {
		/* Not a continuation: start a stream in place of another. */
		i = m->ra_victim++ % RA_STREAMS;
		m->ra[i].win = 0;
		win = 1;
	} else {
		win = m->ra[i].win ? m->ra[i].win * 2 : RA_START_PAGES;
		if (win >= max) {
			win = max;
			*async_n = max * ASYNC_RA_WINDOWS;
		}
		m->ra[i].win = win;
	}
	/* Where this stream continues: past the sync and async windows. */
	m->ra[i].next = idx + win + *async_n;
	return win;
}

/*
 * A fault read before its page was last evicted, on a page now EMPTY: the
 * page was filled after the fault was raised (nothing is evicted that was
 * not resident), by read-ahead or another thread's fault, and that fill
 * woke the faulting thread - which used the page or not, but waits no
 * more.  (If the page was INACTIVE when it faulted and evicted before the
 * fault was served, the thread does wait: woken, it faults again.)  Lock
 * held.
 */
static bool stale_fault(const struct pmap *m, const struct uffd_fault *f, size_t idx)
{
	return (int32_t)((uint32_t)f->seq - m->dropped_seq[idx]) <= 0;
}

static int on_missing(struct uffd_fault *f)
{
	struct pmap *m = f->data;
	struct uffd_pager *p = m->p;
	size_t idx = page_index(m, f->addr), n, async_n, k;
	bool dirty;
	int ret;

	ST_ADD(p, faults, 1);
	pthread_mutex_lock(&p->lock);
	wait_settled(p, m, idx);
	ra_trim(p, m, idx);
	switch (m->state[idx]) {
	case P_ACTIVE:
		/* Filled by read-ahead or another thread since it faulted. */
		pthread_mutex_unlock(&p->lock);
		ST_ADD(p, hits, 1);
		return wake_only(m, idx);
	case P_INACTIVE:
		m->state[idx] = P_BUSY;
		dirty = m->pflags[idx] & PF_DIRTY;
		pthread_mutex_unlock(&p->lock);
		return reactivate(p, m, f, idx, f->write, dirty) ? -EIO : UFFD_FAULT_RESOLVED;
	case P_BAD:
		pthread_mutex_unlock(&p->lock);
		return -EIO;	/* poisoned again: SIGBUS */
	default:
		break;
	}
	if (stale_fault(m, f, idx)) {
		/*
		 * Reading the page again would be waste: wake whoever may be
		 * waiting instead.  A thread that really waits faults again,
		 * and that fault is served.
		 */
		pthread_mutex_unlock(&p->lock);
		ST_ADD(p, hits, 1);
		return wake_only(m, idx);
	}
	n = fill_window(p, m, idx, &async_n);
	k = claim_empty(p, m, idx, n);
	if (async_n)
		ra_post(p, m, idx + n, async_n);
	pthread_mutex_unlock(&p->lock);
	if (k > 1)
		ST_ADD(p, read_ahead, k - 1);
	ret = fill_claimed(p, m, f, idx, k, idx, f->write);
	return ret ? ret : UFFD_FAULT_RESOLVED;
}

static int on_wp(struct uffd_fault *f)
{
	struct pmap *m = f->data;
	struct uffd_pager *p = m->p;
	size_t idx = page_index(m, f->addr);
	int ret;

	pthread_mutex_lock(&p->lock);
	wait_settled(p, m, idx);
	if (m->state[idx] != P_ACTIVE) {
		/* Deactivated or evicted while the write waited: let it
		 * re-fault as MISSING. */
		pthread_mutex_unlock(&p->lock);
		return wake_only(m, idx);
	}
	set_dirty(p, m, idx);
	m->state[idx] = P_BUSY;
	pthread_mutex_unlock(&p->lock);
	ST_ADD(p, wp_faults, 1);
	/* The whole pager page (f->addr is the base page that faulted). */
	ret = uffd_writeprotect(&p->u, page_addr(m, idx), m->psize, false, 0);
	if (!ret)
		ret = uffd_fault_unprotect(f, uffd_page_size());
	pthread_mutex_lock(&p->lock);
	m->state[idx] = P_ACTIVE;
	p->eligible_gen++;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static const struct uffd_region_ops pager_ops = {
	.missing = on_missing,
	.wp = on_wp,
};

/* ------------------------------------------------------------------ */
/* the API */

static void fill_defaults(struct uffd_pager_opts *o)
{
	size_t base = uffd_page_size();

	if (!o->buffer_bytes)
		o->buffer_bytes = DEFAULT_BUFFER;
	if (!o->page_size)
		o->page_size = base;
	if (o->fillers <= 0)
		o->fillers = 1;
	if (o->evictors <= 0)
		o->evictors = 1;
	if (o->high_water <= 0 || o->high_water > 100)
		o->high_water = 90;
	if (o->low_water <= 0 || o->low_water >= o->high_water)
		o->low_water = o->high_water * 7 / 9;
	if (!o->read_ahead)
		o->read_ahead = DEFAULT_RA;
	if (o->max_fault_events <= 0)
		o->max_fault_events = 64;
}

struct uffd_pager *uffd_pager_new(const struct uffd_pager_opts *o)
{
	UFFD_OPTS(uffd_handler_opts, ho);
	struct uffd_pager_opts opts;
	struct uffd_pager *p;
	int i, ret;

	ret = uffd__load_opts(&opts, o, struct uffd_pager_opts, arg, arg);
	if (ret) {
		errno = -ret;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->o = opts;
	p->pidfd = -1;
	fill_defaults(&p->o);
	if (p->o.page_size % uffd_page_size() ||
	    p->o.buffer_bytes < p->o.page_size) {
		free(p);
		errno = EINVAL;
		return NULL;
	}
	p->min_evict = p->o.buffer_bytes / uffd_page_size() / 64;
	p->min_evict = p->min_evict > 16 ? 16 : p->min_evict ? p->min_evict : 1;
	p->high = p->o.buffer_bytes / 100 * p->o.high_water;
	p->low = p->o.buffer_bytes / 100 * p->o.low_water;
	ret = uffd_open(&p->u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP),
			UFFD_F(UFFD_FEAT_POISON), UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY);
	if (ret) {
		free(p);
		errno = -ret;
		return NULL;
	}
	p->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_key_create(&p->bounce_key, bounce_free);
	ho.threads = p->o.fillers;
	ho.batch = p->o.max_fault_events;
	p->h = uffd_handler_new(&p->u, &ho);
	if (!p->h)
		goto fail;
	if ((ret = uffd_handler_start(p->h))) {
		errno = -ret;
		goto fail;
	}
	p->threads = calloc(p->o.evictors + 1, sizeof(*p->threads));
	if (!p->threads)
		goto fail;
	for (i = 0; i <= p->o.evictors; i++) {
		ret = pthread_create(&p->threads[i], NULL,
				     i ? evictor_main : readahead_main, p);
		if (ret) {
			errno = ret;
			goto fail;
		}
		p->nthreads++;
	}
	return p;
fail:
	ret = errno;
	uffd_pager_free(p);
	errno = ret;
	return NULL;
}

/* Anonymous memory aligned to align (a power of two; else the base page). */
static void *map_aligned(size_t len, size_t align, int prot)
{
	size_t extra = (align & (align - 1)) ? 0 : align - uffd_page_size();
	char *a = mmap(NULL, len + extra, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0), *start;

	if (a == MAP_FAILED || !extra)
		return a;
	start = (char *)(((uintptr_t)a + align - 1) & ~(uintptr_t)(align - 1));
	if (start > a)
		munmap(a, start - a);
	if (start + len < a + len + extra)
		munmap(start + len, a + len + extra - (start + len));
	return start;
}

static struct pmap *find_map(struct uffd_pager *p, const void *addr)
{
	struct pmap *m;

	for (m = p->maps; m; m = m->next)
		if ((const char *)addr >= m->addr && (const char *)addr < m->addr + m->len)
			return m;
	return NULL;
}

void *uffd_pager_map(struct uffd_pager *p, struct uffd_store *s, uint64_t off,
		     size_t len, int prot, unsigned flags, size_t page_size)
{
	unsigned modes = UFFD_REG_MISSING;
	struct pmap *m;
	int err = EINVAL;

	if (p && !page_size)
		page_size = p->o.page_size;
	if (!p || !s || !s->ops || !s->ops->read || !len || page_size % uffd_page_size() ||
	    len % page_size || off % page_size ||
	    (prot & ~(PROT_READ | PROT_WRITE)) != 0 || !(prot & PROT_READ)) {
		errno = EINVAL;
		return NULL;
	}
	if ((prot & PROT_WRITE) && !(flags & UFFD_PAGER_PRIVATE) && !s->ops->write) {
		errno = EACCES;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	m->p = p;
	m->store = s;
	m->off = off;
	m->len = len;
	m->psize = page_size;
	m->npages = len / page_size;
	m->flags = flags;
	m->writable = prot & PROT_WRITE;
	m->store_size = s->ops->size ? s->ops->size(s->data) : -1;
	m->addr = map_aligned(len, page_size, prot);
	m->shadow = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	m->state = mm_zalloc(m->npages);
	m->pflags = mm_zalloc(m->npages);
	m->gen = mm_zalloc(m->npages);
	m->dropped_seq = mm_zalloc(m->npages * sizeof(*m->dropped_seq));
	err = ENOMEM;
	if (m->addr == MAP_FAILED || m->shadow == MAP_FAILED || !m->state || !m->pflags ||
	    !m->gen || !m->dropped_seq)
		goto fail;
	/* No THP: the buffer counts pages of the map's own size. */
	madvise(m->addr, len, MADV_NOHUGEPAGE);
	madvise(m->shadow, len, MADV_NOHUGEPAGE);
	if (m->writable)
		modes |= UFFD_REG_WP;
	m->region = uffd_handler_add(p->h, m->addr, len, 0, modes, &pager_ops, m);
	if (!m->region) {
		err = errno;
		goto fail;
	}
	pthread_mutex_lock(&p->lock);
	m->next = p->maps;
	p->maps = m;
	pthread_mutex_unlock(&p->lock);
	return m->addr;
fail:
	if (m->addr != MAP_FAILED && m->addr)
		munmap(m->addr, len);
	if (m->shadow != MAP_FAILED && m->shadow)
		munmap(m->shadow, len);
	mm_free(m->state);
	mm_free(m->pflags);
	mm_free(m->gen);
	mm_free(m->dropped_seq);
	free(m);
	errno = err;
	return NULL;
}

/* One page of a write-back batch. */
struct wb_page {
	size_t idx;
	enum page_state was;
	bool dirty;
	int err;
};

/*
 * Write back (and with drop, zap) the pages of one batch, all BUSY.
 * Mapped dirty pages are protected with one ioctl over their span, copied
 * out (ordered by the protection, which ThreadSanitizer can not see in a
 * write(2) of the page itself), written in contiguous runs, and let go
 * with one wake; everything dropped is zapped with one TLB flush.
 * Without the lock.
 */
static void writeback_batch(struct uffd_pager *p, struct pmap *m, struct wb_page *w, int n,
			    bool drop)
{
	size_t first = SIZE_MAX, last = 0, ps = m->psize;
	char *buf = bounce_get(p, n * ps);
	struct wrun runs[BATCH_PAGES];
	int i, j, k, nr, err = 0, first_of[BATCH_PAGES];
	struct zap z = { .n = 0 };

	for (i = 0; i < n; i++)
		if (w[i].was == P_ACTIVE && (w[i].dirty || drop)) {
			first = first < w[i].idx ? first : w[i].idx;
			last = w[i].idx;
		}
	/* Clean mapped pages are protected already; protecting the span
	 * from the first dirty one also covers holes and inactive pages,
	 * which is harmless. */
	for (i = 0; i < n; i++)
		if (w[i].was == P_ACTIVE && w[i].dirty) {
			err = uffd_writeprotect(&p->u, page_addr(m, w[i].idx),
						(last - w[i].idx + 1) * ps, true, 0);
			break;
		}
	if (!buf)
		err = -ENOMEM;
	for (i = 0; i < n && !err; i++) {
		const char *src = w[i].was == P_ACTIVE ? page_addr(m, w[i].idx)
						       : shadow_addr(m, w[i].idx);

		if (w[i].dirty)
			copy_protected_page(buf + i * ps, src, ps);
	}
	/* Write each contiguous run of dirty pages at once, all in flight. */
	for (i = 0, nr = 0; i < n; i = j) {
		for (j = i + 1; j < n && w[j].dirty == w[i].dirty &&
		     w[j].idx == w[j - 1].idx + 1; j++)
			;
		if (w[i].dirty) {
			runs[nr] = (struct wrun){ w[i].idx, j - i, buf + i * ps, err };
			first_of[nr++] = i;
		}
	}
	if (!err)
		store_write_runs(m, runs, nr);
	for (k = 0; k < nr; k++)
		for (i = first_of[k]; i < first_of[k] + (int)runs[k].n; i++)
			w[i].err = runs[k].err;
	for (i = 0; drop && i < n; i++)
		if (!w[i].err)
			zap_add(p, &z, w[i].was == P_INACTIVE ? shadow_addr(m, w[i].idx)
							      : page_addr(m, w[i].idx), ps);
	zap_flush(p, &z);
	if (first != SIZE_MAX)
		uffd_wake(&p->u, page_addr(m, first), (last - first + 1) * ps);
}

/*
 * Write back the dirty pages of [idx, idx+n) of m; with drop, also evict
 * every page there.  Waits for busy pages (after letting go of its own).
 * Returns 0 or the first error.
 */
static int writeback_range(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			   bool drop)
{
	struct wb_page w[BATCH_PAGES];
	size_t i = idx;
	int err = 0, nw, k;
	uint32_t seq;

	pthread_mutex_lock(&p->lock);
	while (i < idx + n) {
		/* Gather a batch, up to the first busy page. */
		for (nw = 0; i < idx + n && nw < BATCH_PAGES; i++) {
			enum page_state s = m->state[i];
			bool dirty = (m->pflags[i] & PF_DIRTY) &&
				     !(m->flags & UFFD_PAGER_PRIVATE);

			if (s == P_BUSY)
				break;
			if (s == P_BAD && drop) {
				/* Poisoned: zap the marker, read again later. */
				m->state[i] = P_EMPTY;
				madvise(page_addr(m, i), m->psize, MADV_DONTNEED);
				continue;
			}
			if ((s != P_ACTIVE && s != P_INACTIVE) || (!dirty && !drop) ||
			    (drop && (m->pflags[i] & PF_PINNED) && !m->dying))
				continue;
			m->state[i] = P_BUSY;
			/* A private change is only dropped, never written. */
			if (dirty || drop)
				clear_dirty(p, m, i);
			w[nw++] = (struct wb_page){ i, s, dirty, 0 };
		}
		if (nw) {
			m->users++;
			pthread_mutex_unlock(&p->lock);
			writeback_batch(p, m, w, nw, drop);
			pthread_mutex_lock(&p->lock);
			unuse(p, m);
		}
		seq = (uint32_t)uffd_region_read_seq(m->region);
		for (k = 0; k < nw; k++) {
			size_t pg = w[k].idx;

			if (w[k].err) {
				set_dirty(p, m, pg);
				m->state[pg] = w[k].was;
				p->eligible_gen++;
				if (!err)
					err = w[k].err;
			} else if (drop) {
				m->state[pg] = P_EMPTY;
				m->dropped_seq[pg] = seq;
				stream_clear(p, m, pg);
				if (m->pflags[pg] & PF_PINNED)
					p->pinned -= m->psize;
				m->pflags[pg] &= ~PF_PINNED;
				p->resident -= m->psize;
				if (w[k].was == P_INACTIVE)
					p->inactive -= m->psize;
				ST_ADD(p, evictions, 1);
			} else {
				m->state[pg] = w[k].was;
				p->eligible_gen++;
			}
		}
		pthread_cond_broadcast(&p->changed);
		for (k = 0; k < nw; k++)
			if (w[k].err) {
				pthread_mutex_unlock(&p->lock);
				report_error(m, w[k].idx, 1, w[k].err, true);
				pthread_mutex_lock(&p->lock);
			}
		if (i < idx + n && m->state[i] == P_BUSY)
			wait_settled(p, m, i);
	}
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* The map holding [addr, addr+len) and its page range; len 0 = all. */
static struct pmap *lookup_range(struct uffd_pager *p, void *addr, size_t len,
				 size_t *idx, size_t *n)
{
	struct pmap *m;
	char *a = addr;

	pthread_mutex_lock(&p->lock);
	m = find_map(p, addr);
	pthread_mutex_unlock(&p->lock);
	if (!m)
		return NULL;
	if (!len) {
		a = m->addr;
		len = m->len;
	}
	if (a + len > m->addr + m->len || a + len < a)
		return NULL;
	*idx = page_index(m, a);
	*n = page_index(m, a + len - 1) - *idx + 1;
	return m;
}

int uffd_pager_flush(struct uffd_pager *p, void *addr, size_t len)
{
	size_t idx, n;
	struct pmap *m;
	int ret;

	if (!p || !(m = lookup_range(p, addr, len, &idx, &n)))
		return -EINVAL;
	ret = writeback_range(p, m, idx, n, false);
	if (!ret && m->store->ops->flush && !(m->flags & UFFD_PAGER_PRIVATE))
		ret = m->store->ops->flush(m->store->data);
	return ret;
}

int uffd_pager_evict(struct uffd_pager *p, void *addr, size_t len)
{
	size_t idx, n;
	struct pmap *m;

	if (!p || !len || !(m = lookup_range(p, addr, len, &idx, &n)))
		return -EINVAL;
	return writeback_range(p, m, idx, n, true);
}

/* Take a map's remaining pages out of the buffer's accounts.  Lock held. */
static void forget_pages(struct uffd_pager *p, struct pmap *m)
{
	size_t i;

	for (i = 0; i < m->npages; i++) {
		if (m->state[i] == P_ACTIVE || m->state[i] == P_INACTIVE)
			p->resident -= m->psize;
		if (m->state[i] == P_INACTIVE)
			p->inactive -= m->psize;
		/* (Pinned, and a private change: each was counted.) */
		if (m->pflags[i] & PF_PINNED)
			p->pinned -= m->psize;
		if ((m->pflags[i] & PF_DIRTY) && (m->flags & UFFD_PAGER_PRIVATE))
			p->pinned -= m->psize;
		stream_clear(p, m, i);
		m->state[i] = P_EMPTY;
		m->pflags[i] = 0;
	}
}

int uffd_pager_unmap(struct uffd_pager *p, void *addr)
{
	struct pmap *m, **pp;
	int ret, r2;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	m = find_map(p, addr);
	if (!m || m->addr != addr || m->dying) {
		pthread_mutex_unlock(&p->lock);
		return -EINVAL;
	}
	m->dying = true;
	/* Read-ahead and eviction see dying and let go of it. */
	while (m->users)
		pthread_cond_wait(&p->changed, &p->lock);
	pthread_mutex_unlock(&p->lock);
	ret = writeback_range(p, m, 0, m->npages, true);
	if (ret)
		m->error = ret;
	r2 = uffd_handler_remove(m->region);
	pthread_mutex_lock(&p->lock);
	/* No fault can reach the map now, but one that came during the
	 * write-back may have filled a page again: it goes with the map. */
	forget_pages(p, m);
	for (pp = &p->maps; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	if (p->hand_map == m) {
		p->hand_map = NULL;
		p->hand_idx = 0;
	}
	queue_forget(p, m);
	/* Pending shadow frees may be this map's: done before its address
	 * range can be reused by another mapping. */
	zap_flush(p, &p->shadow_zap);
	pthread_mutex_unlock(&p->lock);
	ret = m->error ? m->error : r2;
	if (!ret && m->store->ops->flush && !(m->flags & UFFD_PAGER_PRIVATE))
		ret = m->store->ops->flush(m->store->data);
	munmap(m->addr, m->len);
	munmap(m->shadow, m->len);
	mm_free(m->state);
	mm_free(m->pflags);
	mm_free(m->gen);
	mm_free(m->dropped_seq);
	if (m->flags & UFFD_PAGER_OWN_STORE)
		uffd_store_free(m->store);
	free(m);
	return ret;
}

static void pin(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (!(m->pflags[idx] & PF_PINNED))
		p->pinned += m->psize;
	m->pflags[idx] |= PF_PINNED;
}

long uffd_pager_prefetch(struct uffd_pager *p, const struct uffd_pager_range *r,
			 int n, unsigned flags)
{
	long total = 0;
	int i;

	if (!p || n < 0 || (n && !r) || (flags & ~UFFD_PAGER_PIN))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		size_t idx, cnt, j;
		struct pmap *m = lookup_range(p, r[i].addr, r[i].len, &idx, &cnt);

		if (!m || !r[i].len)
			return -EINVAL;
		pthread_mutex_lock(&p->lock);
		for (j = idx; j < idx + cnt;) {
			size_t win = ra_pages(p, m), k;
			int ret;

			wait_settled(p, m, j);
			if ((flags & UFFD_PAGER_PIN) && m->state[j] != P_EMPTY)
				pin(p, m, j);
			if (win > idx + cnt - j)
				win = idx + cnt - j;
			k = claim_empty(p, m, j, win);
			if (!k) {
				j++;
				continue;
			}
			for (size_t q = j; q < j + k && (flags & UFFD_PAGER_PIN); q++)
				pin(p, m, q);
			m->users++;
			pthread_mutex_unlock(&p->lock);
			ret = fill_claimed(p, m, NULL, j, k, SIZE_MAX, false);
			pthread_mutex_lock(&p->lock);
			unuse(p, m);
			if (ret) {
				pthread_mutex_unlock(&p->lock);
				return ret;
			}
			total += k;
			j += k;
		}
		pthread_mutex_unlock(&p->lock);
	}
	return total;
}

int uffd_pager_stats(struct uffd_pager *p, struct uffd_pager_stats *s)
{
	const uint64_t *from;
	uint64_t *to = (uint64_t *)s;
	size_t i;

	if (!p || !s)
		return -EINVAL;
	from = (const uint64_t *)&p->st;
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
	s->resident_bytes = p->resident;
	s->resident_peak_bytes = p->resident_peak;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int uffd_pager_config(struct uffd_pager *p, struct uffd_pager_opts *o)
{
	size_t sz;

	if (!p || !o || o->sz < uffd__offsetofend(struct uffd_pager_opts, arg))
		return -EINVAL;
	/* An older caller's struct is shorter: fill only what it has. */
	sz = o->sz < sizeof(p->o) ? o->sz : sizeof(p->o);
	memcpy(o, &p->o, sz);
	o->sz = sz;
	return 0;
}

int uffd_pager_free(struct uffd_pager *p)
{
	int ret = 0, i;

	if (!p)
		return 0;
	while (p->maps) {
		int r = uffd_pager_unmap(p, p->maps->addr);

		if (r && !ret)
			ret = r;
	}
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	if (p->h)
		uffd_handler_free(p->h);
	uffd_close(&p->u);
	if (p->pidfd >= 0)
		close(p->pidfd);
	{
		struct bounce *b = pthread_getspecific(p->bounce_key);

		if (b)
			bounce_free(b);
	}
	pthread_key_delete(p->bounce_key);
	pthread_cond_destroy(&p->changed);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->q);
	free(p);
	return ret;
}
