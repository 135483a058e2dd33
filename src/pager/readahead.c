/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-ahead.  Each map follows up to RA_STREAMS sequential streams: a
 * fault where a stream was expected to continue doubles its window (the
 * faulting thread reads the window itself), and once the window is as large
 * as it may grow, the next windows are posted to the read-ahead thread,
 * which reads them in the background - several windows in flight at once
 * where the store has batches (io_uring).
 *
 * A program that outruns its read-ahead faults on pages the thread has not
 * reached: the fault trims the request (ra_trim), so no page is read twice.
 */
#include <stdint.h>

#include "pager_internal.h"

#define RA_START_PAGES	4		/* first sequential window */
#define ASYNC_RA_WINDOWS 4		/* windows read ahead in the background */
#define RA_BATCH	8		/* of those, reads in flight at once */

/* The largest window: read_ahead, at most 1/16 of the buffer. */
size_t uffd__ra_pages(const struct uffd_pager *p, const struct pmap *m)
{
	size_t bytes = p->o.read_ahead, n;

	if (bytes == UFFD_PAGER_NO_READ_AHEAD)
		return 1;
	if (bytes > p->o.buffer_bytes / 16)
		bytes = p->o.buffer_bytes / 16;
	n = bytes / m->psize;
	return n ? n : 1;
}

/* Size of the synchronous fill for a fault at idx, and read-ahead to post.
 * Lock held. */
size_t uffd__ra_window(struct uffd_pager *p, struct pmap *m, size_t idx, size_t *async_n)
{
	size_t max = uffd__ra_pages(p, m), win;
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

/* Hand n pages from idx to the read-ahead thread.  Lock held. */
void uffd__ra_post(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n)
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
void uffd__ra_trim(struct uffd_pager *p, struct pmap *m, size_t idx)
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
	bool batch = nc > 1 && m->store->ops->read_batch;
	size_t total = 0, at = 0;
	char *buf;
	int i;

	for (i = 0; i < nc; i++)
		total += c[i].n * m->psize;
	/* One buffer for all, or each chunk through its shadow. */
	buf = uffd__bounce_get(p, total);
	if (!buf)
		uffd__shadow_ready(p);
	for (i = 0; i < nc; i++, at += c[i - 1].n * m->psize)
		io[i] = (struct uffd_store_io){ buf ? buf + at : shadow_addr(m, c[i].idx),
						clipped_len(m, c[i].idx, c[i].n),
						store_off(m, c[i].idx), 0 };
	if (batch)
		m->store->ops->read_batch(m->store->data, io, nc);
	else
		for (i = 0; i < nc; i++)
			io[i].res = uffd__store_read(m, c[i].idx, c[i].n, io[i].buf);
	for (i = 0; i < nc; i++) {
		ssize_t got = io[i].res;

		if (batch)
			got = uffd__read_done(m, io[i].buf, c[i].n * m->psize, got);
		uffd__map_read(p, m, NULL, c[i].idx, c[i].n, io[i].buf, got, SIZE_MAX,
			       false, true);
	}
}

/*
 * The read-ahead thread: fills windows posted by sequential faults, in
 * the background, a window at a time.  The request being read is
 * p->ra_cur, where faults can trim it (ra_trim).
 */
void *uffd__readahead_main(void *arg)
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
				size_t at = r->idx, end = r->idx + r->n, k,
				       win = uffd__ra_pages(p, m);

				if (win > r->n)
					win = r->n;
				k = uffd__claim_empty(p, m, at, win);
				if (k) {
					c[nc++] = (struct ra_chunk){ at, k };
					STAT_ADD(&p->st, read_ahead, k);
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
		uffd__map_unuse(p, m);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}
