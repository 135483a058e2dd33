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
 * and dropped when the ring is compacted.  Everything here runs under the
 * pager's lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "pager_internal.h"

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
int uffd__queue_push(struct uffd_pager *p, struct pmap *m, size_t idx, bool drop)
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
bool uffd__queue_pop(struct uffd_pager *p, struct qent *e)
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
