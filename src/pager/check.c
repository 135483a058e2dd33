/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pager's invariants, checked for tests: once no thread works on a
 * page, the counts of account.c are the sums they stand for, and every
 * page eviction may take is on the inactive queue - a page that is not
 * would stay resident for good.  A test that makes allocations fail, or
 * races the pager's threads, asks this after the fact.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "pager_internal.h"

#define QUIET_WAITS	5000	/* 2 ms waits for the threads to settle */

/* No page BUSY, no thread working on a map unlocked.  Lock held. */
static bool quiet(const struct uffd_pager *p)
{
	const struct pmap *m;
	size_t i;

	if (p->nra || p->njobs || p->job_readers || p->qreserved)
		return false;
	for (i = 0; i < READERS; i++)
		if (p->ra_cur[i].m)
			return false;
	for (m = p->maps; m; m = m->next) {
		if (m->users)
			return false;
		for (i = 0; i < m->npages; i++)
			if (m->state[i] == P_BUSY)
				return false;
	}
	return true;
}

static int broken(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EUCLEAN;
}

/* Must page idx of m have a live entry on the queue? */
static bool must_be_queued(const struct pmap *m, size_t idx)
{
	uint8_t f = m->pflags[idx];

	/* A read-ahead page not used yet: dropped when its turn comes. */
	if (m->state[idx] == P_ACTIVE)
		return (f & (PF_STREAM | PF_DIRTY | PF_PINNED)) == PF_STREAM;
	if (m->state[idx] != P_INACTIVE)
		return false;
	/* Not evictable now - pinned, or a private map's change - or kept
	 * after a failed write-back, for a flush or the unmap. */
	if ((f & PF_PINNED) || ((f & PF_DIRTY) && (m->flags & UFFD_PAGER_PRIVATE)))
		return false;
	return !((f & PF_DIRTY) && m->error);
}

static int check_locked(struct uffd_pager *p, char *why, size_t len)
{
	size_t resident = 0, inactive = 0, pinned = 0, stream = 0, i, k;
	const char *bad = NULL;
	struct pmap *m;

	/* Mark the pages the queue's live entries stand for. */
	for (k = 0; k < p->qlen; k++) {
		const struct qent *e = &p->q[(p->qhead + k) % p->qcap];

		if (e->m && e->m->gen[e->idx] == e->gen &&
		    e->m->state[e->idx] == (e->drop ? P_ACTIVE : P_INACTIVE))
			e->m->pflags[e->idx] |= PF_CHECKED;
	}
	for (m = p->maps; m; m = m->next) {
		for (i = 0; i < m->npages; i++) {
			uint8_t s = m->state[i], f = m->pflags[i];

			m->pflags[i] &= ~PF_CHECKED;
			if (s == P_ACTIVE || s == P_INACTIVE)
				resident += m->psize;
			if (s == P_INACTIVE)
				inactive += m->psize;
			if (f & PF_PINNED)
				pinned += m->psize;
			if ((f & PF_DIRTY) && (m->flags & UFFD_PAGER_PRIVATE))
				pinned += m->psize;
			if (f & PF_STREAM)
				stream += m->psize;
			if (bad)
				continue;
			if ((f & PF_STREAM) && s != P_ACTIVE)
				bad = "marked read ahead, not mapped";
			else if (must_be_queued(m, i) && !(f & PF_CHECKED))
				bad = "evictable, not on the queue";
			if (bad)
				snprintf(why, len, "map %p page %zu (state %d, flags %#x): %s",
					 (void *)m->addr, i, s, f & ~PF_CHECKED, bad);
		}
	}
	if (bad)
		return -EUCLEAN;
	if (resident != p->resident || inactive != p->inactive || pinned != p->pinned ||
	    stream != p->stream_bytes)
		return broken(why, len, "counts: resident %zu (the pages say %zu), inactive %zu "
			      "(%zu), pinned %zu (%zu), read ahead %zu (%zu)", p->resident,
			      resident, p->inactive, inactive, p->pinned, pinned,
			      p->stream_bytes, stream);
	if (p->qlen > p->qcap)
		return broken(why, len, "queue: %zu entries in a ring of %zu", p->qlen, p->qcap);
	return 0;
}

/*
 * 0 when the invariants hold, else -EUCLEAN with the first broken one in
 * why (-EBUSY: the pager's threads did not settle within 10 s).
 */
int uffd__pager_check(struct uffd_pager *p, char *why, size_t len)
{
	int waits = 0, ret;

	pthread_mutex_lock(&p->lock);
	while (!quiet(p) && waits++ < QUIET_WAITS)
		timed_wait(&p->changed, &p->lock, 2);
	if (quiet(p)) {
		ret = check_locked(p, why, len);
	} else {
		broken(why, len, "the pager's threads do not settle");
		ret = -EBUSY;
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}
