/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The buffer's accounts.  The pager keeps, under its lock, the bytes
 * resident (mapped or in a shadow), inactive (in a shadow), pinned (never
 * evicted: asked for, or the only copy of a private change) and read
 * ahead (PF_STREAM: left to the queue, not to the hand), the hand's
 * eligible_gen, and each page's state, flags and dropped_seq.  Every move
 * of a page that changes one of them is a function here:
 *
 *   claim (EMPTY -> BUSY)       unclaim (BUSY -> EMPTY)
 *   filled (BUSY -> ACTIVE)     deactivated (BUSY -> INACTIVE)
 *   parked (BUSY -> INACTIVE, read straight into the shadow)
 *   reactivated (-> ACTIVE)     evicted (-> EMPTY)      unbusy (-> as was)
 *
 * so each count is written in one place.  Claiming is what makes room: a
 * fault that would push the buffer over evicts in its own thread, and
 * waits - not for long - when every page is busy.  Everything here runs
 * under the pager's lock, but report_error.
 */
#include <errno.h>

#include "pager_internal.h"

#define RESERVE_WAITS	250		/* 2 ms waits for room, at most */

static void account(struct uffd_pager *p, ssize_t bytes)
{
	p->resident += bytes;
	if (p->resident > p->resident_peak)
		p->resident_peak = p->resident;
	if (p->resident > p->high || aging(p))
		pthread_cond_broadcast(&p->work);
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
		if (!uffd__evict_to(p, cap - bytes)) {
			timed_wait(&p->changed, &p->lock, 2);
			waits++;
		}
	}
	account(p, bytes);
}

/*
 * Claim up to n EMPTY pages from idx (stopping at the first that is not),
 * making room for them.  Lock held.  Returns pages claimed (BUSY).
 */
size_t uffd__claim_empty(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n)
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
void uffd__unclaim(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		   enum page_state to)
{
	set_state(m, idx, n, to);
	p->resident -= n * m->psize;
	pthread_cond_broadcast(&p->changed);
}

/* Read-ahead marks (PF_STREAM), counted: the hand has nothing to do when
 * every mapped page is one. */
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
 * Dirty marks.  A dirty page of a private map is the only copy of the
 * change, so it can not be evicted: it counts as pinned.
 */
void uffd__page_set_dirty(struct uffd_pager *p, struct pmap *m, size_t idx)
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

void uffd__page_clear_dirty(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (!(m->pflags[idx] & PF_DIRTY))
		return;
	m->pflags[idx] &= ~PF_DIRTY;
	if (m->flags & UFFD_PAGER_PRIVATE)
		p->pinned -= m->psize;
}

void uffd__page_pin(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (!(m->pflags[idx] & PF_PINNED))
		p->pinned += m->psize;
	m->pflags[idx] |= PF_PINNED;
}

static void unpin(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	if (m->pflags[idx] & PF_PINNED)
		p->pinned -= m->psize;
	m->pflags[idx] &= ~PF_PINNED;
}

/*
 * A fill mapped page idx (BUSY -> ACTIVE), passed over once by the hand.
 * A page read ahead, not asked for (stream), joins the queue as use-once;
 * the others - and one the queue has no room for - are the hand's to take.
 */
void uffd__page_filled(struct uffd_pager *p, struct pmap *m, size_t idx, bool stream)
{
	m->state[idx] = P_ACTIVE;
	stream_clear(p, m, idx);
	m->pflags[idx] = (m->pflags[idx] & ~PF_REF) | REF_FILLED << PF_REF_SHIFT;
	if (stream && !(m->pflags[idx] & PF_PINNED) &&
	    !uffd__queue_push(p, m, idx, true))
		stream_set(p, m, idx);
	else
		p->eligible_gen++;
}

/* Page idx went to the shadow (BUSY -> INACTIVE): queued for eviction, in
 * room the deactivation reserved before it took the page. */
void uffd__page_deactivated(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	m->state[idx] = P_INACTIVE;
	uffd__queue_push_reserved(p, m, idx, false);
	p->inactive += m->psize;
}

/* Read ahead into its shadow, not mapped (a stream's mark, readahead.c):
 * inactive from the start, in room reserved before the read. */
void uffd__page_parked(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	stream_clear(p, m, idx);
	m->pflags[idx] |= PF_PARKED;
	uffd__page_deactivated(p, m, idx);
}

/* A touch brought page idx back from the shadow (BUSY -> ACTIVE): passed
 * over three times by the hand; dirty if the touch was a write. */
void uffd__page_reactivated(struct uffd_pager *p, struct pmap *m, size_t idx, bool write)
{
	bool parked = m->pflags[idx] & PF_PARKED;

	p->inactive -= m->psize;
	m->pflags[idx] &= ~PF_PARKED;
	if (parked) {
		/* Read ahead, touched for the first time: use-once still. */
		uffd__page_filled(p, m, idx, true);
	} else {
		m->state[idx] = P_ACTIVE;
		p->eligible_gen++;
		m->pflags[idx] = (m->pflags[idx] & ~PF_REF) | REF_REUSED << PF_REF_SHIFT;
	}
	if (write)
		uffd__page_set_dirty(p, m, idx);
}

/*
 * Page idx left the buffer (was: what it was before it went BUSY; any
 * state when its map goes): it is EMPTY, clean, unpinned, and a fault
 * read before seq is stale (see stale_fault).
 */
void uffd__page_evicted(struct uffd_pager *p, struct pmap *m, size_t idx,
			enum page_state was, uint32_t seq)
{
	if (was == P_ACTIVE || was == P_INACTIVE)
		p->resident -= m->psize;
	if (was == P_INACTIVE)
		p->inactive -= m->psize;
	uffd__page_clear_dirty(p, m, idx);
	unpin(p, m, idx);
	stream_clear(p, m, idx);
	m->pflags[idx] &= ~PF_PARKED;
	m->state[idx] = P_EMPTY;
	m->dropped_seq[idx] = seq;
}

/* Work on page idx is over and it stays what it was (ACTIVE or INACTIVE);
 * an ACTIVE one may be the hand's to take again. */
void uffd__page_unbusy(struct uffd_pager *p, struct pmap *m, size_t idx,
		       enum page_state was)
{
	m->state[idx] = was;
	if (was == P_ACTIVE)
		p->eligible_gen++;
}

/* Take a map's remaining pages out of the buffer's accounts. */
void uffd__map_forget_pages(struct uffd_pager *p, struct pmap *m)
{
	size_t i;

	for (i = 0; i < m->npages; i++)
		uffd__page_evicted(p, m, i, m->state[i], 0);
}

/* A thread stops working on m unlocked (uffd_pager_unmap waits for it). */
void uffd__map_unuse(struct uffd_pager *p, struct pmap *m)
{
	m->users--;
	pthread_cond_broadcast(&p->changed);
}

void uffd__report_error(struct pmap *m, size_t idx, size_t n, int err, bool write)
{
	if (write)
		STAT_ADD(&m->p->st, write_errors, n);
	else
		STAT_ADD(&m->p->st, read_errors, n);
	if (m->p->o.on_error)
		m->p->o.on_error(page_addr(m, idx), n * m->psize, err, m->p->o.arg);
}
