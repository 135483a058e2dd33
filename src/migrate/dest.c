/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The destination of a migration: precopied pages placed in memory, the
 * switchover, then faults answered from the network.
 *
 * Every page has a state, one byte changed only by compare-and-swap:
 *
 *   ZERO       its current contents are zeros and nothing is placed
 *   CURRENT    its current contents are placed (anonymous: in the shadow,
 *              or mapped; shmem or hugetlbfs: in the page cache, through a
 *              second mapping)
 *   NEED       the switchover said the contents here are not current
 *   REQUESTED  NEED, and a fault asked the source for it
 *   INSTALLING a thread is mapping it (whoever moved it here)
 *   DONE       mapped after the switchover
 *   DROPPED    the program removed or unmapped it: nothing may map it again
 *   POISONED   the source is gone: touching it raises SIGBUS
 *
 * Before the switchover nothing is registered.  Precopied pages of file
 * memory go into the page cache through a second mapping; those of
 * anonymous memory into a shadow mapping, from which a page is moved into
 * place (UFFDIO_MOVE: page tables only, no copy) at its first touch, or
 * by the fault thread when it has nothing else to do.  So the switchover
 * discards nothing - it only marks the pages it names NEED and registers
 * the regions (MISSING for anonymous memory, MISSING and MINOR for file
 * memory) - and the pause does not grow with the dirty set: freeing a page
 * costs about 2 us here, and a hot set of 64 MiB would have cost 30 ms.  A fault on a CURRENT
 * page is one UFFDIO_CONTINUE (file) or UFFDIO_MOVE (anonymous), on a NEED
 * page a request.  (Where the kernel has no UFFDIO_MOVE, and for
 * stop-and-copy, anonymous pages are copied straight into place and the
 * switchover discards the stale ones with MADV_DONTNEED, before
 * registering, so without events.)
 *
 * Two threads.  The fault thread runs the runtime handler in epoll mode
 * (uffd_handler_dispatch) and reads the urgent connection in the same
 * loop, polling both without sleeping for spin_us after the last message
 * (longer while a request is out), so a request costs no thread hand-off
 * on this side: the faulting thread's message is read, the request sent,
 * the answer read and mapped by one thread that does not sleep meanwhile.
 * The stream thread receives everything else, including the background
 * pages.  Once every page the switchover named is in, between two looks
 * at faults and answers, the fault thread moves a run of the shadow's
 * pages into place instead of spinning idle (not before: a move flushes
 * the TLBs of the program's CPUs, which on a busy VM takes long enough to
 * be seen in the requests' tail).  It reads the events itself, so it
 * needs no lock for that
 * (a mover thread would hold the event reading off for each run, and if
 * preempted meanwhile on a busy machine, hold up the urgent path for a
 * time slice).  Background fills give way (one sched_yield per run) while
 * a request is out.
 *
 * The one race that matters: the program's MADV_DONTNEED or munmap of a
 * page while its contents arrive.  The kernel fails fills with EAGAIN from
 * the start of such a call until its event is read, and lets the call go
 * on (zapping) as soon as it is read - before the event callback has run.
 * The fault thread reads events and, between two reads, fills pages, so
 * for it an event read is an event applied.  The stream thread fills with
 * the runtime's message reading held off (uffd__handler_lock_events) from
 * "is the page still wanted?" to the end of the fill, a run of at most
 * RUN_MAX pages.  Either way a fill cannot land
 * after a zap whose event has not marked the page DROPPED.
 *
 * Before the pause the source's SYNC comes back only once everything
 * before it is placed, and COMPLETE goes out only after RESUMED.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "mig.h"
#include "runtime/events_lock.h"
#include "util/clock.h"
#include "util/opts.h"
#include "util/sock.h"
#include "util/stats.h"

enum {
	ST_ZERO = 0,
	ST_CURRENT,
	ST_NEED,
	ST_REQUESTED,
	ST_INSTALLING,
	ST_DONE,
	ST_DROPPED,
	ST_POISONED,
};

/*
 * Pages mapped in one fill by the stream thread (with events held off),
 * and while a request is out: the fault thread reads no fault meanwhile,
 * and a fill into memory the host took back costs 12-16 us a page here
 * (page reporting), so 16-page fills held the reading off 0.3-1.1 ms -
 * the tail of the requests that came then.
 */
#define RUN_MAX			16
#define RUN_MAX_URGENT		2
/* While a request is out, the fault thread polls this many times longer. */
#define OUTSTANDING_SPIN	10

/* Where a piece of a region's pages is now (mremap moves pieces). */
struct dest_seg {
	uint64_t start;			/* address of page `page` */
	uint64_t page;			/* first page of the region in it */
	uint64_t npages;
};

struct dest_region {
	struct uffd_mig_dest *d;
	int index;
	struct mig_region m;
	bool minor;			/* file memory: MINOR faults, CONTINUE */
	int fd;
	uint64_t offset;
	uint8_t *alias;			/* the file's second mapping */
	uint8_t *shadow;		/* anonymous: where precopied pages wait */
	struct dest_seg *segs;		/* under the handler's event lock */
	int nsegs, cap;
};

struct uffd_mig_dest {
	struct uffd_mig_dest_opts o;
	struct dest_region *r;
	struct mig_region *mr;
	struct mig_layout_region *lr;
	struct mig_layout lay;
	uint64_t npages;
	uint8_t *state;
	uint64_t *t_first;		/* first fault on a page being fetched */
	uint64_t *wait_sum;		/* sum of its faults' times */
	uint32_t *waiters;		/* its faults */
	size_t aux_len;
	uint64_t remaining;		/* atomic: pages to place before the memory
					   can be unregistered: NEED ones, and the
					   shadow's CURRENT ones */
	uint64_t shadow_current;	/* CURRENT pages in shadows (stream thread,
					   until the switchover) */
	uint64_t fetch_left;		/* atomic: named pages not settled yet */
	uint64_t outstanding;		/* atomic: REQUESTED pages */

	struct uffd u;
	struct uffd_handler *h;
	bool registered;
	struct mig_conn stream, urgent;
	int links_up;			/* atomic: handshakes done, not broken */
	int stop_efd, fault_efd;
	int stopping, fault_stop;	/* atomic */
	pthread_t stream_thread, fault_thread;
	bool stream_started, fault_started;
	uint64_t move_cursor;		/* fault thread: next shadow page to look at */
	uint32_t mode;			/* the source's enum uffd_mig_mode */
	int switched;			/* atomic */
	int resumed_sent;		/* atomic: RESUMED is out */
	int complete_sent;		/* atomic */
	int urgent_ended;		/* atomic */
	bool background_done, resuming, have_session;
	uint64_t session;
	uint64_t last_urgent_rx;	/* fault thread */
	uint8_t *rx, *urx;
	size_t rx_cap;
	struct mig_req pend[MIG_MAX_BATCH];	/* fault thread's requests */
	int npend;

	struct mig_status st;
	uint64_t c_round, c_received, c_zero, c_switch_pages, c_requested, c_background;
	uint64_t c_answers, c_continued, c_moved, c_local_zero, c_dup, c_dropped, c_poisoned;
	uint64_t c_out, c_in, c_resumes, c_blocked, c_req_count, c_req_sum, c_req_max;
	uint64_t hist[UFFD_MIG_HIST_BUCKETS];
	uint64_t t0, t_switch, t_resumed, t_end;
};

static uint64_t deadline(const struct uffd_mig_dest *d)
{
	return uffd__deadline_ms(d->o.timeout_ms);
}

static uint8_t state_get(const struct uffd_mig_dest *d, uint64_t g)
{
	return __atomic_load_n(&d->state[g], __ATOMIC_ACQUIRE);
}

static void state_set(struct uffd_mig_dest *d, uint64_t g, uint8_t s)
{
	__atomic_store_n(&d->state[g], s, __ATOMIC_RELEASE);
}

static bool state_cas(struct uffd_mig_dest *d, uint64_t g, uint8_t *old, uint8_t new)
{
	return __atomic_compare_exchange_n(&d->state[g], old, new, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static struct dest_region *region_of(struct uffd_mig_dest *d, uint64_t g)
{
	int lo = 0, hi = d->lay.nregions - 1;

	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;

		if (d->r[mid].m.first <= g)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &d->r[lo];
}

/* Where page `page` of dr is now, or 0 if it is unmapped. */
static uint64_t page_addr(const struct dest_region *dr, uint64_t page)
{
	int i;

	for (i = 0; i < dr->nsegs; i++) {
		const struct dest_seg *s = &dr->segs[i];

		if (page >= s->page && page < s->page + s->npages)
			return s->start + (page - s->page) * dr->m.page_size;
	}
	return 0;
}

/* The global page at addr in dr, or UINT64_MAX. */
static uint64_t page_at(const struct dest_region *dr, uint64_t addr)
{
	int i;

	for (i = 0; i < dr->nsegs; i++) {
		const struct dest_seg *s = &dr->segs[i];

		if (addr >= s->start && addr < s->start + s->npages * dr->m.page_size)
			return dr->m.first + s->page + (addr - s->start) / dr->m.page_size;
	}
	return UINT64_MAX;
}

/* ---- failures ------------------------------------------------------------ */

static void shut_links(struct uffd_mig_dest *d)
{
	__atomic_store_n(&d->links_up, 0, __ATOMIC_RELEASE);
	mig_conn_shutdown(&d->stream, SHUT_RDWR);
	if (!d->o.one_channel)
		mig_conn_shutdown(&d->urgent, SHUT_RDWR);
}

/* The migration fails: the source is told why (best effort). */
static void fail(struct uffd_mig_dest *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct uffd_mig_dest *d, int err, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!mig_set_error(&d->st, UFFD_MIG_FAILED, err, "%s", msg))
		return;
	/* The reason goes out last on the stream; the stream thread drains
	 * what the source still sends until it has read it (drain_stream). */
	mig_send_error(&d->stream, err, __atomic_load_n(&d->switched, __ATOMIC_ACQUIRE) ?
		       MIG_ERR_RESUMED : 0, msg);
	__atomic_store_n(&d->links_up, 0, __ATOMIC_RELEASE);
	mig_conn_shutdown(&d->stream, SHUT_WR);
	if (!d->o.one_channel)
		mig_conn_shutdown(&d->urgent, SHUT_RDWR);
}

/*
 * After a failure here: read and drop what the source still sends until
 * it stops (it has read our ERROR and ends the connection) or a while
 * passes, so that the source's sends succeed until it reads why.
 */
#define DRAIN_MS 2000

static void drain_stream(struct uffd_mig_dest *d)
{
	uint64_t dl = uffd__deadline_ms(DRAIN_MS);
	char buf[16384];

	while (uffd__wait_readable(mig_conn_fd(&d->stream), d->stop_efd, dl) > 0) {
		ssize_t n = recv(mig_conn_fd(&d->stream), buf, sizeof(buf), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
	mig_conn_shutdown(&d->stream, SHUT_RDWR);
}

/*
 * A connection broke or the peer sent garbage.  Before the switchover the
 * migration fails (the program still runs on the source); after it, once
 * every page is here, nothing is lost; otherwise it is broken, the
 * faulting threads wait, and it can be resumed.
 */
static void link_failed(struct uffd_mig_dest *d, int err, const char *what)
{
	if (__atomic_load_n(&d->complete_sent, __ATOMIC_ACQUIRE)) {
		shut_links(d);
		return;
	}
	if (!__atomic_load_n(&d->switched, __ATOMIC_ACQUIRE) || !mig_link_error(err)) {
		fail(d, err, "%s: %s", what, strerror(-err));
		return;
	}
	if (mig_set_error(&d->st, UFFD_MIG_BROKEN, err, "%s: %s", what, strerror(-err)))
		shut_links(d);
}

static void peer_error(struct uffd_mig_dest *d, const struct mig_msg *m)
{
	mig_set_error(&d->st, UFFD_MIG_FAILED, m->error.code ? -(int)m->error.code : -EIO,
		      "source: %.*s", (int)m->error.len, m->error.text);
	shut_links(d);
}

/* A page arrived with a CRC that does not match: fail, loudly. */
static void bad_page(struct uffd_mig_dest *d, const struct mig_msg *m, int bad, const char *conn)
{
	fail(d, -EBADMSG, "%s: page %llu of region %u: CRC mismatch", conn,
	     (unsigned long long)m->pages.p[bad].page, m->pages.p[bad].region);
}

/* ---- the end of the pages ------------------------------------------------- */

/* Every page is here: say so (COMPLETE on the stream, END on urgent). */
static void pages_complete(struct uffd_mig_dest *d)
{
	if (__atomic_exchange_n(&d->complete_sent, 1, __ATOMIC_ACQ_REL))
		return;
	if (mig_send(&d->stream, MIG_COMPLETE, 0, NULL, 0, deadline(d)) ||
	    (!d->o.one_channel && mig_send(&d->urgent, MIG_END, 0, NULL, 0, deadline(d))))
		shut_links(d);		/* the goodbyes are lost; nothing else */
}

static void wake_fault_thread(struct uffd_mig_dest *d)
{
	uint64_t one = 1;

	if (write(d->fault_efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, so the thread is woken anyway */
	}
}

/* A page that was NEED or REQUESTED (prior) is settled, or one of the
 * shadow's CURRENT ones. */
static void settled(struct uffd_mig_dest *d, uint8_t prior)
{
	if (prior == ST_REQUESTED)
		__atomic_fetch_sub(&d->outstanding, 1, __ATOMIC_RELAXED);
	/* The last named page: the fault thread, which may be asleep with no
	 * fault to wake it, has the shadow's pages to move into place now. */
	if ((prior == ST_NEED || prior == ST_REQUESTED) &&
	    __atomic_sub_fetch(&d->fetch_left, 1, __ATOMIC_ACQ_REL) == 0)
		wake_fault_thread(d);
	/* COMPLETE follows RESUMED: whichever of this and the switchover
	 * comes second sees the other (both sequentially consistent). */
	if (__atomic_sub_fetch(&d->remaining, 1, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&d->resumed_sent, __ATOMIC_SEQ_CST))
		pages_complete(d);
}

/* A fetched page is mapped: account for the threads that waited. */
static void page_installed(struct uffd_mig_dest *d, uint64_t g, uint8_t prior, uint64_t now,
			   bool answer)
{
	uint64_t t = __atomic_load_n(&d->t_first[g], __ATOMIC_ACQUIRE);

	state_set(d, g, ST_DONE);
	if (t) {
		uint64_t lat = now - t, w = __atomic_load_n(&d->waiters[g], __ATOMIC_ACQUIRE);
		uint64_t sum = __atomic_load_n(&d->wait_sum[g], __ATOMIC_ACQUIRE);

		mig_hist_add(d->hist, lat);
		STAT_ADD(d, c_req_count, 1);
		STAT_ADD(d, c_req_sum, lat);
		if (lat > __atomic_load_n(&d->c_req_max, __ATOMIC_RELAXED))
			__atomic_store_n(&d->c_req_max, lat, __ATOMIC_RELAXED);
		if (w * now > sum)
			STAT_ADD(d, c_blocked, w * now - sum);
	}
	__atomic_fetch_add(answer ? &d->c_answers : &d->c_background, 1, __ATOMIC_RELAXED);
	settled(d, prior);
}

/* The program removed or unmapped page g: nothing may map it any more. */
static void page_dropped(struct uffd_mig_dest *d, uint64_t g)
{
	uint8_t s = state_get(d, g);

	for (;;) {
		switch (s) {
		case ST_NEED:
		case ST_REQUESTED:
			if (!state_cas(d, g, &s, ST_DROPPED))
				continue;
			settled(d, s);
			return;
		case ST_DROPPED:
		case ST_POISONED:
			return;
		case ST_CURRENT:
			if (!state_cas(d, g, &s, ST_DROPPED))
				continue;
			if (region_of(d, g)->shadow)	/* it will not be moved */
				settled(d, s);
			return;
		default:	/* ZERO, DONE (INSTALLING: never here) */
			if (state_cas(d, g, &s, ST_DROPPED))
				return;
			continue;
		}
	}
}

/* ---- placing and installing pages ---------------------------------------- */

/* Before the switchover: copy into place (nothing is registered). */
static void place_precopy(struct uffd_mig_dest *d, const struct mig_msg *m)
{
	int i, zeros = 0;

	for (i = 0; i < m->pages.n; i++) {
		const struct mig_page *p = &m->pages.p[i];
		struct dest_region *dr = &d->r[p->region];
		uint64_t g = dr->m.first + p->page;
		uint8_t *dst = dr->minor ? dr->alias + p->page * dr->m.page_size :
			       dr->shadow ? dr->shadow + p->page * dr->m.page_size :
			       (uint8_t *)(uintptr_t)(dr->m.addr + p->page * dr->m.page_size);

		if (p->data) {
			memcpy(dst, p->data, dr->m.page_size);
			if (state_get(d, g) != ST_CURRENT && dr->shadow)
				d->shadow_current++;
			state_set(d, g, ST_CURRENT);
		} else {
			zeros++;
			if (state_get(d, g) == ST_CURRENT)
				memset(dst, 0, dr->m.page_size);	/* stays placed */
		}
	}
	STAT_ADD(d, c_received, m->pages.n);
	STAT_ADD(d, c_zero, zeros);
}

/* Pages [first, first+n) of dr, claimed (INSTALLING) with their prior
 * states, and their data (NULL: zeros). */
struct run {
	struct dest_region *dr;
	uint64_t first;
	int n;
	const uint8_t *data;
	bool answer;
	uint8_t prior[MIG_MAX_BATCH];
};

/* Claim page g: NEED/REQUESTED -> INSTALLING.  The prior state or 0. */
static uint8_t claim(struct uffd_mig_dest *d, uint64_t g)
{
	uint8_t s = state_get(d, g);

	while (s == ST_NEED || s == ST_REQUESTED)
		if (state_cas(d, g, &s, ST_INSTALLING))
			return s;
	return 0;
}

/* Claim a CURRENT page of a shadow, to move it into place. */
static bool claim_current(struct uffd_mig_dest *d, uint64_t g)
{
	uint8_t s = ST_CURRENT;

	return state_cas(d, g, &s, ST_INSTALLING);
}

/*
 * Move claimed pages [page, page+n) of dr from its shadow into place.
 * Pages moved become DONE; the rest is given back CURRENT.  Returns the
 * pages moved, or -EAGAIN (events pending: nothing given back yet is
 * lost, read them and try again) or another -errno.
 */
static int move_run(struct uffd_mig_dest *d, struct dest_region *dr, uint64_t page, int n)
{
	uint64_t ps = dr->m.page_size, addr = page_addr(dr, page), g0 = dr->m.first + page;
	size_t done = 0;
	int i, k, ret;

	if (!addr) {		/* unmapped: nothing to move to */
		for (i = 0; i < n; i++) {
			state_set(d, g0 + i, ST_DROPPED);
			settled(d, ST_CURRENT);
		}
		return 0;
	}
	if (dr->nsegs > 1)
		n = 1;
	ret = uffd_move(&d->u, (void *)(uintptr_t)addr, dr->shadow + page * ps, n * ps, 0, &done);
	k = (int)(done / ps);
	for (i = 0; i < k; i++) {
		state_set(d, g0 + i, ST_DONE);
		settled(d, ST_CURRENT);
	}
	if (ret == -EEXIST) {		/* mapped meanwhile: the shadow's is stale */
		state_set(d, g0 + k, ST_DONE);
		settled(d, ST_CURRENT);
		k++;
		ret = 0;
	} else if (ret == -ENOENT) {
		state_set(d, g0 + k, ST_DROPPED);
		settled(d, ST_CURRENT);
		k++;
		ret = 0;
	}
	for (i = k; i < n; i++)
		state_set(d, g0 + i, ST_CURRENT);
	return ret ? ret : k;
}

/* A page that arrived and was not wanted: counted, dropped. */
static void unwanted(struct uffd_mig_dest *d, uint64_t g)
{
	uint8_t s = state_get(d, g);

	if (s == ST_DROPPED)
		STAT_ADD(d, c_dropped, 1);
	else if (s != ST_POISONED)
		STAT_ADD(d, c_dup, 1);
}

static int fill(struct uffd_mig_dest *d, struct dest_region *dr, uint64_t addr, uint64_t page,
		const uint8_t *data, size_t len, size_t *done)
{
	if (dr->minor) {
		uint8_t *alias = dr->alias + page * dr->m.page_size;

		if (data)
			memcpy(alias, data, len);
		else
			memset(alias, 0, len);
		return uffd_continue(&d->u, (void *)(uintptr_t)addr, len, 0, done);
	}
	if (!data)
		return uffd_zeropage(&d->u, (void *)(uintptr_t)addr, len, 0, done);
	return uffd_copy(&d->u, (void *)(uintptr_t)addr, data, len, 0, done);
}

/* Give back pages [from, n) of a run we could not fill now. */
static void unclaim(struct uffd_mig_dest *d, const struct run *r, int from)
{
	int i;

	for (i = from; i < r->n; i++)
		state_set(d, r->dr->m.first + r->first + i, r->prior[i]);
}

/*
 * Map a claimed run.  0; -EAGAIN when events are pending (pages
 * [*left, n) are given back: read the events and try them again); or an
 * error that fails the migration.
 */
static int install_run(struct uffd_mig_dest *d, struct run *r, int *left)
{
	struct dest_region *dr = r->dr;
	uint32_t ps = dr->m.page_size;
	int off = 0, ret = 0;

	while (off < r->n) {
		uint64_t page = r->first + off, addr = page_addr(dr, page), now;
		size_t done = 0;
		int k, cnt = r->n - off;

		if (!addr) {		/* unmapped meanwhile */
			for (; off < r->n; off++) {
				state_set(d, dr->m.first + r->first + off, ST_DROPPED);
				STAT_ADD(d, c_dropped, 1);
				settled(d, r->prior[off]);
			}
			break;
		}
		/* A run crosses a moved piece's edge only page by page. */
		if (dr->nsegs > 1)
			cnt = 1;
		ret = fill(d, dr, addr, page, r->data ? r->data + (size_t)off * ps : NULL,
			   (size_t)cnt * ps, &done);
		now = mono_ns();
		for (k = 0; k < (int)(done / ps); k++, off++)
			page_installed(d, dr->m.first + r->first + off, r->prior[off], now, r->answer);
		if (!ret)
			continue;
		switch (ret) {
		case -EEXIST:	/* mapped by someone else: keep it */
			state_set(d, dr->m.first + r->first + off, ST_DONE);
			STAT_ADD(d, c_dup, 1);
			settled(d, r->prior[off]);
			off++;
			ret = 0;
			continue;
		case -ENOENT:	/* gone */
			state_set(d, dr->m.first + r->first + off, ST_DROPPED);
			STAT_ADD(d, c_dropped, 1);
			settled(d, r->prior[off]);
			off++;
			ret = 0;
			continue;
		case -EAGAIN:
			unclaim(d, r, off);
			*left = off;
			return -EAGAIN;
		default:
			unclaim(d, r, off);
			fail(d, ret, "mapping page %llu of region %d: %s",
			     (unsigned long long)page, dr->index, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/*
 * Install the pages of a PAGES message that are still wanted, in runs of
 * consecutive pages.  locked: called from the stream thread, which holds
 * the event reading off around each run; else from the fault thread,
 * which reads the events itself on -EAGAIN.
 */
static int install_pages(struct uffd_mig_dest *d, const struct mig_msg *m, bool locked)
{
	int i, max, ret = 0, zeros = 0;

	for (i = 0; i < m->pages.n; i++)
		zeros += !m->pages.p[i].data;
	STAT_ADD(d, c_received, m->pages.n);
	STAT_ADD(d, c_zero, zeros);
	i = 0;
	while (i < m->pages.n && !ret) {
		struct run r = { .n = 0 };
		int start = i, left = 0;

		max = MIG_MAX_BATCH;
		if (locked) {
			/* The urgent path first: let the fault thread run. */
			max = RUN_MAX;
			if (__atomic_load_n(&d->outstanding, __ATOMIC_RELAXED)) {
				sched_yield();
				max = RUN_MAX_URGENT;
			}
			uffd__handler_lock_events(d->h);
		}
		/* A run: consecutive entries of consecutive pages, all wanted. */
		for (; i < m->pages.n && r.n < max; i++) {
			const struct mig_page *p = &m->pages.p[i];
			struct dest_region *dr = &d->r[p->region];
			uint64_t g = dr->m.first + p->page;
			uint8_t prior;

			if (r.n && (dr != r.dr || p->page != r.first + r.n || !p->data != !r.data ||
				    (p->data && p->data != r.data + (size_t)r.n * dr->m.page_size)))
				break;
			prior = claim(d, g);
			if (!prior) {
				unwanted(d, g);
				if (r.n) {
					i++;
					break;
				}
				start = i + 1;
				continue;
			}
			if (!r.n)
				r = (struct run){ .dr = dr, .first = p->page, .data = p->data,
						  .answer = p->flags & MIG_PAGE_ANSWER };
			r.prior[r.n++] = prior;
		}
		if (r.n)
			ret = install_run(d, &r, &left);
		if (locked)
			uffd__handler_unlock_events(d->h);
		if (ret == -EAGAIN) {
			/* Events are pending: let them be read, then try the
			 * pages given back again (they may be dropped now). */
			i = start + left;
			ret = 0;
			if (locked)
				sched_yield();	/* the fault thread reads them */
			else
				uffd_handler_dispatch(d->h);
		}
	}
	return ret;
}

/* ---- faults --------------------------------------------------------------- */

static int flush_requests(struct uffd_mig_dest *d)
{
	uint8_t buf[MIG_MAX_BATCH * MIG_REQ_ENTRY];
	int i, n = d->npend, ret;

	if (!n)
		return 0;
	d->npend = 0;
	if (!__atomic_load_n(&d->links_up, __ATOMIC_ACQUIRE))
		return 0;	/* they stay REQUESTED: asked again on resume */
	for (i = 0; i < n; i++) {
		put_le32(buf + i * MIG_REQ_ENTRY, d->pend[i].region);
		put_le32(buf + i * MIG_REQ_ENTRY + 4, 0);
		put_le64(buf + i * MIG_REQ_ENTRY + 8, d->pend[i].page);
	}
	ret = mig_send(d->o.one_channel ? &d->stream : &d->urgent, MIG_REQUEST, n, buf,
		       n * MIG_REQ_ENTRY, deadline(d));
	if (ret)
		link_failed(d, ret, d->o.one_channel ? "stream: a request" : "urgent: a request");
	else
		STAT_ADD(d, c_requested, n);
	return ret;
}

/* A fault on a page that has to come from the source: wait for it. */
static int fetch(struct uffd_mig_dest *d, struct dest_region *dr, uint64_t g, uint8_t s)
{
	uint64_t now = mono_ns();

	__atomic_fetch_add(&d->waiters[g], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&d->wait_sum[g], now, __ATOMIC_RELAXED);
	if (s != ST_NEED)
		return UFFD_FAULT_DEFERRED;	/* asked already, or arriving */
	if (!state_cas(d, g, &s, ST_REQUESTED))
		return UFFD_FAULT_DEFERRED;	/* arriving now: the fill wakes us */
	__atomic_store_n(&d->t_first[g], now, __ATOMIC_RELEASE);
	__atomic_fetch_add(&d->outstanding, 1, __ATOMIC_RELAXED);
	d->pend[d->npend++] = (struct mig_req){ dr->index, g - dr->m.first };
	if (d->npend == MIG_MAX_BATCH)
		flush_requests(d);
	return UFFD_FAULT_DEFERRED;
}

/* Pages moved along with a faulting one (a sequential reader's next). */
#define MOVE_AHEAD		16

/*
 * A fault on a page waiting in the shadow: move it, and the CURRENT pages
 * after it, into place (the move wakes the faulting thread).  1 when the
 * page was no longer CURRENT (look at its state again); -EAGAIN when
 * events are pending (the runtime retries the fault once they are read:
 * never a default zero page here).
 */
static int move_at_fault(struct uffd_mig_dest *d, struct dest_region *dr, uint64_t g)
{
	uint64_t page = g - dr->m.first;
	int n, ret;

	if (!claim_current(d, g))
		return 1;
	for (n = 1; n < MOVE_AHEAD && page + n < dr->m.npages && claim_current(d, g + n); n++)
		;
	ret = move_run(d, dr, page, n);
	if (ret < 0)
		return ret;
	STAT_ADD(d, c_continued, 1);
	STAT_ADD(d, c_moved, ret - 1);
	return UFFD_FAULT_DEFERRED;	/* resolved: the move woke it */
}

/*
 * Move every CURRENT page of the shadows into place, in runs of at most
 * MOVE_RUN pages, each with the event reading held off (as for fills).
 * stop: checked between runs (NULL: never).  0 or -errno (not -EAGAIN:
 * pending events are let through and the run tried again).
 */
#define MOVE_RUN		64

static int move_all_current(struct uffd_mig_dest *d, const int *stop, bool yield)
{
	uint64_t g = 0;
	int ret = 0;

	while (g < d->npages && !ret && !(stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))) {
		struct dest_region *dr = region_of(d, g);
		uint64_t end = dr->m.first + dr->m.npages;
		int n = 0;

		if (!dr->shadow) {
			g = end;
			continue;
		}
		if (state_get(d, g) != ST_CURRENT) {
			g++;
			continue;
		}
		if (yield && __atomic_load_n(&d->outstanding, __ATOMIC_RELAXED))
			sched_yield();	/* the urgent path first */
		uffd__handler_lock_events(d->h);
		while (n < MOVE_RUN && g + n < end && claim_current(d, g + n))
			n++;
		ret = n ? move_run(d, dr, g - dr->m.first, n) : 0;
		uffd__handler_unlock_events(d->h);
		if (ret == -EAGAIN) {
			ret = 0;
			sched_yield();	/* the fault thread reads them */
			if (!d->fault_started)
				uffd_handler_dispatch(d->h);
			continue;
		}
		if (ret >= 0) {
			STAT_ADD(d, c_moved, ret);
			g += ret ? ret : 1;
			ret = 0;
		}
	}
	return ret;
}

/*
 * The fault thread, with nothing else to do: move the next run of the
 * shadows' CURRENT pages into place (no lock: this thread reads the
 * events).  The pages looked at (moved, or found not CURRENT), 0 when the
 * shadows are empty, or -EAGAIN (events pending: read them first).
 */
static int move_some(struct uffd_mig_dest *d)
{
	uint64_t g = d->move_cursor;
	int ret;

	while (g < d->npages) {
		struct dest_region *dr = region_of(d, g);
		uint64_t end = dr->m.first + dr->m.npages;
		int n = 0, scanned = 0;

		if (!dr->shadow) {
			g = end;
			continue;
		}
		/* Skip what is not waiting there (a bounded look per call). */
		while (g < end && state_get(d, g) != ST_CURRENT && scanned < 4096) {
			g++;
			scanned++;
		}
		d->move_cursor = g;
		if (g == end)
			continue;
		if (scanned == 4096)
			return scanned;
		while (n < MOVE_RUN && g + n < end && claim_current(d, g + n))
			n++;
		if (!n) {
			d->move_cursor = g + 1;
			return 1;
		}
		ret = move_run(d, dr, g - dr->m.first, n);
		if (ret < 0)
			return ret;
		STAT_ADD(d, c_moved, ret);
		d->move_cursor = g + (ret ? ret : 1);
		return ret ? ret : 1;
	}
	d->move_cursor = g;
	return 0;
}

static void free_shadows(struct uffd_mig_dest *d)
{
	int i;

	for (i = 0; i < d->lay.nregions; i++)
		if (d->r[i].shadow) {
			munmap(d->r[i].shadow, d->r[i].m.len);
			d->r[i].shadow = NULL;
		}
}

static int dest_fault(struct uffd_fault *f)
{
	struct dest_region *dr = f->data;
	struct uffd_mig_dest *d = dr->d;
	uint64_t g = page_at(dr, (uintptr_t)f->addr);
	bool minor = f->kind == UFFD_FAULT_MINOR;
	uint8_t s;
	int ret;

	if (g == UINT64_MAX)
		return -EFAULT;		/* not a page we know: SIGBUS, never zeros */
	s = state_get(d, g);
	for (;;) {
		switch (s) {
		case ST_CURRENT:
			if (dr->shadow && !minor) {
				ret = move_at_fault(d, dr, g);
				if (ret != 1)
					return ret;
				s = state_get(d, g);
				continue;
			}
			if (!minor)
				return -EFAULT;	/* placed, yet missing: SIGBUS */
			ret = uffd_fault_continue(f, dr->m.page_size);
			if (!ret && state_cas(d, g, &s, ST_DONE))
				STAT_ADD(d, c_continued, 1);
			return ret;
		case ST_ZERO:
			/* In the page cache only as the zeros a hugetlbfs
			 * region took at start: CONTINUE maps them. */
			ret = minor ? uffd_fault_continue(f, dr->m.page_size) :
				      uffd_fault_zero(f, dr->m.page_size);
			if (!ret && state_cas(d, g, &s, ST_DONE))
				STAT_ADD(d, c_local_zero, 1);
			return ret;
		case ST_DONE:
		case ST_DROPPED:	/* the program removed it: zeros */
			return minor ? uffd_fault_continue(f, dr->m.page_size) :
				       uffd_fault_zero(f, dr->m.page_size);
		case ST_NEED:
		case ST_REQUESTED:
		case ST_INSTALLING:
			return fetch(d, dr, g, s);
		default:		/* POISONED: the marker raises SIGBUS */
			return -EFAULT;
		}
	}
}

/* Apply fn to the global pages of dr's pieces within [start, end). */
static void each_page(struct uffd_mig_dest *d, struct dest_region *dr, uint64_t start,
		      uint64_t end, void (*fn)(struct uffd_mig_dest *, uint64_t))
{
	uint64_t ps = dr->m.page_size, a, b;
	int i;

	for (i = 0; i < dr->nsegs; i++) {
		const struct dest_seg *s = &dr->segs[i];

		a = start > s->start ? start / ps * ps : s->start;
		b = s->start + s->npages * ps;
		if (end < b)
			b = end;
		for (; a < b; a += ps)
			fn(d, dr->m.first + s->page + (a - s->start) / ps);
	}
}

static int seg_push(struct dest_region *dr, struct dest_seg s)
{
	if (!s.npages)
		return 0;
	if (dr->nsegs == dr->cap) {
		int cap = dr->cap ? dr->cap * 2 : 4;
		struct dest_seg *v = realloc(dr->segs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		dr->segs = v;
		dr->cap = cap;
	}
	dr->segs[dr->nsegs++] = s;
	return 0;
}

/*
 * Cut [start, end) out of dr's pieces; with delta != 0 (a move) the part
 * cut out is put back shifted by delta, else it is gone.
 */
static void seg_cut(struct dest_region *dr, uint64_t start, uint64_t end, int64_t delta, bool keep)
{
	uint64_t ps = dr->m.page_size;
	int i, n = dr->nsegs;

	for (i = 0; i < n; i++) {
		struct dest_seg s = dr->segs[i];
		uint64_t a = s.start, b = s.start + s.npages * ps, ca, cb;

		if (end <= a || start >= b)
			continue;
		ca = start > a ? start : a;
		cb = end < b ? end : b;
		/* The piece shrinks to what is before the cut... */
		dr->segs[i].npages = (ca - a) / ps;
		/* ...and what is after it and what was cut become pieces. */
		seg_push(dr, (struct dest_seg){ cb, s.page + (cb - a) / ps, (b - cb) / ps });
		if (keep)
			seg_push(dr, (struct dest_seg){ ca + delta, s.page + (ca - a) / ps,
							(cb - ca) / ps });
	}
	/* Drop empty pieces. */
	for (i = 0, n = 0; i < dr->nsegs; i++)
		if (dr->segs[i].npages)
			dr->segs[n++] = dr->segs[i];
	dr->nsegs = n;
}

static void dest_event(struct uffd_region *ur, const struct uffd_event *ev)
{
	struct dest_region *dr = uffd_region_data(ur);
	struct uffd_mig_dest *d = dr->d;
	uint64_t a = (uintptr_t)uffd_region_addr(ur), b = a + uffd_region_len(ur);

	switch (ev->type) {
	case UFFD_EV_REMOVE:
	case UFFD_EV_UNMAP:
		if (ev->range.start > a)
			a = ev->range.start;
		if (ev->range.end < b)
			b = ev->range.end;
		if (a >= b)
			return;
		each_page(d, dr, a, b, page_dropped);
		if (ev->type == UFFD_EV_UNMAP)
			seg_cut(dr, a, b, 0, false);
		else	/* threads waiting there fault again, and get zeros */
			uffd_wake(&d->u, (void *)(uintptr_t)a, b - a);
		return;
	case UFFD_EV_REMAP:
		/* Called for each piece that moved; the first call moves all
		 * of ours (the destination range cannot overlap the source). */
		seg_cut(dr, ev->remap.from, ev->remap.from + ev->remap.len,
			(int64_t)(ev->remap.to - ev->remap.from), true);
		return;
	default:
		return;
	}
}

static const struct uffd_region_ops dest_ops = { .missing = dest_fault, .minor = dest_fault,
						 .event = dest_event };

/* ---- the urgent connection, read by the fault thread -------------------- */

static int urgent_poll(struct uffd_mig_dest *d)
{
	struct mig_msg m;
	int n = 0, ret, bad = 0;

	if (d->o.one_channel || !__atomic_load_n(&d->links_up, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&d->urgent_ended, __ATOMIC_ACQUIRE))
		return 0;
	while ((ret = mig_readable(mig_conn_fd(&d->urgent))) > 0) {
		ret = mig_recv(&d->urgent, &d->lay, d->urx, d->rx_cap, &m, &bad, deadline(d), -1);
		if (ret == -EBADMSG) {
			bad_page(d, &m, bad, "urgent");
			return -1;
		}
		if (ret) {
			link_failed(d, ret, "urgent");
			return -1;
		}
		d->last_urgent_rx = mono_ns();
		n++;
		switch (m.h.type) {
		case MIG_PAGES:
			if (install_pages(d, &m, false))
				return -1;
			break;
		case MIG_END:
			if (!__atomic_load_n(&d->complete_sent, __ATOMIC_ACQUIRE)) {
				link_failed(d, -EPROTO, "urgent: an early end");
				return -1;
			}
			pthread_mutex_lock(&d->st.lock);
			__atomic_store_n(&d->urgent_ended, 1, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&d->st.cond);
			pthread_mutex_unlock(&d->st.lock);
			return n;
		case MIG_ERROR:
			peer_error(d, &m);
			return -1;
		default:
			link_failed(d, -EPROTO, "urgent: an unexpected message");
			return -1;
		}
	}
	if (ret < 0)
		link_failed(d, ret, "urgent");
	return n;
}

static void drain_efd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing to drain */
	}
}

static void *fault_main(void *arg)
{
	struct uffd_mig_dest *d = arg;
	uint64_t spin_ns = (uint64_t)d->o.spin_us * 1000, last = mono_ns();
	bool moving = d->shadow_current > 0;

	mig_urgent_priority();
	d->last_urgent_rx = last;
	while (!__atomic_load_n(&d->fault_stop, __ATOMIC_ACQUIRE)) {
		bool up = __atomic_load_n(&d->links_up, __ATOMIC_ACQUIRE) && !d->o.one_channel &&
			  !__atomic_load_n(&d->urgent_ended, __ATOMIC_ACQUIRE);
		struct pollfd p[3] = {
			{ .fd = uffd_handler_fd(d->h), .events = POLLIN },
			{ .fd = d->fault_efd, .events = POLLIN },
			{ .fd = up ? mig_conn_fd(&d->urgent) : -1, .events = POLLIN },
		};
		uint64_t now, out;
		int n, m, ready;

		n = uffd_handler_dispatch(d->h);
		flush_requests(d);
		m = urgent_poll(d);
		now = mono_ns();
		if (n > 0 || m > 0) {
			last = now;
			continue;
		}
		/*
		 * Idle, and every page the switchover named is in: the
		 * shadow's pages go into place meanwhile.  Not before: a move
		 * flushes the TLBs of the program's CPUs, which on a busy
		 * VM took milliseconds a fault waited out (p99 4 ms at 4 GiB
		 * against 0.5 ms without moves); until then a page moves at
		 * its first touch.
		 */
		if (moving && !__atomic_load_n(&d->fetch_left, __ATOMIC_ACQUIRE)) {
			int moved = move_some(d);

			if (moved > 0 || moved == -EAGAIN) {
				last = now;
				continue;
			}
			if (moved < 0)
				fail(d, moved, "moving precopied pages into place: %s",
				     strerror(-moved));
			moving = false;
		}
		out = __atomic_load_n(&d->outstanding, __ATOMIC_RELAXED);
		if (now - last < (out ? OUTSTANDING_SPIN * spin_ns : spin_ns)) {
			sched_yield();
			continue;
		}
		/* Sleep; a silent source with requests out breaks the link. */
		ready = poll(p, 3, out && up ? d->o.timeout_ms : -1);
		if (ready > 0 && (p[1].revents & POLLIN))
			drain_efd(d->fault_efd);
		if (ready == 0 && out && up &&
		    mono_ns() - d->last_urgent_rx >= (uint64_t)d->o.timeout_ms * 1000000)
			link_failed(d, -ETIMEDOUT, "urgent: no answer");
		last = mono_ns() - spin_ns;	/* back to sleep unless busy */
		if (ready > 0)
			last = mono_ns();
	}
	return NULL;
}

static void stop_fault_thread(struct uffd_mig_dest *d)
{
	if (!d->fault_started)
		return;
	__atomic_store_n(&d->fault_stop, 1, __ATOMIC_RELEASE);
	wake_fault_thread(d);
	pthread_join(d->fault_thread, NULL);
	d->fault_started = false;
}

/* ---- handshake ------------------------------------------------------------- */

/*
 * Anonymous regions precopy into shadows where the kernel can move pages
 * (not for stop-and-copy, which leaves nothing stale to discard).
 */
static int make_shadows(struct uffd_mig_dest *d)
{
	int i;

	if (d->mode == UFFD_MIG_PRECOPY_ONLY || !(d->u.features & UFFD_F(UFFD_FEAT_MOVE)))
		return 0;
	for (i = 0; i < d->lay.nregions; i++) {
		struct dest_region *dr = &d->r[i];
		void *p;

		if (dr->minor)
			continue;
		p = mmap(NULL, dr->m.len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		/* Base pages: a move takes them one by one. */
		madvise(p, dr->m.len, MADV_NOHUGEPAGE);
		dr->shadow = p;
	}
	return 0;
}

static int accept_hello(struct uffd_mig_dest *d, struct mig_conn *c, uint32_t channel, bool resume)
{
	uint8_t w[24];
	uint32_t status = 0;
	struct mig_msg m;
	int i, ret;

	ret = mig_recv(c, &d->lay, d->rx, d->rx_cap, &m, NULL, deadline(d), d->stop_efd);
	if (ret)
		return ret;
	if (m.h.type != MIG_HELLO)
		return -EPROTO;
	if (m.hello.vmin > MIG_VERSION || m.hello.vmax < MIG_VERSION)
		status = EPROTONOSUPPORT;
	else if (m.hello.channel != channel ||
		 !(m.hello.flags & MIG_HELLO_ONE_CHANNEL) != !d->o.one_channel ||
		 !(m.hello.flags & MIG_HELLO_RESUME) != !resume ||
		 m.hello.nregions != (uint32_t)d->lay.nregions)
		status = EINVAL;
	for (i = 0; !status && i < d->lay.nregions; i++)
		if (get_le64(m.hello.regions + 16 * i) != d->r[i].m.len ||
		    get_le32(m.hello.regions + 16 * i + 8) != d->r[i].m.page_size)
			status = EINVAL;
	if (!status && (resume || channel == MIG_CHAN_URGENT) &&
	    (!d->have_session || m.hello.session != d->session))
		status = ESTALE;
	if (!status && resume && !__atomic_load_n(&d->switched, __ATOMIC_ACQUIRE))
		status = EBUSY;
	if (!status && !resume && channel == MIG_CHAN_STREAM) {
		d->session = m.hello.session;
		d->have_session = true;
		d->mode = m.hello.mode;
		if (make_shadows(d))
			status = ENOMEM;
	}
	put_le32(w, MIG_VERSION);
	put_le32(w + 4, status);
	put_le64(w + 8, m.hello.session);
	put_le32(w + 16, __atomic_load_n(&d->switched, __ATOMIC_ACQUIRE) ? MIG_WELCOME_SWITCHED : 0);
	put_le32(w + 20, 0);
	ret = mig_send(c, MIG_WELCOME, 0, w, sizeof(w), deadline(d));
	return status ? -(int)status : ret;
}

/* ---- switchover ------------------------------------------------------------ */

static int discard(struct dest_region *dr, uint64_t first, uint64_t n)
{
	if (!n)
		return 0;
	return madvise((void *)(uintptr_t)(dr->m.addr + first * dr->m.page_size),
		       n * dr->m.page_size, MADV_DONTNEED) ? -errno : 0;
}

/* Mark the pages the switchover names NEED; discard anonymous stale ones. */
static int mark_needed(struct uffd_mig_dest *d, const uint8_t *bitmap)
{
	uint64_t words = mig_bitmap_bytes(&d->lay) / 8, w, run_first = 0, run_n = 0;
	struct dest_region *run_dr = NULL;
	int ret = 0;

	for (w = 0; w < words && !ret; w++) {
		uint64_t bits = get_le64(bitmap + 8 * w);

		while (bits && !ret) {
			uint64_t g = w * 64 + __builtin_ctzll(bits);
			struct dest_region *dr = region_of(d, g);
			uint64_t page = g - dr->m.first;

			bits &= bits - 1;
			if (state_get(d, g) == ST_CURRENT && dr->shadow)
				d->shadow_current--;	/* stale: not moved */
			else if (state_get(d, g) == ST_CURRENT && !dr->minor) {
				if (dr == run_dr && page == run_first + run_n) {
					run_n++;
				} else {
					if (run_dr)
						ret = discard(run_dr, run_first, run_n);
					run_dr = dr;
					run_first = page;
					run_n = 1;
				}
			}
			state_set(d, g, ST_NEED);
		}
	}
	if (!ret && run_dr)
		ret = discard(run_dr, run_first, run_n);
	return ret;
}

static int register_regions(struct uffd_mig_dest *d)
{
	int i;

	for (i = 0; i < d->lay.nregions; i++) {
		struct dest_region *dr = &d->r[i];

		dr->nsegs = 0;
		if (seg_push(dr, (struct dest_seg){ dr->m.addr, 0, dr->m.npages }))
			return -ENOMEM;
		if (!uffd_handler_add(d->h, (void *)(uintptr_t)dr->m.addr, dr->m.len, dr->m.page_size,
				      UFFD_REG_MISSING | (dr->minor ? UFFD_REG_MINOR : 0),
				      &dest_ops, dr))
			return -errno;
	}
	d->registered = true;
	return uffd_handler_start(d->h);
}

static int do_switchover(struct uffd_mig_dest *d, const struct mig_msg *m)
{
	uint8_t ts[8];
	int ret;

	d->t_switch = mono_ns();
	mig_set_phase(&d->st, UFFD_MIG_SWITCHOVER);
	__atomic_store_n(&d->c_switch_pages, m->sw.pages, __ATOMIC_RELAXED);
	ret = mark_needed(d, m->sw.bitmap);
	__atomic_store_n(&d->fetch_left, m->sw.pages, __ATOMIC_RELEASE);
	__atomic_store_n(&d->remaining, m->sw.pages + d->shadow_current, __ATOMIC_RELEASE);
	if (ret) {
		fail(d, ret, "switchover: discarding stale pages: %s", strerror(-ret));
		return ret;
	}
	if (d->remaining) {
		ret = register_regions(d);
		if (!ret) {
			ret = -pthread_create(&d->fault_thread, NULL, fault_main, d);
			d->fault_started = !ret;
		}
		if (ret) {
			fail(d, ret, "switchover: registering the memory: %s", strerror(-ret));
			return ret;
		}
	}
	__atomic_store_n(&d->switched, 1, __ATOMIC_RELEASE);
	if (d->o.resume)
		d->o.resume(d->o.arg, m->sw.blob, m->sw.blob_len);
	d->t_resumed = mono_ns();
	put_le64(ts, d->t_resumed);
	ret = mig_send(&d->stream, MIG_RESUMED, 0, ts, sizeof(ts), deadline(d));
	if (ret) {
		link_failed(d, ret, "stream: resumed");
		return ret;
	}
	mig_set_phase(&d->st, UFFD_MIG_POSTCOPY);
	__atomic_store_n(&d->resumed_sent, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&d->remaining, __ATOMIC_SEQ_CST))
		pages_complete(d);
	return 0;
}

/* ---- the stream thread ------------------------------------------------------ */

/* After everything: the urgent connection's last words, unregister. */
static void finish(struct uffd_mig_dest *d)
{
	struct mig_msg m;

	if (!d->o.one_channel) {
		if (d->fault_started) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += d->o.timeout_ms / 1000 + 1;
			pthread_mutex_lock(&d->st.lock);
			while (!__atomic_load_n(&d->urgent_ended, __ATOMIC_ACQUIRE) &&
			       __atomic_load_n(&d->links_up, __ATOMIC_ACQUIRE) &&
			       pthread_cond_timedwait(&d->st.cond, &d->st.lock, &ts) != ETIMEDOUT)
				;
			pthread_mutex_unlock(&d->st.lock);
		} else {
			/* No fault thread: read the urgent connection here. */
			while (__atomic_load_n(&d->links_up, __ATOMIC_ACQUIRE) &&
			       !mig_recv(&d->urgent, &d->lay, d->rx, d->rx_cap, &m, NULL,
					 deadline(d), d->stop_efd) && m.h.type != MIG_END)
				;
		}
	}
	stop_fault_thread(d);
	if (d->registered) {
		uffd_handler_stop(d->h);
		d->registered = false;
	}
	free_shadows(d);	/* every page moved out: stale copies only */
	d->t_end = mono_ns();
	mig_set_phase(&d->st, UFFD_MIG_COMPLETE);
}

/* The pages still needed, as NEED's bitmap. */
static int send_need(struct uffd_mig_dest *d)
{
	uint64_t bytes = mig_bitmap_bytes(&d->lay), g, n = 0;
	uint8_t *p = calloc(1, MIG_NEED_BASE + bytes);
	int ret;

	if (!p)
		return -ENOMEM;
	for (g = 0; g < d->npages; g++) {
		uint8_t s = state_get(d, g);

		if (s == ST_NEED || s == ST_REQUESTED || s == ST_INSTALLING) {
			p[MIG_NEED_BASE + g / 8] |= 1u << (g % 8);
			n++;
		}
	}
	put_le64(p, n);
	put_le64(p + 8, bytes);
	ret = mig_send(&d->stream, MIG_NEED, 0, p, MIG_NEED_BASE + bytes, deadline(d));
	free(p);
	return ret;
}

/* Ask again for every page requested before the break. */
static int request_again(struct uffd_mig_dest *d)
{
	uint8_t buf[MIG_MAX_BATCH * MIG_REQ_ENTRY];
	uint64_t g;
	int n = 0, ret = 0;

	for (g = 0; g < d->npages && !ret; g++) {
		struct dest_region *dr;

		if (state_get(d, g) != ST_REQUESTED)
			continue;
		dr = region_of(d, g);
		put_le32(buf + n * MIG_REQ_ENTRY, dr->index);
		put_le32(buf + n * MIG_REQ_ENTRY + 4, 0);
		put_le64(buf + n * MIG_REQ_ENTRY + 8, g - dr->m.first);
		if (++n == MIG_MAX_BATCH || g + 1 == d->npages) {
			ret = mig_send(d->o.one_channel ? &d->stream : &d->urgent, MIG_REQUEST, n,
				       buf, n * MIG_REQ_ENTRY, deadline(d));
			n = 0;
		}
	}
	if (!ret && n)
		ret = mig_send(d->o.one_channel ? &d->stream : &d->urgent, MIG_REQUEST, n, buf,
			       n * MIG_REQ_ENTRY, deadline(d));
	return ret;
}

static int handshakes(struct uffd_mig_dest *d, bool resume)
{
	int ret = accept_hello(d, &d->stream, MIG_CHAN_STREAM, resume);

	if (!ret && resume)
		ret = send_need(d);
	if (!ret && !d->o.one_channel)
		ret = accept_hello(d, &d->urgent, MIG_CHAN_URGENT, resume);
	if (ret)
		return ret;
	__atomic_store_n(&d->links_up, 1, __ATOMIC_RELEASE);
	if (resume) {
		ret = request_again(d);
		wake_fault_thread(d);	/* to poll the new urgent fd */
	}
	return ret;
}

static void stream_loop(struct uffd_mig_dest *d)
{
	struct mig_msg m;
	int ret, bad = 0;

	ret = handshakes(d, d->resuming);
	if (ret) {
		if (d->resuming)
			link_failed(d, ret, "resuming");
		else
			fail(d, ret, "handshake: %s", strerror(-ret));
		return;
	}
	if (d->resuming) {
		STAT_ADD(d, c_resumes, 1);
		mig_set_phase(&d->st, UFFD_MIG_POSTCOPY);
	} else {
		mig_set_phase(&d->st, UFFD_MIG_PRECOPY);
	}
	for (;;) {
		/* The source is silent only after DONE, waiting for our word. */
		if (mig_phase(&d->st) == UFFD_MIG_FAILED)
			return;		/* failed in the fault thread */
		uint64_t dl = d->background_done || __atomic_load_n(&d->complete_sent,
								    __ATOMIC_ACQUIRE) ? 0 : deadline(d);

		ret = mig_recv(&d->stream, &d->lay, d->rx, d->rx_cap, &m, &bad, dl, d->stop_efd);
		if (ret == -EINTR && __atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE))
			return;
		if (ret == -EBADMSG) {
			bad_page(d, &m, bad, "stream");
			return;
		}
		if (ret) {
			link_failed(d, ret, "stream");
			if (__atomic_load_n(&d->complete_sent, __ATOMIC_ACQUIRE))
				break;
			return;
		}
		switch (m.h.type) {
		case MIG_PAGES:
			if (!__atomic_load_n(&d->switched, __ATOMIC_ACQUIRE))
				place_precopy(d, &m);
			else if (install_pages(d, &m, true))
				return;
			continue;
		case MIG_ROUND:
			__atomic_store_n(&d->c_round, m.round.round, __ATOMIC_RELAXED);
			continue;
		case MIG_SYNC:
			/* Everything before it is placed: say so. */
			if (__atomic_load_n(&d->switched, __ATOMIC_ACQUIRE))
				break;
			ret = mig_send(&d->stream, MIG_SYNC, 0, d->rx, 8, deadline(d));
			if (ret) {
				link_failed(d, ret, "stream: sync");
				return;
			}
			continue;
		case MIG_SWITCHOVER:
			if (__atomic_load_n(&d->switched, __ATOMIC_ACQUIRE))
				break;
			if (do_switchover(d, &m))
				return;
			mig_background_priority(d->o.one_channel);	/* the rest is background */
			continue;
		case MIG_DONE:
			d->background_done = true;
			continue;
		case MIG_END:
			if (!__atomic_load_n(&d->complete_sent, __ATOMIC_ACQUIRE))
				break;
			finish(d);
			return;
		case MIG_ERROR:
			peer_error(d, &m);
			return;
		default:
			break;
		}
		link_failed(d, -EPROTO, "stream: an unexpected message");
		return;
	}
	finish(d);
	return;
}

static void *stream_main(void *arg)
{
	struct uffd_mig_dest *d = arg;

	stream_loop(d);
	if (mig_phase(&d->st) == UFFD_MIG_FAILED)
		drain_stream(d);
	return NULL;
}

/* ---- the API ---------------------------------------------------------------- */

static int load_opts(struct uffd_mig_dest_opts *o, const struct uffd_mig_dest_opts *in)
{
	int ret = uffd__load_opts(o, in, struct uffd_mig_dest_opts, spin_us, spin_us);

	if (ret)
		return ret;
	if (!in || o->stream_fd < 0 || (!o->one_channel && o->urgent_fd < 0) || o->timeout_ms < 0)
		return -EINVAL;
	if (!o->timeout_ms)
		o->timeout_ms = MIG_DEFAULT_TIMEOUT_MS;
	if (!o->spin_us)
		o->spin_us = MIG_DEFAULT_SPIN_US;
	return 0;
}

/* The kernel features the regions need. */
static uint64_t required_features(const struct uffd_mig_dest *d)
{
	uint64_t f = 0;
	int i;

	for (i = 0; i < d->lay.nregions; i++) {
		bool huge = d->r[i].m.page_size > 4096;

		if (d->r[i].minor)
			f |= huge ? UFFD_F(UFFD_FEAT_MINOR_HUGETLBFS) | UFFD_F(UFFD_FEAT_MISSING_HUGETLBFS) :
				    UFFD_F(UFFD_FEAT_MINOR_SHMEM) | UFFD_F(UFFD_FEAT_MISSING_SHMEM);
	}
	return f | UFFD_F(UFFD_FEAT_EVENT_REMOVE) | UFFD_F(UFFD_FEAT_EVENT_UNMAP) |
	       UFFD_F(UFFD_FEAT_EVENT_REMAP);
}

/*
 * Check each region can be registered as it will be at the switchover
 * (too late to fail then), empty it, and map the files a second time.
 */
static int prepare_regions(struct uffd_mig_dest *d)
{
	int i, ret;

	for (i = 0; i < d->lay.nregions; i++) {
		struct dest_region *dr = &d->r[i];
		void *addr = (void *)(uintptr_t)dr->m.addr;
		unsigned modes = UFFD_REG_MISSING | (dr->minor ? UFFD_REG_MINOR : 0);

		ret = uffd_register(&d->u, addr, dr->m.len, modes, NULL);
		if (ret)
			return ret;
		uffd_unregister(&d->u, addr, dr->m.len);
		if (!dr->minor) {
			if (madvise(addr, dr->m.len, MADV_DONTNEED))
				return -errno;
			continue;
		}
		if (fallocate(dr->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)dr->offset, (off_t)dr->m.len))
			return -errno;
		/*
		 * hugetlbfs: the punch gave the range's huge pages back to the
		 * pool, reservation and all, and a fault that finds the pool
		 * empty raises SIGBUS.  Take them now (zeros, in the page
		 * cache): no huge page, no migration - at start, not at a touch.
		 */
		if (dr->m.page_size > 4096 &&
		    fallocate(dr->fd, 0, (off_t)dr->offset, (off_t)dr->m.len))
			return errno == ENOSPC ? -ENOMEM : -errno;
		dr->alias = mmap(NULL, dr->m.len, PROT_READ | PROT_WRITE, MAP_SHARED, dr->fd,
				 (off_t)dr->offset);
		if (dr->alias == MAP_FAILED) {
			dr->alias = NULL;
			return -errno;
		}
	}
	return 0;
}

static void *map_array(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void destroy(struct uffd_mig_dest *d)
{
	int i;

	uffd_handler_free(d->h);
	uffd_close(&d->u);
	for (i = 0; d->r && i < d->lay.nregions; i++) {
		if (d->r[i].alias)
			munmap(d->r[i].alias, d->r[i].m.len);
		if (d->r[i].shadow)
			munmap(d->r[i].shadow, d->r[i].m.len);
		free(d->r[i].segs);
	}
	free(d->r);
	free(d->mr);
	free(d->lr);
	if (d->state)
		munmap(d->state, d->npages);
	if (d->t_first)
		munmap(d->t_first, d->aux_len);
	if (d->stop_efd >= 0)
		close(d->stop_efd);
	if (d->fault_efd >= 0)
		close(d->fault_efd);
	free(d->rx);
	free(d->urx);
	mig_conn_destroy(&d->stream);
	mig_conn_destroy(&d->urgent);
	mig_status_destroy(&d->st);
	free(d);
}

static int setup(struct uffd_mig_dest *d, const struct uffd_mig_dest_opts *o)
{
	UFFD_OPTS(uffd_handler_opts, ho, .wait = UFFD_WAIT_EPOLL);
	int i, ret;

	ret = load_opts(&d->o, o);
	if (!ret)
		ret = mig_layout_init(d->o.regions, d->o.nregions, &d->mr, &d->lr, &d->lay);
	if (ret)
		return ret;
	d->npages = d->lay.total_pages;
	d->r = calloc(d->lay.nregions, sizeof(*d->r));
	if (!d->r)
		return -ENOMEM;
	for (i = 0; i < d->lay.nregions; i++) {
		struct dest_region *dr = &d->r[i];

		*dr = (struct dest_region){ .d = d, .index = i, .m = d->mr[i], .fd = -1 };
		if (d->o.fds && d->o.fds[i] >= 0) {
			dr->minor = true;
			dr->fd = d->o.fds[i];
			dr->offset = d->o.offsets ? d->o.offsets[i] : 0;
			if (dr->offset % dr->m.page_size)
				return -EINVAL;
		} else if (dr->m.page_size != 4096 ||
			   d->o.regions[i].flags & (UFFD_IMAGE_SHMEM | UFFD_IMAGE_HUGETLB)) {
			/* Shared memory comes with its file: MADV_DONTNEED
			 * would not discard its stale pages. */
			return -EINVAL;
		}
	}
	d->stream.fd = d->o.stream_fd;
	d->urgent.fd = d->o.one_channel ? -1 : d->o.urgent_fd;
	mig_nodelay(d->stream.fd);
	mig_stream_buffer(d->stream.fd, SO_RCVBUF);
	if (!d->o.one_channel) {
		mig_nodelay(d->urgent.fd);
		mig_urgent_marks(d->urgent.fd);
	}
	d->rx_cap = mig_max_payload(&d->lay);
	d->rx = malloc(d->rx_cap);
	d->urx = malloc(d->rx_cap);
	d->state = map_array(d->npages);
	d->aux_len = d->npages * (8 + 8 + 4);
	d->t_first = map_array(d->aux_len);
	d->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->fault_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!d->rx || !d->urx || !d->state || !d->t_first || d->stop_efd < 0 ||
	    d->fault_efd < 0)
		return -ENOMEM;
	d->wait_sum = d->t_first + d->npages;
	d->waiters = (uint32_t *)(d->wait_sum + d->npages);
	ret = uffd_open(&d->u, required_features(d),
			UFFD_F(UFFD_FEAT_POISON) | UFFD_F(UFFD_FEAT_MOVE),
			UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY);
	if (ret)
		return ret;
	d->h = uffd_handler_new(&d->u, &ho);
	if (!d->h)
		return -errno;
	return prepare_regions(d);
}

struct uffd_mig_dest *uffd_mig_dest_start(const struct uffd_mig_dest_opts *o)
{
	struct uffd_mig_dest *d = calloc(1, sizeof(*d));
	int ret;

	if (!d)
		return NULL;
	d->u.fd = -1;
	d->stop_efd = d->fault_efd = -1;
	mig_status_init(&d->st);
	mig_conn_init(&d->stream, -1, &d->c_out, &d->c_in);
	mig_conn_init(&d->urgent, -1, &d->c_out, &d->c_in);
	d->t0 = mono_ns();
	ret = setup(d, o);
	if (!ret) {
		ret = -pthread_create(&d->stream_thread, NULL, stream_main, d);
		d->stream_started = !ret;
	}
	if (ret) {
		destroy(d);
		errno = -ret;
		return NULL;
	}
	return d;
}

int uffd_mig_dest_wait(struct uffd_mig_dest *d, int timeout_ms)
{
	if (!d)
		return -EINVAL;
	return mig_status_wait(&d->st, timeout_ms);
}

int uffd_mig_dest_resume(struct uffd_mig_dest *d, int stream_fd, int urgent_fd)
{
	int ret;

	if (!d || stream_fd < 0 || (!d->o.one_channel && urgent_fd < 0))
		return -EINVAL;
	if (mig_phase(&d->st) != UFFD_MIG_BROKEN)
		return -EINVAL;
	if (d->stream_started) {
		pthread_join(d->stream_thread, NULL);
		d->stream_started = false;
	}
	mig_conn_set_fd(&d->stream, stream_fd);
	mig_nodelay(stream_fd);
	mig_stream_buffer(stream_fd, SO_RCVBUF);
	if (!d->o.one_channel) {
		mig_conn_set_fd(&d->urgent, urgent_fd);
		mig_nodelay(urgent_fd);
		mig_urgent_marks(urgent_fd);
	}
	d->resuming = true;
	d->background_done = false;
	mig_set_phase(&d->st, UFFD_MIG_CONNECTING);
	ret = -pthread_create(&d->stream_thread, NULL, stream_main, d);
	if (ret) {
		mig_set_error(&d->st, UFFD_MIG_BROKEN, ret, "resuming: %s", strerror(-ret));
		return ret;
	}
	d->stream_started = true;
	return 0;
}

/* Poison every page not here yet; the number poisoned. */
static uint64_t poison_missing(struct uffd_mig_dest *d)
{
	uint64_t g, n = 0;

	uffd__handler_lock_events(d->h);
	for (g = 0; g < d->npages; g++) {
		struct dest_region *dr;
		uint64_t addr;
		uint8_t prior = claim(d, g);
		int ret;

		if (!prior)
			continue;
		dr = region_of(d, g);
		addr = page_addr(dr, g - dr->m.first);
		do {
			ret = addr ? uffd_poison(&d->u, (void *)(uintptr_t)addr, dr->m.page_size, 0,
						 NULL) : -ENOENT;
			if (ret == -EAGAIN) {
				uffd__handler_unlock_events(d->h);
				uffd_handler_dispatch(d->h);
				uffd__handler_lock_events(d->h);
			}
		} while (ret == -EAGAIN);
		state_set(d, g, ret == -ENOENT ? ST_DROPPED : ST_POISONED);
		if (!ret)
			n++;
		settled(d, prior);
	}
	uffd__handler_unlock_events(d->h);
	STAT_ADD(d, c_poisoned, n);
	return n;
}

/* Stop the threads (the connections are shut down). */
static void stop_threads(struct uffd_mig_dest *d)
{
	uint64_t one = 1;

	__atomic_store_n(&d->stopping, 1, __ATOMIC_RELEASE);
	if (write(d->stop_efd, &one, sizeof(one)) < 0) {
		/* the shutdowns end the waits too */
	}
	/* Threads blocked in a send or a receive: end the connections (a
	 * completed migration leaves them to the caller, clean). */
	if (mig_phase(&d->st) != UFFD_MIG_COMPLETE)
		shut_links(d);
	if (d->stream_started) {
		pthread_join(d->stream_thread, NULL);
		d->stream_started = false;
	}
	stop_fault_thread(d);
}

int uffd_mig_dest_poison(struct uffd_mig_dest *d)
{
	uint64_t n;

	if (!d)
		return -EINVAL;
	/* After the switchover, not complete: broken, failed, or going on. */
	if (!__atomic_load_n(&d->switched, __ATOMIC_ACQUIRE) || !d->registered ||
	    mig_phase(&d->st) == UFFD_MIG_COMPLETE)
		return -EINVAL;
	if (!(d->u.features & UFFD_F(UFFD_FEAT_POISON)))
		return -EOPNOTSUPP;
	stop_threads(d);
	/* What is here is kept: the shadows' pages go into place first. */
	move_all_current(d, NULL, false);
	n = poison_missing(d);
	if (mig_phase(&d->st) != UFFD_MIG_FAILED)
		mig_set_error(&d->st, UFFD_MIG_FAILED, -ENOTCONN,
			      "the source is gone: %llu pages poisoned", (unsigned long long)n);
	/* The markers stay in the page tables; the rest is plain memory. */
	uffd_handler_stop(d->h);
	d->registered = false;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int uffd_mig_dest_stats(struct uffd_mig_dest *d, struct uffd_mig_stats *st)
{
	uint64_t now;
	int i;

	if (!d || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	mig_status_fill(&d->st, st);
	now = mono_ns();
	st->round = __atomic_load_n(&d->c_round, __ATOMIC_RELAXED);
	st->resumes = __atomic_load_n(&d->c_resumes, __ATOMIC_RELAXED);
	st->pages = d->npages;
	st->pages_received = __atomic_load_n(&d->c_received, __ATOMIC_RELAXED);
	st->zero_pages = __atomic_load_n(&d->c_zero, __ATOMIC_RELAXED);
	st->switchover_pages = __atomic_load_n(&d->c_switch_pages, __ATOMIC_RELAXED);
	st->pages_requested = __atomic_load_n(&d->c_requested, __ATOMIC_RELAXED);
	st->pages_background = __atomic_load_n(&d->c_background, __ATOMIC_RELAXED);
	st->pages_answered = __atomic_load_n(&d->c_answers, __ATOMIC_RELAXED);
	st->pages_continued = __atomic_load_n(&d->c_continued, __ATOMIC_RELAXED);
	st->pages_moved = __atomic_load_n(&d->c_moved, __ATOMIC_RELAXED);
	st->pages_local_zero = __atomic_load_n(&d->c_local_zero, __ATOMIC_RELAXED);
	st->duplicates = __atomic_load_n(&d->c_dup, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&d->c_dropped, __ATOMIC_RELAXED);
	st->poisoned = __atomic_load_n(&d->c_poisoned, __ATOMIC_RELAXED);
	st->bytes_sent = __atomic_load_n(&d->c_out, __ATOMIC_RELAXED);
	st->bytes_received = __atomic_load_n(&d->c_in, __ATOMIC_RELAXED);
	if (d->t_switch) {
		st->precopy_ns = d->t_switch - d->t0;
		st->downtime_ns = (d->t_resumed ? d->t_resumed : now) - d->t_switch;
	} else {
		st->precopy_ns = now - d->t0;
	}
	if (d->t_resumed)
		st->postcopy_ns = (d->t_end ? d->t_end : now) - d->t_resumed;
	st->total_ns = (d->t_end ? d->t_end : now) - d->t0;
	st->blocked_ns = __atomic_load_n(&d->c_blocked, __ATOMIC_RELAXED);
	st->req_count = __atomic_load_n(&d->c_req_count, __ATOMIC_RELAXED);
	st->req_ns_sum = __atomic_load_n(&d->c_req_sum, __ATOMIC_RELAXED);
	st->req_ns_max = __atomic_load_n(&d->c_req_max, __ATOMIC_RELAXED);
	for (i = 0; i < UFFD_MIG_HIST_BUCKETS; i++)
		st->req_hist[i] = __atomic_load_n(&d->hist[i], __ATOMIC_RELAXED);
	/* bucket upper bounds (1/8 octave): never above the largest seen */
	st->req_p50_ns = mig_hist_quantile(st->req_hist, 0.5);
	st->req_p99_ns = mig_hist_quantile(st->req_hist, 0.99);
	if (st->req_p50_ns > st->req_ns_max)
		st->req_p50_ns = st->req_ns_max;
	if (st->req_p99_ns > st->req_ns_max)
		st->req_p99_ns = st->req_ns_max;
	return 0;
}

void uffd_mig_dest_free(struct uffd_mig_dest *d)
{
	if (!d)
		return;
	stop_threads(d);
	/* Never a silent zero: what did not come is poisoned before the
	 * memory becomes plain memory again. */
	if (d->registered && __atomic_load_n(&d->remaining, __ATOMIC_ACQUIRE)) {
		move_all_current(d, NULL, false);
		if (d->u.features & UFFD_F(UFFD_FEAT_POISON))
			poison_missing(d);
	}
	destroy(d);
}
