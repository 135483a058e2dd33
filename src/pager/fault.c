/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault path: the runtime's servicing threads call on_missing for a
 * page that is not mapped and on_wp for the first write to a clean one.
 *
 * A MISSING fault finds its page in one of four states: ACTIVE (filled by
 * someone else since it faulted: just wake - unless the program zapped it,
 * zapped.c: then it is read again), INACTIVE (map it back from the
 * shadow - a hit, no I/O), BAD (SIGBUS again) or EMPTY (read it from the
 * store, with the window read-ahead gives it, together with other faults'
 * reads where the store reads in batches - batch.c).  A fault raised before its
 * page was last evicted is stale: the fill that came in between woke its
 * thread, so it only wakes (stale_fault).
 *
 * A write-protect fault marks its page dirty and lets the write through;
 * if the page went inactive while the write waited, the write re-faults as
 * MISSING and takes the page back.
 *
 * In-thread mode runs the same two callbacks in the faulting thread's
 * SIGBUS handler (runtime/inthread.c).  What they do there is safe for
 * these reasons:
 *  - The pager's lock: the interrupted code holds it only inside a pager
 *    call, and no pager call touches map memory while it holds it - its
 *    threads and calls copy mapped pages only with the lock let go.
 *  - Waits (for a BUSY page, for room) are condition waits under that
 *    lock, and store reads are system calls: cancellation is off while
 *    the handler runs, so no thread ends holding a page or the lock.
 *  - Nothing is allocated: reads go into the in-thread buffers (bounce.c)
 *    and the inactive queue does not grow there (queue.c); a fault that
 *    evicts to make room writes back from the shadow.
 *  - A wake, a stale fault and a return of UFFD_FAULT_DEFERRED mean
 *    other things: nobody waits in the kernel (there is nothing to
 *    wake), the fault is the thread's access now (never stale), and
 *    DEFERRED makes the access fault again - so a fault reads its pages
 *    itself rather than queue them for a batch (each faulting thread has
 *    a read in flight anyway).
 */
#include <errno.h>

#include "pager_internal.h"

/* Wait for a BUSY page to settle.  Lock held. */
void uffd__wait_settled(struct uffd_pager *p, struct pmap *m, size_t idx)
{
	while (m->state[idx] == P_BUSY)
		pthread_cond_wait(&p->changed, &p->lock);
}

/* The page is mapped already: just let the faulting thread go (in-thread:
 * its access runs again). */
static int wake_only(struct pmap *m, size_t idx)
{
	if (!m->p->o.in_thread)
		uffd_wake(&m->p->u, page_addr(m, idx), m->psize);
	return UFFD_FAULT_DEFERRED;
}

/*
 * Map an INACTIVE page (set BUSY) back from the shadow.  Not taken (the
 * program unmapped it since it faulted: ENOENT, the fault dropped), it
 * stays INACTIVE.  Without lock.
 */
static int reactivate(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		      size_t idx, bool write_fault, bool dirty)
{
	size_t in;
	int ret;

	ret = uffd__map_in(m, f, idx, 1, shadow_addr(m, idx), idx, write_fault || dirty, &in);
	pthread_mutex_lock(&p->lock);
	if (!in) {
		uffd__page_unbusy(p, m, idx, P_INACTIVE);
	} else {
		/* The shadow copy is freed later, with others, but before the
		 * page can be deactivated into it again (deactivate_some
		 * flushes these first): queued while the page is still BUSY. */
		uffd__zap_add(p, &p->shadow_zap, shadow_addr(m, idx), m->psize);
		uffd__page_reactivated(p, m, idx, write_fault);
		STAT_ADD(&p->st, hits, 1);
	}
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return ret;
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
	size_t idx = page_index(m, f->addr), n, k;
	bool dirty, gone = false;
	int ret;

	STAT_ADD(&p->st, faults, 1);
	pthread_mutex_lock(&p->lock);
	uffd__wait_settled(p, m, idx);
	if (m->state[idx] == P_INACTIVE && (m->pflags[idx] & PF_PARKED))
		uffd__ra_marker(p, m, idx);
	uffd__ra_trim(p, m, idx);
	switch (m->state[idx]) {
	case P_ACTIVE:
		/* The program zapped it (zapped.c): read it again. */
		if (uffd__page_gone(p, m, idx)) {
			uffd__forget_gone(p, m, idx, true);
			gone = true;
			break;
		}
		/* Filled by read-ahead or another thread since it faulted. */
		pthread_mutex_unlock(&p->lock);
		STAT_ADD(&p->st, hits, 1);
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
	if (!p->o.in_thread && !gone && stale_fault(m, f, idx)) {
		/*
		 * Reading the page again would be waste: wake whoever may be
		 * waiting instead.  A thread that really waits faults again,
		 * and that fault is served.
		 */
		pthread_mutex_unlock(&p->lock);
		STAT_ADD(&p->st, hits, 1);
		return wake_only(m, idx);
	}
	n = uffd__ra_window(p, m, idx);
	k = uffd__claim_empty(p, m, idx, n);
	if (k > 1) {
		STAT_ADD(&p->st, read_ahead, k - 1);
		/* A reader's request the window covers goes on past it: else
		 * a reader held off long enough would find these pages
		 * evicted once the program is done with them, and read them
		 * again. */
		uffd__ra_trim(p, m, idx + k - 1);
	}
	/* Read with other faults' reads where the store batches them. */
	if (!p->o.in_thread && uffd__fill_batched(p, m, idx, k, f->write))
		return UFFD_FAULT_DEFERRED;
	pthread_mutex_unlock(&p->lock);
	ret = uffd__fill_claimed(p, m, f, idx, k, idx, f->write);
	return ret ? ret : UFFD_FAULT_RESOLVED;
}

static int on_wp(struct uffd_fault *f)
{
	struct pmap *m = f->data;
	struct uffd_pager *p = m->p;
	size_t idx = page_index(m, f->addr);
	int ret;

	pthread_mutex_lock(&p->lock);
	uffd__wait_settled(p, m, idx);
	if (m->state[idx] != P_ACTIVE) {
		/* Deactivated or evicted while the write waited: let it
		 * re-fault as MISSING. */
		pthread_mutex_unlock(&p->lock);
		return wake_only(m, idx);
	}
	uffd__page_set_dirty(p, m, idx);
	m->state[idx] = P_BUSY;
	pthread_mutex_unlock(&p->lock);
	STAT_ADD(&p->st, wp_faults, 1);
	/* The whole pager page (f->addr is the base page that faulted). */
	ret = uffd_writeprotect(&p->u, page_addr(m, idx), m->psize, false, 0);
	if (!ret)
		ret = uffd_fault_unprotect(f, uffd_page_size());
	pthread_mutex_lock(&p->lock);
	uffd__page_unbusy(p, m, idx, P_ACTIVE);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

const struct uffd_region_ops uffd__pager_ops = {
	.missing = on_missing,
	.wp = on_wp,
};
