/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file store's batches through io_uring (UFFD_STORE_URING, when built
 * with liburing; without it the store has no batch ops and the pager loops
 * over read and write, so the flag is accepted and does nothing).
 *
 * A batch keeps up to RING_ENTRIES I/Os in flight and refills the ring as
 * completions arrive.  An I/O that completes short is queued again for the
 * rest (a read ends when the rest reads 0 bytes: the end of the file), one
 * that O_DIRECT refuses (EINVAL) is queued again through the buffered fd,
 * and one the ring can not take (EAGAIN, or a ring that failed) is
 * finished synchronously after the ring is drained, so every I/O of the
 * batch has its result when the batch returns.
 *
 * Batches may run in several threads at once: each takes a ring of its own
 * from the store's pool of idle rings (making one when none is idle), so
 * there are as many rings as there were concurrent batches, never more, and
 * they go with the store.
 */
#ifdef HAVE_LIBURING

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>

#include "store_internal.h"

/* I/Os in flight per batch: enough to keep an NVMe queue busy, and the
 * pager's read-ahead windows are rarely more pages than this. */
#define RING_ENTRIES 64

/* Largest single submission: the sqe's length is 32 bits.  A larger I/O
 * is submitted again for the rest, like a short one. */
#define RING_MAX_IO (1u << 30)

struct store_ring {
	struct io_uring ring;
	struct store_ring *next;	/* in the idle list */
};

struct store_rings {
	pthread_mutex_t lock;
	struct store_ring *idle;
};

/* Where one I/O of the batch stands. */
struct io_progress {
	size_t done;		/* bytes transferred so far */
	bool buffered;		/* O_DIRECT refused it: use fd */
	bool direct;		/* the last submission went to dfd */
	bool finished;		/* io->res is final */
};

struct batch {
	struct file_store *fs;
	struct io_uring *ring;
	struct uffd_store_io *io;
	struct io_progress *st;
	bool write;
	bool draining;		/* the ring failed: submit nothing more */
	int queued;		/* prepared in the SQ, not yet submitted */
	int inflight;		/* submitted, not yet completed */
};

static struct store_ring *ring_new(void)
{
	struct store_ring *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return NULL;
	ret = io_uring_queue_init(RING_ENTRIES, &r->ring, 0);
	if (ret < 0) {
		free(r);
		errno = -ret;
		return NULL;
	}
	return r;
}

static void ring_free(struct store_ring *r)
{
	io_uring_queue_exit(&r->ring);
	free(r);
}

struct store_rings *store_rings_new(void)
{
	struct store_rings *rings = calloc(1, sizeof(*rings));
	int err;

	if (!rings)
		return NULL;
	rings->idle = ring_new();
	if (!rings->idle) {
		err = errno;
		free(rings);
		errno = err;
		return NULL;
	}
	pthread_mutex_init(&rings->lock, NULL);
	return rings;
}

void store_rings_free(struct store_rings *rings)
{
	struct store_ring *r;

	if (!rings)
		return;
	while ((r = rings->idle)) {
		rings->idle = r->next;
		ring_free(r);
	}
	pthread_mutex_destroy(&rings->lock);
	free(rings);
}

static struct store_ring *ring_get(struct store_rings *rings)
{
	struct store_ring *r;

	pthread_mutex_lock(&rings->lock);
	r = rings->idle;
	if (r)
		rings->idle = r->next;
	pthread_mutex_unlock(&rings->lock);
	return r ? r : ring_new();
}

static void ring_put(struct store_rings *rings, struct store_ring *r)
{
	pthread_mutex_lock(&rings->lock);
	r->next = rings->idle;
	rings->idle = r;
	pthread_mutex_unlock(&rings->lock);
}

static void finish(struct batch *b, int i, ssize_t res)
{
	b->io[i].res = res;
	b->st[i].finished = true;
}

/* Queue what is left of I/O i.  There is always an sqe: no more than
 * RING_ENTRIES are ever queued or in flight. */
static void prep(struct batch *b, int i)
{
	struct uffd_store_io *io = &b->io[i];
	struct io_progress *st = &b->st[i];
	char *p = (char *)io->buf + st->done;
	size_t len = io->len - st->done;
	uint64_t off = io->off + st->done;
	struct io_uring_sqe *sqe;
	int fd;

	if (b->draining)
		return;		/* finished synchronously later */
	if (!io->len) {
		finish(b, i, 0);
		return;
	}
	if (len > RING_MAX_IO)
		len = RING_MAX_IO;
	fd = st->buffered ? b->fs->fd : file_store_fd_for(b->fs, p, len, off);
	st->direct = fd == b->fs->dfd;
	sqe = io_uring_get_sqe(b->ring);
	if (b->write)
		io_uring_prep_write(sqe, fd, p, len, off);
	else
		io_uring_prep_read(sqe, fd, p, len, off);
	io_uring_sqe_set_data64(sqe, i);
	b->queued++;
}

static void complete(struct batch *b, int i, int res)
{
	struct io_progress *st = &b->st[i];

	b->inflight--;
	if (res == -EINTR) {
		prep(b, i);
	} else if (res == -EAGAIN) {
		;			/* left for the synchronous pass */
	} else if (res == -EINVAL && st->direct && !st->buffered) {
		st->buffered = true;	/* alignment guessed wrong */
		prep(b, i);
	} else if (res < 0) {
		finish(b, i, res);
	} else if (res == 0) {
		finish(b, i, b->write ? -EIO : (ssize_t)st->done);
	} else {
		st->done += res;
		if (st->done == b->io[i].len)
			finish(b, i, st->done);
		else
			prep(b, i);
	}
}

static void reap(struct batch *b)
{
	struct io_uring_cqe *cqe;
	int i, res;

	while (!io_uring_peek_cqe(b->ring, &cqe)) {
		i = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(b->ring, cqe);
		complete(b, i, res);
	}
}

/*
 * Wait for what the kernel still has, so no buffer is touched after the
 * batch returns.  False if even waiting fails: the ring is then dropped,
 * and an I/O redone synchronously may race its own lost completion, which
 * moves the same bytes.
 */
static bool drain(struct batch *b)
{
	struct io_uring_cqe *cqe;
	int ret;

	b->draining = true;
	while (b->inflight > 0) {
		ret = io_uring_wait_cqe(b->ring, &cqe);
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return false;
		reap(b);
	}
	return true;
}

/* Run the batch on the ring.  False if the ring must not be reused. */
static bool run_ring(struct batch *b, int n)
{
	int next = 0, ret;

	while (next < n || b->queued || b->inflight) {
		while (next < n && b->queued + b->inflight < RING_ENTRIES)
			prep(b, next++);
		if (!b->queued && !b->inflight)
			continue;	/* all of them were empty */
		ret = io_uring_submit_and_wait(b->ring, 1);
		if (ret >= 0) {
			b->queued -= ret;
			b->inflight += ret;
		} else if (ret != -EINTR && !((ret == -EAGAIN || ret == -EBUSY) &&
					      b->inflight > 0)) {
			/* the SQ keeps what it could not submit: drop it */
			drain(b);
			return false;
		}
		reap(b);
	}
	return true;
}

static int run_batch(struct file_store *fs, struct uffd_store_io *io, int n,
		     bool write)
{
	struct batch b = { .fs = fs, .io = io, .write = write };
	struct store_ring *r = NULL;
	int i, err = 0;
	ssize_t res;

	if (n < 0 || (n && !io))
		return -EINVAL;
	if (!n)
		return 0;
	b.st = calloc(n, sizeof(*b.st));
	if (b.st)
		r = ring_get(fs->rings);
	if (r) {
		b.ring = &r->ring;
		if (run_ring(&b, n))
			ring_put(fs->rings, r);
		else
			ring_free(r);
	}
	for (i = 0; i < n; i++) {
		if (!b.st || !b.st[i].finished) {
			size_t done = b.st ? b.st[i].done : 0;

			res = file_store_io(fs, (char *)io[i].buf + done,
					    io[i].len - done, io[i].off + done, write);
			io[i].res = res < 0 ? res : (ssize_t)(done + res);
		}
		if (io[i].res < 0 && !err)
			err = io[i].res;
	}
	free(b.st);
	return err;
}

int file_store_read_batch(void *store, struct uffd_store_io *io, int n)
{
	return run_batch(store, io, n, false);
}

int file_store_write_batch(void *store, struct uffd_store_io *io, int n)
{
	return run_batch(store, io, n, true);
}

#endif /* HAVE_LIBURING */
