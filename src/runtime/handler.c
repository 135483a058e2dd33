/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handler: servicing threads, the message loop, events and lifetime.
 *
 * One idea makes the event handling correct with several threads reading
 * one userfaultfd: reading a batch and applying the events in it happen
 * under one per-fd mutex (read_lock).  The kernel lets a thread's mremap
 * return as soon as the REMAP message has been read, and the very next fault
 * at the new address may be read by another servicing thread; because that
 * thread's read waits for the lock, it sees the table already updated.
 * Faults are then resolved outside the lock, in parallel.
 *
 * How a thread waits is the other half of the cost.  A wake-up across vCPUs
 * costs ~100 us here, so by default a thread keeps polling the fd without
 * sleeping for spin_us after its last message (a sequential scan's next
 * fault arrives within ~20 us) and only then sleeps in poll(2) on the fd
 * and the stop eventfd.  sched_yield() in the spin lets a faulting thread
 * that shares the vCPU run.
 *
 * A servicing thread never waits for what a fork() of this process may
 * hold.  glibc's fork() holds the allocator's locks (and stdio's and
 * pthread_atfork's) across the system call, and with EVENT_FORK that
 * call waits until the FORK message is read: a reader that waited for one
 * of those locks would stop the fork, its own process's faults and exit()
 * for ever.  Starting a thread allocates (pthread_create() allocates the
 * TLS vector), so a forked child's thread is started by the starter, a
 * thread of the handler's own that reads no userfaultfd: it may wait for
 * a fork, which goes on once a servicing thread has read its FORK.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/pieces.h"
#include "inthread.h"
#include "runtime.h"
#include "util/failalloc.h"
#include "util/mmalloc.h"
#include "util/opts.h"
#include "util/clock.h"

#define DEFAULT_BATCH 64
#define MAX_BATCH 64
#define RETRY_MAX 256
/* A forked child's fd carries no "process gone" signal: check this often. */
#define CHILD_CHECK_MS 500

/* A fault to service, and the batch it was read in (uffd_fault.seq). */
struct pending {
	struct uffd_event ev;
	uint64_t seq;
};

struct worker {
	struct uffd_handler *h;
	struct handler_ctx *ctx;
	pthread_t thread;
	void *stack;
	bool started;
	struct uffd_handler_stats st;
	int nretry;
	struct pending retry[RETRY_MAX];
	struct worker *next;
};

struct uffd_handler {
	struct handler_ctx root;
	struct uffd_handler_opts opts;
	int stop_efd;
	int stopping;			/* atomic */
	bool running;
	bool stopped_once;		/* regions were unregistered by a stop */
	pthread_mutex_t lock;		/* contexts and workers lists */
	struct handler_ctx *children;
	struct worker *workers;
	/* The starter (EVENT_FORK only): starts the children's threads. */
	pthread_cond_t starter_cond;	/* with lock: a child waits, or stopping */
	pthread_t starter;
	void *starter_stack;
	bool starter_running;
	struct worker dispatcher;	/* UFFD_WAIT_EPOLL rounds */
	struct uffd_handler_stats extra; /* uffd_region_* outside callbacks */
};

struct uffd_handler_stats *handler_extra_stats(struct handler_ctx *ctx)
{
	return &ctx->h->extra;
}

static int ctx_init(struct handler_ctx *ctx, struct uffd_handler *h, struct uffd *u)
{
	int ret;

	memset(ctx, 0, sizeof(*ctx));
	ctx->h = h;
	ctx->u = u;
	ret = region_table_init(&ctx->table);
	if (ret)
		return ret;
	ret = -pthread_mutex_init(&ctx->read_lock, NULL);
	if (ret)
		region_table_destroy(&ctx->table);
	return ret;
}

static void ctx_destroy(struct handler_ctx *ctx)
{
	region_table_destroy(&ctx->table);
	pthread_mutex_destroy(&ctx->read_lock);
	if (ctx->is_child)
		uffd_close(&ctx->child_uffd);
}

static bool ctx_dead(struct handler_ctx *ctx)
{
	return __atomic_load_n(&ctx->dead, __ATOMIC_ACQUIRE);
}

void ctx_mark_dead(struct handler_ctx *ctx, struct uffd_handler_stats *st)
{
	if (!__atomic_exchange_n(&ctx->dead, 1, __ATOMIC_ACQ_REL))
		STAT_ADD(st, dead_contexts, 1);
}

/*
 * Options out of range are refused, not quietly mended: a thread count of
 * 100000 would start that many threads.
 */
static bool opts_valid(const struct uffd_handler_opts *o)
{
	return o->threads >= 0 && o->threads <= UFFD_HANDLER_MAX_THREADS &&
	       (unsigned)o->wait <= UFFD_WAIT_EPOLL &&
	       o->spin_us <= UFFD_HANDLER_MAX_SPIN_US && o->batch >= 0;
}

struct uffd_handler *uffd_handler_new(struct uffd *u, const struct uffd_handler_opts *o)
{
	struct uffd_handler_opts opts;
	struct uffd_handler *h;
	int fl, ret;

	if (!u) {
		errno = EINVAL;
		return NULL;
	}
	ret = uffd__load_opts(&opts, o, struct uffd_handler_opts, in_thread, batch);
	if (ret || !opts_valid(&opts)) {
		errno = ret ? -ret : EINVAL;
		return NULL;
	}
	if (u->fd < 0) {
		errno = EBADF;
		return NULL;
	}
	/* In-thread: the kernel must raise SIGBUS instead of queueing faults,
	 * and a forked child's faults would have no thread to go to. */
	if (opts.in_thread && (!(u->features & UFFD_F(UFFD_FEAT_SIGBUS)) ||
			       (u->features & UFFD_F(UFFD_FEAT_EVENT_FORK)))) {
		errno = EINVAL;
		return NULL;
	}
	h = fa_mm_zalloc(sizeof(*h));	/* (a test may make it fail) */
	if (!h)
		return NULL;
	h->opts = opts;
	if (!h->opts.threads)
		h->opts.threads = 1;
	/* In-thread, the thread only reads events, which are rare: it sleeps. */
	if (h->opts.wait == UFFD_WAIT_DEFAULT)
		h->opts.wait = opts.in_thread ? UFFD_WAIT_BLOCK : UFFD_WAIT_SPIN_THEN_BLOCK;
	if (!h->opts.spin_us)
		h->opts.spin_us = UFFD_DEFAULT_SPIN_US;
	if (!h->opts.batch || h->opts.batch > MAX_BATCH)
		h->opts.batch = DEFAULT_BATCH;
	/* Threads must never sleep in read(2): they could not be stopped. */
	fl = fcntl(u->fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(u->fd, F_SETFL, fl | O_NONBLOCK)))
		goto out_free;
	u->how |= UFFD_OPENED_NONBLOCK;
	h->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->stop_efd < 0)
		goto out_free;
	ret = ctx_init(&h->root, h, u);
	if (ret) {
		errno = -ret;
		goto out_efd;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->starter_cond, NULL);
	h->dispatcher.h = h;
	h->dispatcher.ctx = &h->root;
	if (opts.in_thread) {
		ret = uffd__inthread_attach(&h->root);
		if (ret) {
			ctx_destroy(&h->root);
			pthread_cond_destroy(&h->starter_cond);
			pthread_mutex_destroy(&h->lock);
			errno = -ret;
			goto out_efd;
		}
	}
	return h;
out_efd:
	close(h->stop_efd);
out_free:
	ret = errno;
	mm_free(h);
	errno = ret;
	return NULL;
}

struct uffd_region *uffd_handler_add(struct uffd_handler *h, void *addr, size_t len,
				     size_t page_size, unsigned modes,
				     const struct uffd_region_ops *ops, void *data)
{
	struct uffd_region *r;
	uint64_t start = (uintptr_t)addr;
	int ret;

	if (!page_size)
		page_size = uffd_page_size();
	if (!h || !len || (page_size & (page_size - 1)) || (start | len) & (page_size - 1)) {
		errno = EINVAL;
		return NULL;
	}
	/* In-thread: the signal frame of a fault goes on the faulting
	 * thread's stack, which therefore cannot be in the region; and the
	 * SIGBUS action must still be ours. */
	if (h->opts.in_thread) {
		if (uffd__inthread_holds_my_stack(start, len)) {
			errno = EINVAL;
			return NULL;
		}
		ret = uffd__inthread_check_action();
		if (ret) {
			errno = -ret;
			return NULL;
		}
	}
	r = mm_zalloc(sizeof(*r));
	if (!r)
		return NULL;
	*r = (struct uffd_region){ .ctx = &h->root, .start = start, .len = len,
				   .page_size = page_size, .modes = modes, .data = data };
	if (ops)
		r->ops = *ops;
	pthread_rwlock_wrlock(&h->root.table.lock);
	ret = region_table_insert(&h->root.table, r);
	pthread_rwlock_unlock(&h->root.table.lock);
	/* Published before registered: its first fault finds it. */
	if (!ret && h->opts.in_thread && (ret = uffd__inthread_republish()))
		goto out_remove;
	if (ret) {
		mm_free(r);
		errno = ret == -EEXIST ? EINVAL : -ret;
		return NULL;
	}
	ret = uffd_register(h->root.u, addr, len, modes, NULL);
	if (ret)
		goto out_remove;
	return r;
out_remove:
	pthread_rwlock_wrlock(&h->root.table.lock);
	region_table_remove(&h->root.table, r);
	pthread_rwlock_unlock(&h->root.table.lock);
	if (h->opts.in_thread)
		uffd__inthread_republish();	/* the table without r, or the old one */
	mm_free(r);
	errno = -ret;
	return NULL;
}

/*
 * Unregistering wakes threads blocked on MISSING faults there, but not
 * writers blocked on write-protect (6.18): wake the range too.  Both then
 * retry as ordinary faults (the kernel drops the uffd-wp bits on unregister).
 * In pieces, so the program's threads are not held up (core/pieces.h).
 */
static int unregister_and_wake(struct uffd *u, const struct uffd_region *r)
{
	void *addr = (void *)(uintptr_t)r->start;
	uint64_t off, n;
	int ret = 0, err;

	for (off = 0; off < r->len; off += n) {
		n = uffd__piece(r->len, off, r->page_size);
		err = uffd_unregister(u, (char *)addr + off, n);
		ret = ret ? ret : err;		/* the first error; the rest still go */
	}
	uffd_wake(u, addr, r->len);
	return ret;
}

int uffd_handler_remove(struct uffd_region *r)
{
	struct handler_ctx *ctx;
	int ret;

	if (!r)
		return -EINVAL;
	ctx = r->ctx;
	if (ctx->in_thread) {
		/* Unregistered first: no new fault is raised there.  One raised
		 * before may still come (a stray), and callbacks running now
		 * are waited out before the caller frees what they use. */
		ret = unregister_and_wake(ctx->u, r);
		pthread_rwlock_wrlock(&ctx->table.lock);
		region_table_remove(&ctx->table, r);
		pthread_rwlock_unlock(&ctx->table.lock);
		uffd__inthread_stray(r->start, r->start + r->len);
		while (uffd__inthread_republish())
			sched_yield();
		uffd__inthread_synchronize();
	} else {
		pthread_rwlock_wrlock(&ctx->table.lock);
		region_table_remove(&ctx->table, r);
		pthread_rwlock_unlock(&ctx->table.lock);
		ret = unregister_and_wake(ctx->u, r);
	}
	mm_free(r);
	/* Already unmapped (-EINVAL: nothing there) or the process is gone. */
	return ret == -ENOMEM || ret == -EINVAL ? 0 : ret;
}

/* Accessors: a NULL region has no address, data or uffd (NULL, errno
 * EINVAL) and a length, page size and count of 0. */
static void *no_region(void)
{
	errno = EINVAL;
	return NULL;
}

void *uffd_region_addr(const struct uffd_region *r)
{
	return r ? (void *)(uintptr_t)r->start : no_region();
}

size_t uffd_region_len(const struct uffd_region *r) { return r ? r->len : 0; }
size_t uffd_region_page_size(const struct uffd_region *r) { return r ? r->page_size : 0; }
void *uffd_region_data(const struct uffd_region *r)
{
	return r ? __atomic_load_n(&r->data, __ATOMIC_ACQUIRE) : no_region();
}

int uffd_region_set_data(struct uffd_region *r, void *data)
{
	if (!r)
		return -EINVAL;
	__atomic_store_n(&r->data, data, __ATOMIC_RELEASE);
	return 0;
}
struct uffd *uffd_region_uffd(const struct uffd_region *r) { return r ? r->ctx->u : no_region(); }

uint64_t uffd_region_read_seq(const struct uffd_region *r)
{
	return r ? __atomic_load_n(&r->ctx->read_seq, __ATOMIC_SEQ_CST) : 0;
}

/* ---- events ---------------------------------------------------------- */

static int register_all(struct handler_ctx *ctx);

/* A forked child: its own fd, a copy of the parent's regions, a thread. */
static void handle_fork(struct handler_ctx *parent, const struct uffd_event *ev,
			struct uffd_handler_stats *st)
{
	struct uffd_handler *h = parent->h;
	struct handler_ctx *child = mm_zalloc(sizeof(*child));
	int i;

	if (!child || ctx_init(child, h, NULL)) {
		mm_free(child);
		close(ev->fork.fd);	/* the child's faults complete normally */
		return;
	}
	child->is_child = true;
	/* The kernel gives the child's fd the flags the parent's fd was
	 * created with, not the O_NONBLOCK uffd_handler_new() set later. */
	fcntl(ev->fork.fd, F_SETFL, fcntl(ev->fork.fd, F_GETFL) | O_NONBLOCK);
	uffd_adopt(&child->child_uffd, ev->fork.fd, parent->u->features);
	child->u = &child->child_uffd;
	pthread_rwlock_rdlock(&parent->table.lock);
	for (i = 0; i < parent->table.n; i++) {
		struct uffd_region *copy = mm_zalloc(sizeof(*copy));

		if (!copy)
			break;
		*copy = *parent->table.v[i];
		copy->ctx = child;
		if (region_table_insert(&child->table, copy))
			mm_free(copy);
	}
	pthread_rwlock_unlock(&parent->table.lock);
	for (i = 0; i < child->table.n; i++)
		if (child->table.v[i]->ops.event)
			child->table.v[i]->ops.event(child->table.v[i], ev);
	/* Its thread comes from the starter: see the top of this file. */
	pthread_mutex_lock(&h->lock);
	child->next = h->children;
	h->children = child;
	child->awaits_thread = true;
	pthread_cond_signal(&h->starter_cond);
	pthread_mutex_unlock(&h->lock);
	STAT_ADD(st, contexts, 1);
}

static void handle_event(struct handler_ctx *ctx, const struct uffd_event *ev,
			 struct uffd_handler_stats *st)
{
	struct region_table *t = &ctx->table;

	switch (ev->type) {
	case UFFD_EV_FORK:
		STAT_ADD(st, events[0], 1);
		handle_fork(ctx, ev, st);
		return;
	case UFFD_EV_REMAP:
		STAT_ADD(st, events[1], 1);
		pthread_rwlock_wrlock(&t->lock);
		region_table_remap(t, ev->remap.from, ev->remap.to, ev->remap.len, ev);
		pthread_rwlock_unlock(&t->lock);
		if (ctx->in_thread)
			uffd__inthread_republish();
		return;
	case UFFD_EV_REMOVE:
		/* Still registered: the next fault there is a fresh MISSING. */
		STAT_ADD(st, events[2], 1);
		pthread_rwlock_rdlock(&t->lock);
		region_table_notify(t, ev->range.start, ev->range.end, ev);
		pthread_rwlock_unlock(&t->lock);
		return;
	case UFFD_EV_UNMAP:
		STAT_ADD(st, events[3], 1);
		pthread_rwlock_wrlock(&t->lock);
		region_table_unmap(t, ev->range.start, ev->range.end, ev);
		pthread_rwlock_unlock(&t->lock);
		if (ctx->in_thread)
			uffd__inthread_republish();
		return;
	default:
		STAT_ADD(st, events[4], 1);
		return;
	}
}

/* ---- faults ---------------------------------------------------------- */

bool range_set_add(struct range_set *s, uint64_t start, uint64_t end)
{
	int i;

	for (i = 0; i < s->n; i++) {
		if (start <= s->r[i].end && end >= s->r[i].start) {
			if (start < s->r[i].start)
				s->r[i].start = start;
			if (end > s->r[i].end)
				s->r[i].end = end;
			return true;
		}
	}
	if (s->n == RANGE_SET_MAX)
		return false;
	s->r[s->n].start = start;
	s->r[s->n].end = end;
	s->n++;
	return true;
}

bool range_set_contains(const struct range_set *s, uint64_t addr)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (addr >= s->r[i].start && addr < s->r[i].end)
			return true;
	return false;
}

void batch_add_wake(struct batch *b, uint64_t start, uint64_t end)
{
	if (range_set_add(&b->wake, start, end))
		return;
	batch_flush_wakes(b);
	range_set_add(&b->wake, start, end);
}

void batch_flush_wakes(struct batch *b)
{
	int i;

	for (i = 0; i < b->wake.n; i++) {
		uffd_wake(b->ctx->u, (void *)(uintptr_t)b->wake.r[i].start,
			  b->wake.r[i].end - b->wake.r[i].start);
		STAT_ADD(b->st, wakes, 1);
	}
	b->wake.n = 0;
}

/*
 * A MISSING or MINOR fault at an address in no region.  Mostly a fault
 * raised before its region was removed or moved: the range is no longer
 * registered there, and woken, the access runs against the new layout.
 * But an mremap(MREMAP_DONTUNMAP) leaves the old range mapped and still
 * registered with this userfaultfd, and its REMAP message looks like any
 * other, so no region covers it: woken, such a fault would come back
 * forever.  With no read of messages being applied (read_lock held, the
 * table looked at again), the page gets what the kernel gives a range
 * registered with no one: a zero page (MISSING; the moved pages are gone
 * from there) or the page cache's page (MINOR).  A range unregistered or
 * unmapped meanwhile fails in the kernel and is only woken; a REMAP,
 * REMOVE or UNMAP message not read yet makes the kernel refuse with
 * -EAGAIN, and the fault is retried once it is read.
 */
static int resolve_unknown(struct handler_ctx *ctx, const struct uffd_event *ev)
{
	uint64_t page = ev->fault.addr & ~(uint64_t)(uffd_page_size() - 1);
	void *addr = (void *)(uintptr_t)page;
	struct uffd_region *r;
	int ret = -ENOENT;

	pthread_mutex_lock(&ctx->read_lock);
	pthread_rwlock_rdlock(&ctx->table.lock);
	r = region_table_lookup(&ctx->table, ev->fault.addr);
	pthread_rwlock_unlock(&ctx->table.lock);
	if (!r && ev->fault.kind == UFFD_FAULT_MISSING)
		ret = uffd_zeropage(ctx->u, addr, uffd_page_size(), 0, NULL);
	else if (!r && ev->fault.kind == UFFD_FAULT_MINOR)
		ret = uffd_continue(ctx->u, addr, uffd_page_size(), 0, NULL);
	pthread_mutex_unlock(&ctx->read_lock);
	/* A region now (the layout changed meanwhile): serve it there. */
	return r ? -EAGAIN : ret;
}

/*
 * Service one fault.  Returns -EAGAIN when it must be retried after events
 * are read, 0 otherwise (resolved, deferred, or dropped).
 */
static int service_fault(struct batch *b, const struct pending *pf)
{
	const struct uffd_event *ev = &pf->ev;
	struct handler_ctx *ctx = b->ctx;
	struct uffd_fault f = { .exact = ev->fault.addr, .kind = ev->fault.kind,
				.write = ev->fault.write, .tid = ev->fault.tid,
				.seq = pf->seq, .batch_ = b };
	struct uffd_region *r;
	int ret;

	/* Already filled in this batch (read-ahead, or a fill that covered
	 * several faulting pages): its waiter is, or will be, woken. */
	if (range_set_contains(&b->resolved, ev->fault.addr)) {
		STAT_ADD(b->st, coalesced, 1);
		return 0;
	}
	pthread_rwlock_rdlock(&ctx->table.lock);
	r = region_table_lookup(&ctx->table, ev->fault.addr);
	if (!r) {
		pthread_rwlock_unlock(&ctx->table.lock);
		STAT_ADD(b->st, unknown_addr, 1);
		ret = ev->fault.kind == UFFD_FAULT_WP ? -ENOENT : resolve_unknown(ctx, ev);
		if (ret == -EAGAIN || ret == 0)
			return ret;
		/* Not ours (any more): let it re-fault against the new layout. */
		batch_add_wake(b, ev->fault.addr & ~(uint64_t)(uffd_page_size() - 1),
			       (ev->fault.addr & ~(uint64_t)(uffd_page_size() - 1)) +
			       uffd_page_size());
		return 0;
	}
	f.region = r;
	f.data = r->data;
	f.addr = (void *)(uintptr_t)(ev->fault.addr & ~(uint64_t)(r->page_size - 1));
	/* Callbacks run with the table read-locked so r stays valid. */
	ret = run_callback(&f);
	if (ret == -EAGAIN) {
		pthread_rwlock_unlock(&ctx->table.lock);
		return -EAGAIN;
	}
	if (ret < 0 && ret != -EAGAIN)
		STAT_ADD(b->st, callback_errors, 1);
	if (ret != UFFD_FAULT_DEFERRED && !f.resolved_)
		ret = fault_resolve_default(&f, ret < 0);
	pthread_rwlock_unlock(&ctx->table.lock);
	return ret == -EAGAIN ? -EAGAIN : 0;
}

static bool same_fault(const struct uffd_event *a, const struct uffd_event *b)
{
	/* Same page (base page: the region's may be larger, the kernel
	 * reports the faulting base page) and same kind. */
	uint64_t mask = ~(uint64_t)(uffd_page_size() - 1);

	return (a->fault.addr & mask) == (b->fault.addr & mask) &&
	       a->fault.kind == b->fault.kind;
}

/*
 * One round: read a batch (and apply its events) under read_lock, then
 * service the retried and new faults.  Returns messages read, 0 if none
 * were queued, or -errno.
 */
static int service_round(struct worker *w)
{
	struct handler_ctx *ctx = w->ctx;
	struct uffd_event ev[MAX_BATCH];
	struct pending faults[RETRY_MAX + MAX_BATCH];
	struct batch b = { .ctx = ctx, .st = &w->st };
	int i, j, n = 0, nfaults = 0;
	uint64_t t_read, seq = 0;

	if (w->nretry + w->h->opts.batch <= RETRY_MAX) {
		pthread_mutex_lock(&ctx->read_lock);
		/* In-thread faults wait on these (uffd__region_events_settle),
		 * and retry an unknown address while a read is being applied. */
		if (ctx->in_thread)
			__atomic_add_fetch(&ctx->ev_started, 1, __ATOMIC_SEQ_CST);
		n = uffd_read_events(ctx->u, ev, w->h->opts.batch, 0);
		/* Counted after the read: whatever a service does after reading
		 * the count (uffd_region_read_seq) came after these messages
		 * were read only if its count is this one or later. */
		if (n > 0)
			seq = __atomic_add_fetch(&ctx->read_seq, 1, __ATOMIC_SEQ_CST);
		for (i = 0; i < n; i++)
			if (ev[i].type != UFFD_EV_FAULT)
				handle_event(ctx, &ev[i], &w->st);
		if (ctx->in_thread)
			__atomic_store_n(&ctx->ev_done,
					 __atomic_load_n(&ctx->ev_started, __ATOMIC_SEQ_CST),
					 __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&ctx->read_lock);
		if (n < 0)
			return n;
	}
	t_read = mono_ns();
	if (n > 0) {
		STAT_ADD(&w->st, reads, 1);
		STAT_ADD(&w->st, messages, n);
	}
	memcpy(faults, w->retry, w->nretry * sizeof(faults[0]));
	nfaults = w->nretry;
	w->nretry = 0;
	for (i = 0; i < n; i++) {
		if (ev[i].type != UFFD_EV_FAULT)
			continue;
		STAT_ADD(&w->st, faults[ev[i].fault.kind], 1);
		for (j = 0; j < nfaults && !same_fault(&faults[j].ev, &ev[i]); j++)
			;
		if (j < nfaults) {
			STAT_ADD(&w->st, coalesced, 1);
			continue;
		}
		faults[nfaults++] = (struct pending){ ev[i], seq };
	}
	b.dontwake = nfaults > 1;
	for (i = 0; i < nfaults; i++) {
		if (service_fault(&b, &faults[i]) == -EAGAIN) {
			STAT_ADD(&w->st, retries, 1);
			w->retry[w->nretry++] = faults[i];
		}
		if (ctx_dead(ctx))
			break;
	}
	batch_flush_wakes(&b);
	if (nfaults > w->nretry) {
		uint64_t ns = mono_ns() - t_read;

		for (i = w->nretry; i < nfaults; i++)
			record_latency(&w->st, ns);
	}
	return n;
}

/* ---- threads ---------------------------------------------------------- */

static bool stopping(struct uffd_handler *h)
{
	return __atomic_load_n(&h->stopping, __ATOMIC_ACQUIRE);
}

/*
 * A child's userfaultfd gives no sign when the child exits.  Unregistering
 * a page below mmap_min_addr, where nothing is ever mapped, has no effect
 * and answers -EINVAL while the child's address space lives; once it is
 * gone the kernel cannot take a reference to it and answers -ENOMEM (6.18;
 * older kernels said -ESRCH).
 */
#define NEVER_MAPPED ((void *)0x1000)

static bool child_gone(struct handler_ctx *ctx)
{
	int ret = uffd_unregister(ctx->u, NEVER_MAPPED, uffd_page_size());

	return ret == -ENOMEM || ret == -ESRCH || ret == -ENOSPC;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct uffd_handler *h = w->h;
	struct handler_ctx *ctx = w->ctx;
	bool spin = h->opts.wait == UFFD_WAIT_SPIN_THEN_BLOCK;
	uint64_t spin_ns = (uint64_t)h->opts.spin_us * 1000, last = 0;

	while (!stopping(h) && !ctx_dead(ctx)) {
		struct pollfd pfd[2] = {
			{ .fd = ctx->u->fd, .events = POLLIN },
			{ .fd = h->stop_efd, .events = POLLIN },
		};
		int n = service_round(w), ready;

		if (n > 0 || w->nretry) {
			last = mono_ns();
			if (w->nretry)
				sched_yield();
			continue;
		}
		if (n < 0 && n != -EINTR) {
			/* Nothing but a signal makes reading a userfaultfd fail
			 * transiently: stop servicing this one. */
			ctx_mark_dead(ctx, &w->st);
			continue;
		}
		if (spin && mono_ns() - last < spin_ns) {
			sched_yield();
			continue;
		}
		ready = poll(pfd, 2, ctx->is_child ? CHILD_CHECK_MS : -1);
		if (ready == 0 && ctx->is_child && child_gone(ctx))
			ctx_mark_dead(ctx, &w->st);
		if (ready > 0 && (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)))
			ctx_mark_dead(ctx, &w->st);
	}
	return NULL;
}

static int start_worker(struct uffd_handler *h, struct handler_ctx *ctx)
{
	struct worker *w = mm_zalloc(sizeof(*w));
	int ret;

	if (!w)
		return -ENOMEM;
	w->h = h;
	w->ctx = ctx;
	ret = mm_thread_create(&w->thread, &w->stack, worker_main, w);
	if (ret) {
		mm_free(w);
		return ret;
	}
	w->started = true;
	pthread_mutex_lock(&h->lock);
	w->next = h->workers;
	h->workers = w;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/*
 * The starter: starts the thread of each child handle_fork() listed.  It
 * reads no userfaultfd, so it may wait in pthread_create() for a fork in
 * progress (see the top of this file).
 */
static void *starter_main(void *arg)
{
	struct uffd_handler *h = arg;
	struct handler_ctx *c;

	pthread_mutex_lock(&h->lock);
	while (!stopping(h)) {
		for (c = h->children; c && !c->awaits_thread; c = c->next)
			;
		if (!c) {
			pthread_cond_wait(&h->starter_cond, &h->lock);
			continue;
		}
		c->awaits_thread = false;
		pthread_mutex_unlock(&h->lock);
		if (start_worker(h, c))
			ctx_mark_dead(c, &h->extra);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Only a userfaultfd with EVENT_FORK has children to start threads for. */
static int start_starter(struct uffd_handler *h)
{
	int ret;

	if (!(h->root.u->features & UFFD_F(UFFD_FEAT_EVENT_FORK)))
		return 0;
	ret = mm_thread_create(&h->starter, &h->starter_stack, starter_main, h);
	h->starter_running = !ret;
	return ret;
}

/* The starter sees stopping: it starts no more threads. */
static void wake_starter(struct uffd_handler *h)
{
	pthread_mutex_lock(&h->lock);
	pthread_cond_broadcast(&h->starter_cond);
	pthread_mutex_unlock(&h->lock);
}

static void stop_starter(struct uffd_handler *h)
{
	struct handler_ctx *c;

	if (!h->starter_running)
		return;
	wake_starter(h);
	mm_thread_join(h->starter, h->starter_stack);
	h->starter_running = false;
	/* A child it did not get to has been stopped without a thread, and a
	 * later start does not bring children back. */
	pthread_mutex_lock(&h->lock);
	for (c = h->children; c; c = c->next)
		c->awaits_thread = false;
	pthread_mutex_unlock(&h->lock);
}

int uffd_handler_start(struct uffd_handler *h)
{
	int i, ret = 0;

	if (!h)
		return -EINVAL;
	if (h->running)
		return -EBUSY;
	if (h->stopped_once) {
		ret = register_all(&h->root);
		if (ret)
			return ret;
	}
	__atomic_store_n(&h->root.it_stopped, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&h->stopping, 0, __ATOMIC_RELEASE);
	h->running = true;
	ret = start_starter(h);
	for (i = 0; h->opts.wait != UFFD_WAIT_EPOLL && i < h->opts.threads && !ret; i++)
		ret = start_worker(h, &h->root);
	if (ret)
		uffd_handler_stop(h);
	return ret;
}

static void unregister_all(struct handler_ctx *ctx)
{
	int i;

	pthread_rwlock_rdlock(&ctx->table.lock);
	for (i = 0; i < ctx->table.n; i++)
		unregister_and_wake(ctx->u, ctx->table.v[i]);
	pthread_rwlock_unlock(&ctx->table.lock);
}

/* After a stop: register the regions again (a no-op where they still are). */
static int register_all(struct handler_ctx *ctx)
{
	int i, ret = 0;

	pthread_rwlock_rdlock(&ctx->table.lock);
	for (i = 0; i < ctx->table.n && !ret; i++)
		ret = uffd_register(ctx->u, (void *)(uintptr_t)ctx->table.v[i]->start,
				    ctx->table.v[i]->len, ctx->table.v[i]->modes, NULL);
	pthread_rwlock_unlock(&ctx->table.lock);
	return ret;
}

/* Fold a worker's counters into another set (a finished worker's into
 * extra, so they survive it; every set into the caller's answer). */
static void fold_stats(struct uffd_handler_stats *into, const struct uffd_handler_stats *from)
{
	uint64_t max = __atomic_load_n(&from->latency_ns_max, __ATOMIC_RELAXED);
	int i;

#define FOLD(field) \
	__atomic_fetch_add(&into->field, __atomic_load_n(&from->field, __ATOMIC_RELAXED), \
			   __ATOMIC_RELAXED)
	for (i = 0; i < 3; i++)
		FOLD(faults[i]);
	for (i = 0; i < 5; i++)
		FOLD(events[i]);
	FOLD(messages);
	FOLD(reads);
	FOLD(coalesced);
	FOLD(pages_resolved);
	FOLD(wakes);
	FOLD(retries);
	FOLD(eexist);
	FOLD(enoent);
	FOLD(unknown_addr);
	FOLD(callback_errors);
	FOLD(dead_contexts);
	FOLD(contexts);
	FOLD(latency_ns_sum);
	for (i = 0; i < UFFD_HIST_BUCKETS; i++)
		FOLD(hist[i]);
#undef FOLD
	if (max > __atomic_load_n(&into->latency_ns_max, __ATOMIC_RELAXED))
		__atomic_store_n(&into->latency_ns_max, max, __ATOMIC_RELAXED);
}
/* A new field of uffd_handler_stats must be folded above: this fails when
 * the struct grows past the fields listed (the reserved tail excepted). */
_Static_assert(offsetof(struct uffd_handler_stats, reserved_) ==
	       (3 + 5 + 14 + UFFD_HIST_BUCKETS) * sizeof(uint64_t),
	       "fold_stats() must fold every field of uffd_handler_stats");

/*
 * After unregister_all(ctx): the messages nobody read.  An madvise or a
 * munmap waits until its event is read, and a child's fd may outlive this
 * handler (a page server passes it to the client, where it can sit in a
 * socket that the child itself holds): unread, such a call would wait for
 * ever.  Events are applied as the workers would have (a restart must know
 * what was removed); the regions are not registered any more, so no new
 * ones come.  A FORK's fd is closed: its child is let go as every other
 * child is at a stop.  Faults were woken by the unregistering.
 */
static void drain_events(struct uffd_handler *h, struct handler_ctx *ctx)
{
	struct uffd_event ev[MAX_BATCH];
	int i, n, rounds = 64;

	pthread_mutex_lock(&ctx->read_lock);
	while (rounds-- > 0 && (n = uffd_read_events(ctx->u, ev, MAX_BATCH, 0)) > 0) {
		for (i = 0; i < n; i++) {
			if (ev[i].type == UFFD_EV_FORK)
				close(ev[i].fork.fd);
			else if (ev[i].type != UFFD_EV_FAULT)
				handle_event(ctx, &ev[i], &h->extra);
		}
	}
	pthread_mutex_unlock(&ctx->read_lock);
}

/* Workers of forked children may be added while we join: loop. */
static void join_workers(struct uffd_handler *h)
{
	struct worker *w;

	for (;;) {
		pthread_mutex_lock(&h->lock);
		w = h->workers;
		h->workers = NULL;
		pthread_mutex_unlock(&h->lock);
		if (!w)
			break;
		while (w) {
			struct worker *next = w->next;

			mm_thread_join(w->thread, w->stack);
			fold_stats(&h->extra, &w->st);
			mm_free(w);
			w = next;
		}
	}
}

int uffd_handler_stop(struct uffd_handler *h)
{
	struct handler_ctx *c;
	uint64_t one = 1;

	if (!h)
		return -EINVAL;
	if (!h->running)
		goto unregister;
	__atomic_store_n(&h->stopping, 1, __ATOMIC_RELEASE);
	if (write(h->stop_efd, &one, sizeof(one)) < 0)
		return -errno;
	wake_starter(h);
	join_workers(h);
	if (read(h->stop_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
unregister:
	/* In-thread: faults stop running callbacks, the ones running are
	 * waited out, then the regions go (a fault raised before is retried
	 * and finds plain memory). */
	if (h->opts.in_thread) {
		__atomic_store_n(&h->root.it_stopped, 1, __ATOMIC_RELEASE);
		uffd__inthread_synchronize();
	}
	unregister_all(&h->root);
	drain_events(h, &h->root);
	/* Only now: the starter may be waiting for a fork in progress, which
	 * goes on once the drain has read its FORK.  The threads it started
	 * meanwhile have seen stopping. */
	stop_starter(h);
	join_workers(h);
	for (c = h->children; c; c = c->next) {
		if (!ctx_dead(c))
			unregister_all(c);
		drain_events(h, c);
	}
	h->running = false;
	h->stopped_once = true;
	return 0;
}

void uffd_handler_free(struct uffd_handler *h)
{
	struct handler_ctx *c, *next;

	if (!h)
		return;
	uffd_handler_stop(h);
	if (h->opts.in_thread)
		uffd__inthread_detach(&h->root);
	for (c = h->children; c; c = next) {
		next = c->next;
		ctx_destroy(c);
		mm_free(c);
	}
	ctx_destroy(&h->root);
	pthread_cond_destroy(&h->starter_cond);
	pthread_mutex_destroy(&h->lock);
	close(h->stop_efd);
	mm_free(h);
}

/* Events are read and applied under read_lock: holding it once means any
 * event read before is applied. */
static void sync_ctx(struct handler_ctx *ctx)
{
	pthread_mutex_lock(&ctx->read_lock);
	pthread_mutex_unlock(&ctx->read_lock);
}

void uffd__handler_lock_events(struct uffd_handler *h)
{
	pthread_mutex_lock(&h->root.read_lock);
}

void uffd__handler_unlock_events(struct uffd_handler *h)
{
	pthread_mutex_unlock(&h->root.read_lock);
}

pthread_mutex_t *uffd__handler_events_lock_of(struct uffd_handler *h, const struct uffd *u)
{
	pthread_mutex_t *lock = NULL;
	struct handler_ctx *c;

	if (h->root.u == u)
		return &h->root.read_lock;
	/* Contexts live as long as h: only the list needs its lock. */
	pthread_mutex_lock(&h->lock);
	for (c = h->children; c && !lock; c = c->next)
		if (c->u == u)
			lock = &c->read_lock;
	pthread_mutex_unlock(&h->lock);
	return lock;
}

int uffd_handler_sync(struct uffd_handler *h)
{
	struct handler_ctx *c;

	if (!h)
		return -EINVAL;
	sync_ctx(&h->root);
	pthread_mutex_lock(&h->lock);
	for (c = h->children; c; c = c->next)
		sync_ctx(c);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* In-thread callbacks cannot take read_lock (the interrupted thread may
 * hold it): the reads are counted instead, begun and applied. */
void uffd__handler_events_settle(struct uffd_handler *h)
{
	uint64_t want;

	if (!h->root.in_thread) {
		uffd_handler_sync(h);
		return;
	}
	want = __atomic_load_n(&h->root.ev_started, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&h->root.ev_done, __ATOMIC_SEQ_CST) < want)
		sched_yield();
}

int uffd_handler_fd(struct uffd_handler *h)
{
	return h ? h->root.u->fd : -EINVAL;
}

int uffd_handler_dispatch(struct uffd_handler *h)
{
	int n, total = 0;

	if (!h || h->opts.wait != UFFD_WAIT_EPOLL)
		return -EINVAL;
	do {
		n = service_round(&h->dispatcher);
		if (n < 0)
			return n;
		total += n;
		if (h->dispatcher.nretry)
			sched_yield();
	} while ((n > 0 || h->dispatcher.nretry) && !ctx_dead(&h->root));
	return total;
}

int uffd_handler_stats(struct uffd_handler *h, struct uffd_handler_stats *s)
{
	struct worker *w;

	if (!h || !s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->contexts = 1;
	fold_stats(s, &h->extra);
	fold_stats(s, &h->dispatcher.st);
	pthread_mutex_lock(&h->lock);
	for (w = h->workers; w; w = w->next)
		fold_stats(s, &w->st);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

uint64_t uffd_stats_quantile_ns(const struct uffd_handler_stats *s, double q)
{
	uint64_t total = 0, seen = 0, want;
	int i;

	/* NaN and negative q have no quantile; q above 1, as documented, is
	 * past every sample (and must not overflow the conversion below). */
	if (!s || !(q >= 0))
		return 0;
	for (i = 0; i < UFFD_HIST_BUCKETS; i++)
		total += s->hist[i];
	if (!total)
		return 0;
	if (q > 1)
		return 2ULL << (UFFD_HIST_BUCKETS - 1);
	want = (uint64_t)(q * (double)total + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < UFFD_HIST_BUCKETS; i++) {
		seen += s->hist[i];
		if (seen >= want)
			return 2ULL << i;
	}
	return 2ULL << (UFFD_HIST_BUCKETS - 1);
}
