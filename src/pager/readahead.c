/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-ahead.  Each map follows up to RA_STREAMS sequential streams.  A
 * fault where a stream was expected to continue doubles its window, read
 * by the faulting thread itself; once the window is as large as it may
 * grow, the stream goes asynchronous: groups of ASYNC_RA_WINDOWS windows
 * are posted to the reader threads, which read them in the background, a
 * window at a time each.
 *
 * The one idea that keeps a stream ahead of the program is the kernel's
 * PG_readahead mark: user space can not see a page being read, only a
 * page being faulted on, so the first page of each group posted is not
 * mapped but parked in its shadow, inactive (uffd__page_parked).  The
 * program's touch of it is a cheap fault (the page is mapped back, no
 * I/O) that posts the next group: the readers stay GROUPS_AHEAD groups ahead,
 * and the program never waits for a window read in its own fault.
 * READERS threads share the groups, so some read while others map what
 * they read.  A reader reads one window and maps it before it claims the
 * next: reading a group's windows together (through io_uring) and mapping
 * them after left the device idle while the reader mapped the whole group,
 * and a 1 GiB scan took 1.8-2.3 us a page with four readers that way
 * against 1.6-1.8 a window at a time (2 MiB windows, four groups ahead;
 * two readers, two groups ahead and 1 MiB windows into 4 KiB-page buffers
 * took 2.7-4.5).
 *
 * A program that outruns its read-ahead faults on pages the readers have
 * not reached: the fault trims their requests (ra_trim) and reads a
 * window itself, so no page is read twice.
 *
 * (Measured and left: the zero-copy way, reading into a memfd and mapping
 * with UFFDIO_CONTINUE, costs more here than the copy it saves - shmem
 * page allocation, direct I/O into a fresh shmem mapping and hole punching
 * came to 9 us a page against 4.5 for read, UFFDIO_COPY and zap.)
 */
#include <stdint.h>

#include "pager_internal.h"

#define RA_START_PAGES	4		/* first sequential window */
#define ASYNC_RA_WINDOWS 2		/* windows in a group read ahead: with
					   GROUPS_AHEAD, at most a quarter of
					   the buffer (windows: a 32nd) */
#define GROUPS_AHEAD	4		/* groups posted ahead of the program */

/* The largest window in bytes: read_ahead, at most 1/32 of the buffer
 * (0: no read-ahead). */
size_t uffd__ra_bytes(const struct uffd_pager *p)
{
	size_t bytes = p->o.read_ahead;

	if (bytes == UFFD_PAGER_NO_READ_AHEAD)
		return 0;
	return bytes > p->o.buffer_bytes / 32 ? p->o.buffer_bytes / 32 : bytes;
}

/* The same in m's pages, at least one. */
size_t uffd__ra_pages(const struct uffd_pager *p, const struct pmap *m)
{
	size_t n = uffd__ra_bytes(p) / m->psize;

	return n ? n : 1;
}

/* Hand n pages from idx to the readers, the first to be parked.  Lock
 * held. */
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
	p->ra[p->nra++] = (struct ra_req){ m, idx, n, idx };
	m->users++;
	pthread_cond_signal(&p->read_work);
}

/* Post stream i's next group, from its end.  Lock held. */
static void post_group(struct uffd_pager *p, struct pmap *m, int i, size_t max)
{
	size_t from = m->ra[i].end, n = max * ASYNC_RA_WINDOWS;

	m->ra[i].end = from + n;
	m->ra[i].next = from + n;
	ra_post(p, m, from, n);
}

/*
 * A fault at idx on a parked page (PF_PARKED: the first of a group read
 * ahead): the program reached that group, and the stream's next one is
 * posted, so GROUPS_AHEAD groups stay in flight ahead of it.  Lock held.
 */
void uffd__ra_marker(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	size_t max = uffd__ra_pages(p, m), n = max * ASYNC_RA_WINDOWS;
	int i;

	for (i = 0; i < RA_STREAMS; i++)
		if (m->ra[i].async && idx >= m->ra[i].async && idx < m->ra[i].end &&
		    m->ra[i].end - idx <= GROUPS_AHEAD * n)
			post_group(p, m, i, max);
}

/*
 * The window a fault at idx on an EMPTY page reads itself: a new stream's
 * one page, a growing stream's next window (which, at the largest, also
 * starts the stream's groups read ahead), or, inside the groups the
 * readers have not reached yet, the largest window.  Lock held.
 */
size_t uffd__ra_window(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	size_t max = uffd__ra_pages(p, m), win;
	int i, g;

	if (max <= 1)
		return 1;
	for (i = 0; i < RA_STREAMS; i++) {
		if (m->ra[i].next == idx && idx)
			break;
		if (m->ra[i].async && idx >= m->ra[i].async && idx < m->ra[i].end)
			return max;	/* the readers are behind */
	}
	if (i == RA_STREAMS) {
		/* Not a continuation: start a stream in place of another. */
		i = m->ra_victim++ % RA_STREAMS;
		m->ra[i].win = 0;
		m->ra[i].async = 0;
		m->ra[i].next = idx + 1;
		return 1;
	}
	win = m->ra[i].win ? m->ra[i].win * 2 : RA_START_PAGES;
	if (win > max)
		win = max;
	m->ra[i].win = win;
	m->ra[i].next = idx + win;
	if (win == max) {
		/* Asynchronous from here on: GROUPS_AHEAD groups at once. */
		m->ra[i].async = idx + win;
		m->ra[i].end = idx + win;
		for (g = 0; g < GROUPS_AHEAD; g++)
			post_group(p, m, i, max);
	}
	return win;
}

/*
 * A fault at idx: read-ahead of m still to do at or before idx is late -
 * the program got there first (the readers were kept from running), and
 * those pages are filled by the fault, or were used and dropped since,
 * and reading them again would be waste.  Requests start past idx.  Lock
 * held.
 */
void uffd__ra_trim(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	int i;

	for (i = -READERS; i < p->nra; i++) {
		struct ra_req *r = i < 0 ? &p->ra_cur[i + READERS] : &p->ra[i];

		if (r->m == m && idx >= r->idx && idx < r->idx + r->n) {
			r->n -= idx + 1 - r->idx;
			r->idx = idx + 1;
		}
	}
}

/*
 * A claimed run of pages, read and mapped at once; park is its page to
 * leave in the shadow (a stream's mark, its queue entry reserved), or
 * SIZE_MAX.
 */
struct ra_chunk {
	size_t idx, n, park;
};

/* The page of a chunk claimed at idx to park: the first of a group (r's
 * mark), when there is room on the queue for it, else SIZE_MAX.  Lock
 * held. */
static size_t find_park(struct uffd_pager *p, const struct ra_req *r, size_t idx)
{
	return idx == r->mark && uffd__queue_reserve(p, 1) ? idx : SIZE_MAX;
}

/* Page idx (BUSY, read into src) to its shadow, INACTIVE. */
static void park_page(struct uffd_pager *p, struct pmap *m, size_t idx, const char *src)
{
	if (src != shadow_addr(m, idx)) {
		uffd__shadow_ready(p);
		memcpy(shadow_addr(m, idx), src, m->psize);
	}
	pthread_mutex_lock(&p->lock);
	uffd__page_parked(p, m, idx);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

/* Map chunk c read into buf (got: read_done's answer), its mark parked. */
static void map_chunk(struct uffd_pager *p, struct pmap *m, const struct ra_chunk *c,
		      char *buf, ssize_t got)
{
	size_t ps = m->psize, before, after;

	if (c->park == SIZE_MAX || got < (ssize_t)((c->park - c->idx + 1) * ps)) {
		if (c->park != SIZE_MAX) {
			pthread_mutex_lock(&p->lock);
			uffd__queue_unreserve(p, 1);
			pthread_mutex_unlock(&p->lock);
		}
		uffd__map_read(p, m, NULL, c->idx, c->n, buf, got, SIZE_MAX, false, true);
		return;
	}
	before = c->park - c->idx;
	after = c->n - before - 1;
	if (before)
		uffd__map_read(p, m, NULL, c->idx, before, buf, before * ps, SIZE_MAX,
			       false, true);
	park_page(p, m, c->park, buf + before * ps);
	if (after)
		uffd__map_read(p, m, NULL, c->park + 1, after, buf + (before + 1) * ps,
			       got - (ssize_t)((before + 1) * ps), SIZE_MAX, false, true);
}

/* Read chunk c and map it. */
static void fill_chunk(struct uffd_pager *p, struct pmap *m, const struct ra_chunk *c)
{
	char *buf = uffd__bounce_get(p, c->n * m->psize);

	if (!buf) {
		uffd__shadow_ready(p);
		buf = shadow_addr(m, c->idx);
	}
	map_chunk(p, m, c, buf, uffd__store_read(m, c->idx, c->n, buf));
}

/*
 * A reader: fills the groups posted by sequential streams, in the
 * background, and faults' reads a servicing thread left queued (batch.c).
 * The request it reads is its p->ra_cur[], where faults can trim it
 * (ra_trim).
 */
void *uffd__readahead_main(void *arg)
{
	struct uffd_pager *p = arg;
	struct ra_req *r;
	struct pmap *m;

	pthread_mutex_lock(&p->lock);
	r = &p->ra_cur[p->readers_started++ % READERS];
	while (!p->stopping) {
		struct ra_chunk c = { 0, 0, SIZE_MAX };

		/* Faults' reads a servicing thread left (batch.c) first. */
		if (p->njobs && !p->job_readers) {
			uffd__jobs_drain(p, 0);
			continue;
		}
		if (!r->m) {
			if (!p->nra) {
				pthread_cond_wait(&p->read_work, &p->lock);
				continue;
			}
			*r = p->ra[0];
			memmove(p->ra, p->ra + 1, --p->nra * sizeof(p->ra[0]));
			if (r->idx + r->n > r->m->npages)
				r->n = r->idx < r->m->npages ? r->m->npages - r->idx : 0;
		}
		m = r->m;
		if (!r->n || m->dying) {
			r->m = NULL;
			uffd__map_unuse(p, m);
			continue;
		}
		/* Claim a window (past pages that are not EMPTY), read it and
		 * map it; r->idx and r->n are what is left to do. */
		while (r->n && !c.n) {
			size_t at = r->idx, end = r->idx + r->n, k, win = uffd__ra_pages(p, m);

			if (win > r->n)
				win = r->n;
			k = uffd__claim_empty(p, m, at, win);
			if (k) {
				c = (struct ra_chunk){ at, k, find_park(p, r, at) };
				STAT_ADD(&p->st, read_ahead, k);
			}
			/* Past the claim, or past a page not EMPTY; a fault may
			 * have trimmed r further while claim_empty evicted
			 * (trimming keeps the end). */
			if (r->idx < at + (k ? k : 1))
				r->idx = at + (k ? k : 1);
			r->n = end > r->idx ? end - r->idx : 0;
		}
		if (!c.n)
			continue;
		pthread_mutex_unlock(&p->lock);
		fill_chunk(p, m, &c);
		pthread_mutex_lock(&p->lock);
	}
	if (r->m) {
		m = r->m;
		r->m = NULL;
		uffd__map_unuse(p, m);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}
