/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Eviction: a two-list CLOCK, as the kernel does it.  User space can not
 * see the accessed bit, so the pager learns of accesses by taking pages
 * away.  Past half full, the clock hand walks the maps and deactivates the
 * ACTIVE pages it reaches (each passed over once per reference it holds):
 * a page is copied to its shadow and zapped, and a touch brings it back
 * with a cheap fault.  Past the high water mark, the inactive queue's
 * oldest pages - nobody touched them for the time of a whole list - are
 * evicted, dirty ones written back from the shadow, down to the low water
 * mark.  Read-ahead pages sit on the queue from the start and are dropped
 * as they are, unless used.
 *
 * Pages are worked on in runs, outside the lock (BUSY), and zapped
 * together: the zap is where the time goes, so it is batched (zap_flush).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pager_internal.h"

/*
 * Zapping pages costs a TLB shootdown, an IPI to every CPU running this
 * process - tens of microseconds on a VM.  So zaps are gathered and issued
 * as one process_madvise(MADV_DONTNEED) over all the ranges, which the
 * kernel flushes once (6.x; older kernels refuse it for our own pid and
 * each range is madvised on its own).  Only pages nobody else may touch
 * (BUSY, or shadow pages) are ever zapped, so repeating a zap is harmless.
 */
void uffd__zap_flush(struct uffd_pager *p, struct zap *z)
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

void uffd__zap_add(struct uffd_pager *p, struct zap *z, void *addr, size_t len)
{
	struct iovec *last = z->n ? &z->v[z->n - 1] : NULL;

	if (last && (char *)last->iov_base + last->iov_len == addr) {
		last->iov_len += len;
		return;
	}
	if (z->n == ZAP_MAX)
		uffd__zap_flush(p, z);
	z->v[z->n++] = (struct iovec){ addr, len };
}

/* Zap run r's pages in the map, but those that are not the map's any
 * more (zapped.c) - and with shadow, the shadow of those found gone. */
static void zap_run(struct uffd_pager *p, struct zap *z, const struct run *r, bool shadow)
{
	struct pmap *m = r->m;
	size_t k;

	for (k = 0; k < r->n; k++) {
		if (!(r->not_ours >> k & 1))
			uffd__zap_add(p, z, page_addr(m, r->idx + k), m->psize);
		if (shadow && (r->gone >> k & 1))	/* its copy is garbage */
			uffd__zap_add(p, z, shadow_addr(m, r->idx + k), m->psize);
	}
}

/*
 * Move the runs (ACTIVE pages set BUSY by the caller) to the shadow:
 * block writes, copy, zap, then let blocked writers re-fault (they find
 * the pages INACTIVE and reactivate them).  A page the program zapped or
 * unmapped meanwhile is not copied but forgotten (zapped.c).  Without the
 * lock.
 */
static void deactivate_runs(struct uffd_pager *p, struct run *r, int nr)
{
	struct zap z = { .n = 0 };
	size_t k;
	int i;

	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;

		/* Clean pages are write-protected already: protected again,
		 * which only asks whether they are still the map's.
		 * (Protecting never takes DONTWAKE: the kernel refuses the
		 * pair.) */
		r[i].err = uffd__protect_ours(p, m, r[i].idx, r[i].n, &r[i].not_ours);
		if (r[i].err && r[i].dirty)
			continue;	/* can not block writers: keep them */
		r[i].err = 0;
		/* Writers are blocked now: the copy is ordered by the kernel,
		 * and reads the map without touching it. */
		r[i].gone = uffd__copy_out(p, m, r[i].idx, r[i].n, shadow_addr(m, r[i].idx),
					   r[i].not_ours);
		zap_run(p, &z, &r[i], true);
	}
	uffd__zap_flush(p, &z);
	/* (A clean run was protected before: a writer blocked on it is a
	 * WP fault that on_wp wakes once the run settles.) */
	for (i = 0; i < nr; i++)
		if (r[i].m->writable && r[i].dirty && !r[i].err)
			uffd_wake(&p->u, page_addr(r[i].m, r[i].idx), r[i].n * r[i].m->psize);
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;
		size_t gone = __builtin_popcountll(r[i].gone);

		for (k = 0; k < r[i].n; k++)
			if (r[i].err)
				uffd__page_unbusy(p, m, r[i].idx + k, P_ACTIVE);
			else if (r[i].gone >> k & 1)
				uffd__forget_gone(p, m, r[i].idx + k, !(r[i].not_ours >> k & 1));
			else
				uffd__page_deactivated(p, m, r[i].idx + k);
		if (r[i].err) {
			uffd__queue_unreserve(p, r[i].n);
		} else {
			uffd__queue_unreserve(p, gone);
			STAT_ADD(&p->st, deactivations, r[i].n - gone);
		}
		uffd__map_unuse(p, m);
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Advance the clock hand over ACTIVE, unpinned pages and deactivate up to
 * what the inactive list lacks (at least a batch, at most BATCH_PAGES, and
 * no more than the queue has room for), in contiguous runs.  Called with
 * the lock held; returns with it held.  Returns pages deactivated.
 */
static size_t deactivate_some(struct uffd_pager *p)
{
	size_t done = 0, scanned = 0, total = 0, want = BATCH_PAGES;
	struct run r[ZAP_MAX];
	bool counted_down = false;
	struct pmap *m;
	int nr = 0;

	/* Shadow pages still to be freed must go before any is reused. */
	uffd__zap_flush(p, &p->shadow_zap);
	/* Nothing the hand may take: all inactive or read ahead, or nothing
	 * new since a turn that found nothing. */
	if (p->resident <= p->inactive + p->stream_bytes ||
	    (p->hand_idle && p->idle_gen == p->eligible_gen))
		return 0;
	if (p->inactive < inactive_target(p) &&
	    (inactive_target(p) - p->inactive) / uffd_page_size() < want)
		want = (inactive_target(p) - p->inactive) / uffd_page_size() + 1;
	/* Each page taken goes on the queue: room first. */
	want = uffd__queue_reserve(p, want);
	if (!want)
		return 0;
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
		r[nr++] = (struct run){ m, start, n, dirty, 0, false, 0, 0 };
		done += n;
	}
	uffd__queue_unreserve(p, want - done);
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
	struct zap z = { .n = 0 };
	int i;

	uffd__writeback_runs(p, r, nr);
	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;

		if (r[i].drop) {	/* mapped, clean, protected: just zap */
			uffd__protect_ours(p, m, r[i].idx, r[i].n, &r[i].not_ours);
			zap_run(p, &z, &r[i], false);
		} else if (!r[i].err) {
			uffd__zap_add(p, &z, shadow_addr(m, r[i].idx), r[i].n * m->psize);
		}
	}
	uffd__zap_flush(p, &z);
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < nr; i++) {
		struct pmap *m = r[i].m;
		uint32_t seq = (uint32_t)uffd_region_read_seq(m->region);
		size_t k;

		/* (A dropped page was mapped, the others in the shadow.) */
		for (k = r[i].idx; k < r[i].idx + r[i].n; k++)
			if (r[i].err)
				uffd__page_unbusy(p, m, k, P_INACTIVE);
			else
				uffd__page_evicted(p, m, k, r[i].drop ? P_ACTIVE : P_INACTIVE,
						   seq);
		if (r[i].err && !m->error)
			m->error = r[i].err;
		if (!r[i].err)
			STAT_ADD(&p->st, evictions, r[i].n);
		uffd__map_unuse(p, m);
	}
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < nr; i++)
		if (r[i].err)
			uffd__report_error(r[i].m, r[i].idx, r[i].n, r[i].err, true);
}

/* Add inactive page idx of m to the runs (merging with the last); each
 * run holds a use of its map.  Lock held. */
static int add_to_runs(struct run *r, int nr, struct pmap *m, size_t idx, bool drop)
{
	bool dirty = m->pflags[idx] & PF_DIRTY;
	struct run *last = nr ? &r[nr - 1] : NULL;

	if (last && last->m == m && last->idx + last->n == idx && last->dirty == dirty &&
	    last->drop == drop && last->n < BATCH_PAGES) {
		last->n++;
		return nr;
	}
	r[nr] = (struct run){ m, idx, 1, dirty, 0, drop, 0, 0 };
	m->users++;
	return nr + 1;
}

/*
 * Bring the buffer down to goal bytes: keep the inactive list at its
 * target (inactive_target), evict from its old end, a batch at a time.  Called
 * with the lock held; returns with it held.  Returns false when nothing
 * could be done (every page pinned, busy, or dirty in a private map).
 */
bool uffd__evict_to(struct uffd_pager *p, size_t goal)
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
		while (want && nr < ZAP_MAX && uffd__queue_pop(p, &e)) {
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
			/* Only pages others work on are queued (BUSY): make
			 * more inactive, or wait for them. */
			if (p->qlen && !deactivate_some(p) && !deactivate_some(p))
				return false;
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		evict_runs(p, r, nr);
		pthread_mutex_lock(&p->lock);
	}
	return true;
}

void *uffd__evictor_main(void *arg)
{
	struct uffd_pager *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		if (p->resident > p->high) {
			if (!uffd__evict_to(p, p->low))
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
