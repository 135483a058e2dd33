/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Faults' reads in flight together.  A servicing thread that reads its
 * fault's page itself has one read in flight, and with several threads
 * faulting each read goes to the device on its own - here a doorbell (a
 * VM exit) and a sleep per page, one device latency per fault.
 *
 * So where the store reads in batches (read_batch: io_uring), a fault on
 * an EMPTY page queues its read, and the servicing thread that finds no
 * other one reading (at most JOB_READERS read at once) takes every read
 * queued for one store, has them all in flight together, and maps each
 * with a copy that wakes its faulting thread - its own read first, so a
 * lone fault is read at once, as before.  The others return deferred and
 * go back for the next fault: while one read is in flight, the faults
 * that come meanwhile gather for the next batch, as many as there are
 * threads faulting.  This is flat combining; nothing is handed to a
 * sleeping thread, whose wake-up costs more here than a read.
 *
 * A read that fails poisons its faulting page (SIGBUS, as in the
 * servicing thread); a page wholly past the store's end too.  A copy that
 * fails otherwise wakes the thread, which faults again.
 */
#include <errno.h>
#include <stdint.h>

#include "pager_internal.h"

#define SERVICE_ROUNDS	8		/* batches a servicing thread reads */

/* Up to max queued reads, oldest first, all of the first one's store (one
 * batch goes to one store).  Lock held. */
static int jobs_take(struct uffd_pager *p, struct fill_job *j, int max)
{
	const struct uffd_store *s;
	int i, n = 0, left = 0;

	if (!p->njobs)
		return 0;
	s = p->jobs[0].m->store;
	for (i = 0; i < p->njobs; i++) {
		if (n < max && p->jobs[i].m->store == s)
			j[n++] = p->jobs[i];
		else
			p->jobs[left++] = p->jobs[i];
	}
	p->njobs = left;
	return n;
}

/* Job j's fill failed: SIGBUS for its thread if its page can not be read,
 * else a wake so it faults again. */
static void fill_failed(struct uffd_pager *p, const struct fill_job *j)
{
	struct pmap *m = j->m;
	char *a = page_addr(m, j->fault_idx);
	bool bad;

	pthread_mutex_lock(&p->lock);
	bad = m->state[j->fault_idx] == P_BAD || !clipped_len(m, j->fault_idx, 1);
	pthread_mutex_unlock(&p->lock);
	if (!bad || uffd_poison(&p->u, a, m->psize, 0, NULL))
		uffd_wake(&p->u, a, m->psize);
}

/* Read the jobs (all of one store) at once, map each and wake its thread.
 * Without the lock. */
static void jobs_fill(struct uffd_pager *p, struct fill_job *j, int n)
{
	struct uffd_store_io io[JOB_BATCH];
	const struct uffd_store_ops *ops = j[0].m->store->ops;
	size_t total = 0, at = 0;
	char *buf;
	int i;

	for (i = 0; i < n; i++)
		total += j[i].n * j[i].m->psize;
	/* One buffer for all, or each job through its shadow. */
	buf = uffd__bounce_get(p, total);
	if (!buf)
		uffd__shadow_ready(p);
	for (i = 0; i < n; i++) {
		struct pmap *m = j[i].m;

		io[i] = (struct uffd_store_io){ buf ? buf + at : shadow_addr(m, j[i].idx),
						clipped_len(m, j[i].idx, j[i].n),
						store_off(m, j[i].idx), 0 };
		at += j[i].n * m->psize;
	}
	if (n > 1)
		ops->read_batch(j[0].m->store->data, io, n);
	else
		io[0].res = uffd__store_read(j[0].m, j[0].idx, j[0].n, io[0].buf);
	for (i = 0; i < n; i++) {
		struct pmap *m = j[i].m;
		ssize_t got = io[i].res;

		if (n > 1)
			got = uffd__read_done(m, io[i].buf, j[i].n * m->psize, got);
		if (uffd__map_read(p, m, NULL, j[i].idx, j[i].n, io[i].buf, got,
				   j[i].fault_idx, j[i].write, true))
			fill_failed(p, &j[i]);
	}
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < n; i++)
		uffd__map_unuse(p, j[i].m);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Read what is queued, batch after batch, for at most rounds batches (0:
 * until nothing is).  Lock held; let go of while reading.
 */
void uffd__jobs_drain(struct uffd_pager *p, int rounds)
{
	struct fill_job j[JOB_BATCH];
	int nj, done = 0;

	p->job_readers++;
	while ((!rounds || done++ < rounds) && (nj = jobs_take(p, j, JOB_BATCH))) {
		pthread_mutex_unlock(&p->lock);
		jobs_fill(p, j, nj);
		pthread_mutex_lock(&p->lock);
	}
	p->job_readers--;
}

/*
 * The read of pages [idx, idx+n) of m (claimed BUSY) for a fault on idx:
 * queued, and read now by this thread with whatever else is queued, unless
 * JOB_READERS threads read already (one of them takes it next).  A
 * servicing thread reads SERVICE_ROUNDS batches at most - it holds the
 * handler's region table meanwhile, which an unmap waits for - and hands
 * what is left to the readers (readahead.c), which take it before any
 * read-ahead.  False when the store has no batches or the queue is full:
 * the caller reads it alone.  Lock held; when true, released.
 */
bool uffd__fill_batched(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			bool write)
{
	if (!m->store->ops->read_batch || p->njobs == JOBS_MAX)
		return false;
	p->jobs[p->njobs++] = (struct fill_job){ m, idx, n, idx, write };
	m->users++;
	if (p->job_readers < JOB_READERS) {
		uffd__jobs_drain(p, SERVICE_ROUNDS);
		if (p->njobs && !p->job_readers)
			pthread_cond_signal(&p->read_work);
	}
	pthread_mutex_unlock(&p->lock);
	return true;
}
