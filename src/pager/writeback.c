/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write-back: dirty pages to the store, by two engines.
 *
 * - Eviction's (writeback_runs): the pages are INACTIVE, so they sit in
 *   the shadow where the program can not write them; their runs are
 *   written from there as they are.
 * - Flush, evict and unmap's (writeback_range): the pages may be mapped
 *   and written to at any moment, so a batch of them is write-protected
 *   with one ioctl, copied out, written, and let go with one wake.
 *
 * Both write contiguous runs, all in flight at once where the store has
 * batches (io_uring), and never past the store's size at map time: a map
 * never grows its store.  A page whose write fails stays dirty and
 * resident; the error is the map's, returned by the next flush or unmap.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "pager_internal.h"
#include "util/pagecopy.h"

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
	STAT_ADD(&m->p->st, bytes_written, done);
	STAT_ADD(&m->p->st, writebacks, n);
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
			STAT_ADD(&m->p->st, bytes_written, io[i].len);
			STAT_ADD(&m->p->st, writebacks, w->n);
		} else {
			/* Short or failed: once more on its own, for its error. */
			w->err = store_write(m, w->idx, w->n, w->src);
		}
	}
}

/*
 * Eviction's engine: write the dirty runs (INACTIVE pages, BUSY) back from
 * the shadow, those of one map in one batch, and set each run's err.
 * Clean runs, read-ahead and private maps' runs are not written.
 */
void uffd__writeback_runs(struct uffd_pager *p, struct run *r, int nr)
{
	struct wrun w[BATCH_PAGES];
	int i, j, nw, at[BATCH_PAGES];

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
}

/* One page of a write-back batch. */
struct wb_page {
	size_t idx;
	enum page_state was;
	bool dirty;
	bool gone;		/* mapped, it was not there (zapped.c) */
	bool not_ours;		/* nor is its address the map's any more */
	int err;
};

/*
 * Copy the dirty pages of a batch out, for writing: each run of mapped
 * ones with one read of the map, which finds those the program zapped
 * (gone: not written), the inactive ones from their shadow.  Into buf, or
 * without one the mapped pages into their shadow (the inactive ones are
 * there already).
 */
static void copy_batch(struct uffd_pager *p, struct pmap *m, struct wb_page *w, int n,
		       char *buf)
{
	size_t ps = m->psize;
	uint64_t gone;
	int i, j, k;

	for (i = 0; i < n; i = j) {
		j = i + 1;
		if (!w[i].dirty)
			continue;
		if (w[i].was != P_ACTIVE) {
			if (buf)
				copy_protected_page(buf + i * ps, shadow_addr(m, w[i].idx), ps);
			continue;
		}
		while (j < n && w[j].was == P_ACTIVE && w[j].dirty && w[j].idx == w[j - 1].idx + 1)
			j++;
		gone = uffd__copy_out(p, m, w[i].idx, j - i,
				      buf ? buf + i * ps : shadow_addr(m, w[i].idx), 0);
		for (k = i; k < j; k++)
			if (gone >> (k - i) & 1) {
				w[k].gone = true;
				w[k].dirty = false;
			}
	}
}

/*
 * Write back (and with drop, zap) the pages of one batch, all BUSY.
 * Mapped dirty pages are protected with one ioctl over their span, copied
 * out (ordered by the protection), written in contiguous runs, and let go
 * with one wake; everything dropped is zapped with one TLB flush.
 * The copies go to the bounce buffer, or when there is none to their own
 * shadow (where the inactive pages are already), zapped again after.
 * Without the lock.
 */
static void writeback_batch(struct uffd_pager *p, struct pmap *m, struct wb_page *w, int n,
			    bool drop)
{
	size_t first = SIZE_MAX, last = 0, ps = m->psize;
	char *buf = uffd__bounce_get(p, n * ps);
	struct wrun runs[BATCH_PAGES];
	int i, j, k, nr, err = 0, first_of[BATCH_PAGES];
	struct zap z = { .n = 0 };

	if (!buf)
		uffd__shadow_ready(p);
	for (i = 0; i < n; i++)
		if (w[i].was == P_ACTIVE && (w[i].dirty || drop)) {
			first = first < w[i].idx ? first : w[i].idx;
			last = w[i].idx;
		}
	/* The mapped pages to copy or zap are protected with one ioctl over
	 * their span (clean ones are already; the holes and inactive pages
	 * between do not mind), which also asks whether they are still the
	 * map's: ENOENT, some are not, and each is asked alone (zapped.c). */
	if (first != SIZE_MAX)
		err = uffd_writeprotect(&p->u, page_addr(m, first), (last - first + 1) * ps,
					m->writable, 0);
	if (err == -ENOENT) {
		err = 0;
		for (i = 0; i < n; i++)
			if (w[i].was == P_ACTIVE && (w[i].dirty || drop) &&
			    !uffd__range_ours(p, m, w[i].idx, 1)) {
				w[i].gone = w[i].not_ours = true;
				w[i].dirty = false;
			}
	}
	if (!err)
		copy_batch(p, m, w, n, buf);
	/* Write each contiguous run of dirty pages at once, all in flight. */
	for (i = 0, nr = 0; i < n; i = j) {
		for (j = i + 1; j < n && w[j].dirty == w[i].dirty &&
		     w[j].idx == w[j - 1].idx + 1; j++)
			;
		if (w[i].dirty) {
			runs[nr] = (struct wrun){ w[i].idx, j - i,
						  buf ? buf + i * ps : shadow_addr(m, w[i].idx),
						  err };
			first_of[nr++] = i;
		}
	}
	if (!err)
		store_write_runs(m, runs, nr);
	for (k = 0; k < nr; k++)
		for (i = first_of[k]; i < first_of[k] + (int)runs[k].n; i++)
			w[i].err = runs[k].err;
	for (i = 0; i < n; i++) {
		if (drop && !w[i].err && !w[i].not_ours)
			uffd__zap_add(p, &z, w[i].was == P_INACTIVE ? shadow_addr(m, w[i].idx)
								    : page_addr(m, w[i].idx), ps);
		/* A mapped page's copy in its shadow goes whatever happened. */
		if (!buf && w[i].was == P_ACTIVE && (w[i].dirty || w[i].gone))
			uffd__zap_add(p, &z, shadow_addr(m, w[i].idx), ps);
	}
	uffd__zap_flush(p, &z);
	if (first != SIZE_MAX)
		uffd_wake(&p->u, page_addr(m, first), (last - first + 1) * ps);
}

/*
 * Write back the dirty pages of [idx, idx+n) of m; with drop, also evict
 * every page there.  Waits for busy pages (after letting go of its own).
 * Returns 0 or the first error.
 */
int uffd__writeback_range(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
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
				uffd__page_clear_dirty(p, m, i);
			w[nw++] = (struct wb_page){ i, s, dirty, false, false, 0 };
		}
		if (nw) {
			m->users++;
			pthread_mutex_unlock(&p->lock);
			writeback_batch(p, m, w, nw, drop);
			pthread_mutex_lock(&p->lock);
			uffd__map_unuse(p, m);
		}
		seq = (uint32_t)uffd_region_read_seq(m->region);
		for (k = 0; k < nw; k++) {
			size_t pg = w[k].idx;

			if (w[k].err) {
				uffd__page_set_dirty(p, m, pg);
				uffd__page_unbusy(p, m, pg, w[k].was);
				if (!err)
					err = w[k].err;
			} else if (w[k].gone) {
				uffd__forget_gone(p, m, pg, !w[k].not_ours);
			} else if (drop) {
				uffd__page_evicted(p, m, pg, w[k].was, seq);
				STAT_ADD(&p->st, evictions, 1);
			} else {
				uffd__page_unbusy(p, m, pg, w[k].was);
			}
		}
		pthread_cond_broadcast(&p->changed);
		for (k = 0; k < nw; k++)
			if (w[k].err) {
				pthread_mutex_unlock(&p->lock);
				uffd__report_error(m, w[k].idx, 1, w[k].err, true);
				pthread_mutex_lock(&p->lock);
			}
		if (i < idx + n && m->state[i] == P_BUSY)
			uffd__wait_settled(p, m, i);
	}
	pthread_mutex_unlock(&p->lock);
	return err;
}
