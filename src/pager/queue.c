/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The inactive queue: the pages eviction may take, oldest first - pages
 * deactivated by the clock hand, and pages read ahead (drop entries:
 * evicted as they are, without a copy to the shadow).
 *
 * It is a ring of (map, page, generation) entries, and nothing is ever
 * taken out of its middle: a page that leaves the list (touched, written,
 * evicted by a flush) only moves on its generation or its state, which
 * makes its entry stale, and stale entries are passed over when popped
 * and dropped when the ring is compacted.  A page that is BUSY may yet
 * come back inactive, so its entry is kept until it settles.
 *
 * The ring grows as the list does, and growing can fail - and in an
 * in-thread fault, which runs in a SIGBUS handler, it is not tried (no
 * allocation there): an in-thread pager makes its ring for twice its
 * buffer's pages up front, room for every page that can be queued and
 * as many stale entries before a compaction.  A page must not
 * be made INACTIVE and then find no room on the queue - nothing would ever
 * evict it - so deactivation reserves its entries first (queue_reserve)
 * and takes only as many pages as it got room for; a read-ahead page that
 * finds no room is mapped as an ordinary page, left to the hand.  The
 * pager starts with a ring, so there is always some room to work in.
 * Everything here runs under the pager's lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "pager_internal.h"
#include "runtime/inthread.h"
#include "util/failalloc.h"

#define QUEUE_MIN	1024		/* entries the ring starts with */

static bool qent_live(const struct qent *e)
{
	if (!e->m || e->m->gen[e->idx] != e->gen)
		return false;
	if (e->drop)
		return e->m->state[e->idx] == P_ACTIVE &&
		       (e->m->pflags[e->idx] & (PF_STREAM | PF_DIRTY | PF_PINNED)) == PF_STREAM;
	return e->m->state[e->idx] == P_INACTIVE;
}

/*
 * The entry of a page someone works on (BUSY: a flush, a touch bringing it
 * back): it may come back as it was (written back and still inactive, a
 * reactivation that failed), and then it needs its entry, so the entry is
 * kept until its page has settled.
 */
static bool qent_held(const struct qent *e)
{
	return e->m && e->m->gen[e->idx] == e->gen && e->m->state[e->idx] == P_BUSY;
}

/* Drop stale entries (pages touched since), keeping the order. */
static void queue_compact(struct uffd_pager *p)
{
	size_t i, n = 0;

	for (i = 0; i < p->qlen; i++) {
		struct qent e = p->q[(p->qhead + i) % p->qcap];

		if (qent_live(&e) || qent_held(&e))
			p->q[(p->qhead + n++) % p->qcap] = e;
	}
	p->qlen = n;
}

/* A ring of at least need entries, the live ones kept in order.  0 or
 * -ENOMEM (the ring as it was). */
static int queue_grow(struct uffd_pager *p, size_t need)
{
	size_t ncap = p->qcap ? p->qcap * 2 : QUEUE_MIN, i;
	struct qent *nq;

	while (ncap < need)
		ncap *= 2;
	nq = fa_malloc(ncap * sizeof(*nq));
	if (!nq)
		return -ENOMEM;
	for (i = 0; i < p->qlen; i++)
		nq[i] = p->q[(p->qhead + i) % p->qcap];
	free(p->q);
	p->q = nq;
	p->qhead = 0;
	p->qcap = ncap;
	return 0;
}

/* The ring a pager starts with: a pager that has it can always work.  An
 * in-thread pager's covers its buffer (when that can not be had, the
 * fault path makes do with the room there is, and the evictors grow it). */
int uffd__queue_init(struct uffd_pager *p)
{
	int ret = queue_grow(p, QUEUE_MIN);

	if (!ret && p->o.in_thread)
		queue_grow(p, 2 * (p->o.buffer_bytes / uffd_page_size()) + QUEUE_MIN);
	return ret;
}

/*
 * Room for n more entries besides those promised already: the ring grows
 * if it must and can; if it can not (no memory), what room it has is
 * promised.  Returns the entries promised (up to n), each to be used by
 * queue_push_reserved or given back by queue_unreserve.
 */
size_t uffd__queue_reserve(struct uffd_pager *p, size_t n)
{
	size_t room;

	if (p->qlen + p->qreserved + n > p->qcap &&
	    p->qlen > 2 * (p->inactive / uffd_page_size()) + 64)
		queue_compact(p);
	if (p->qlen + p->qreserved + n > p->qcap && !uffd__in_fault_handler())
		queue_grow(p, p->qlen + p->qreserved + n);
	room = p->qcap - p->qlen - p->qreserved;
	if (n > room)
		n = room;
	p->qreserved += n;
	return n;
}

void uffd__queue_unreserve(struct uffd_pager *p, size_t n)
{
	p->qreserved -= n;
}

/* Append page idx (just made INACTIVE, or read ahead: drop) to the queue,
 * in room promised before. */
void uffd__queue_push_reserved(struct uffd_pager *p, struct pmap *m, size_t idx, bool drop)
{
	p->qreserved--;
	p->q[(p->qhead + p->qlen) % p->qcap] = (struct qent){ m, idx, ++m->gen[idx], drop };
	p->qlen++;
}

/* The same, room and all: 0, or -ENOMEM when there is none. */
int uffd__queue_push(struct uffd_pager *p, struct pmap *m, size_t idx, bool drop)
{
	if (!uffd__queue_reserve(p, 1))
		return -ENOMEM;
	uffd__queue_push_reserved(p, m, idx, drop);
	return 0;
}

/* The oldest live entry; stale ones go, held ones (qent_held) move to the
 * end, into the slot just freed.  false: none, after one pass. */
bool uffd__queue_pop(struct uffd_pager *p, struct qent *e)
{
	size_t n = p->qlen;

	while (n--) {
		*e = p->q[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		if (qent_live(e))
			return true;
		if (qent_held(e))
			p->q[(p->qhead + p->qlen++) % p->qcap] = *e;
	}
	return false;
}

/* A map goes: its entries become stale. */
void uffd__queue_forget(struct uffd_pager *p, struct pmap *m)
{
	size_t i;

	for (i = 0; i < p->qlen; i++) {
		struct qent *e = &p->q[(p->qhead + i) % p->qcap];

		if (e->m == m)
			e->m = NULL;
	}
}
