/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mprotect backend: dirty tracking without userfaultfd.  A tracked
 * range is made read-only; the first write to a page raises SIGSEGV, and a
 * process-wide handler records the page, makes it writable again and
 * returns, so the write lands.  A collect with rearm reports the written
 * pages and makes them read-only again.
 *
 * The handler runs on any thread at any moment, so it takes no lock and
 * allocates nothing.  It finds the range in a fixed process-wide registry
 * of pointers published and withdrawn with atomic stores, and counts itself
 * in handlers_running so that a tracker being freed can wait until no
 * handler still looks at its ranges.  Each range has its own bitmap
 * (never resized, while t->dirty is reallocated when a range is added) and
 * a spin flag that orders "record the page + make it writable" (handler)
 * against "report + clear + make read-only" (collect).  Under that flag
 * a page's bit is set exactly when the page is writable, so no write can
 * land unreported.  The collecting thread blocks signals while it holds
 * the flag, so a handler never spins on its own thread, and it waits at
 * most for one mprotect call.
 *
 * A fault that is not a write to a tracked page goes to the SIGSEGV action
 * that was there before the first tracker.  A default action is restored
 * and the handler returns: the faulting instruction runs again and the
 * process dies as it would have, with the right address in its core.  A
 * write that faulted just before uffd_track_free made its page writable
 * may reach the handler after the range was withdrawn: it is let through
 * (see STRAY_FAULTS).
 *
 * Limits:
 * - Each written page splits its VMA.  At vm.max_map_count mprotect fails
 *   with ENOMEM: the handler then makes the whole range writable (which
 *   needs no new VMA and merges the range's VMAs again, as they share one
 *   anon_vma: see mp_add), marks all of it written and sets
 *   t->overflowed.  Collect reports every page of every range and returns
 *   -ENOSPC; a rearm re-protects everything and tracking goes on.
 *   on_write is not called for the overflowed range until that rearm.
 * - Writes the kernel makes (read(2) into a tracked page) fail with EFAULT.
 * - mremap and munmap are not followed (there are no events without
 *   userfaultfd): don't move, unmap or reuse tracked memory before
 *   uffd_track_free, which puts PROT_READ|PROT_WRITE back on the ranges
 *   where they were added.  Ranges must be readable and writable, and must
 *   not overlap another mprotect tracker's (-EEXIST); MAX_RANGES of them
 *   in the process at most (-ENOSPC).
 * - A read fault is told from a write only on x86-64; elsewhere a fault on
 *   a tracked page counts as a write (only PROT_NONE set by the program
 *   behind the tracker's back can make a read fault there).
 * - on_write runs in the handler with every signal blocked: it must be
 *   async-signal-safe and must not write to tracked memory.
 * - The handler, once installed, stays (another may have chained to it).
 *   A SIGSEGV handler installed later must chain to it, or writes to
 *   tracked memory reach that handler instead.
 *
 * fork(): a child inherits the read-only ranges, the handler and a copy of
 * the registry, but not the threads: a spin flag that a collect held at
 * the fork would stay held in the child for ever, and its first write to
 * a tracked page would spin in the handler with every signal blocked.  So
 * a pthread_atfork() prepare handler takes the registry lock and every
 * range's flag (signals blocked, as a collect does), the parent's handler
 * gives them back, and the child's makes every tracked range writable
 * again and withdraws it: in the child, tracked memory is plain memory,
 * nothing records its writes, and the trackers it inherited answer
 * -ECHILD (track.c).  A child made without fork's handlers (a raw clone
 * syscall) gets none of this.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "track.h"
#include "util/sigchain.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE		4096UL	/* the tracker's page (track_bit) */
#define MAX_RANGES	1024	/* registry slots, for all mprotect trackers */
/*
 * A thread whose write faulted just before uffd_track_free made its range
 * writable reaches the handler after the range was withdrawn.  The slot
 * remembers where the range was and lets that many faults there retry
 * (the page is writable by then) before faults there chain as usual.
 */
#define STRAY_FAULTS	64

/* One tracked range, as the handler sees it. */
struct mp_range {
	struct uffd_tracker *t;
	uint64_t start, end;
	size_t first_bit;	/* with start: to find it from its track_range */
	size_t npages;
	int slot;		/* in the registry */
	int busy;		/* spin flag: handler vs collect */
	struct bitmap dirty;	/* page i written (and writable) */
};

/* t->priv: the tracker's ranges, for collect, reset and destroy. */
struct mp_tracker {
	pthread_mutex_t lock;
	struct mp_range **ranges;
	int nranges;
};

/*
 * The registry.  Handlers read it with atomic loads; adds and frees change
 * it under registry_lock.  A range is freed only after it was withdrawn
 * and handlers_running dropped to zero.
 */
static struct registry_slot {
	struct mp_range *range;		/* published, or NULL */
	uint64_t stray_start, stray_end;
	int stray_faults;
} registry[MAX_RANGES];
static int registry_used;		/* slots [0, registry_used) in use */
static int handlers_running;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static bool handler_installed;
static struct sigaction prev_action;	/* what we chain to */
static bool atfork_registered;
static __thread sigset_t fork_saved_mask;	/* the forking thread's */

static void spin_lock(int *flag)
{
	while (__atomic_exchange_n(flag, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void spin_unlock(int *flag)
{
	__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
}

static void *page_addr(const struct mp_range *m, size_t i)
{
	return (void *)(uintptr_t)(m->start + i * PAGE);
}

static struct mp_range *registry_lookup(uint64_t addr)
{
	int i, n = __atomic_load_n(&registry_used, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++) {
		struct mp_range *m = __atomic_load_n(&registry[i].range, __ATOMIC_SEQ_CST);

		if (m && addr >= m->start && addr < m->end)
			return m;
	}
	return NULL;
}

/* True when addr is where a just-freed range was and may retry once more. */
static bool absorb_stray(uint64_t addr)
{
	int i, n = __atomic_load_n(&registry_used, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++) {
		struct registry_slot *s = &registry[i];

		if (__atomic_load_n(&s->stray_faults, __ATOMIC_ACQUIRE) > 0 &&
		    addr >= __atomic_load_n(&s->stray_start, __ATOMIC_RELAXED) &&
		    addr < __atomic_load_n(&s->stray_end, __ATOMIC_RELAXED) &&
		    __atomic_fetch_sub(&s->stray_faults, 1, __ATOMIC_RELAXED) > 0)
			return true;
	}
	return false;
}

/* Make the page writable; out of VMAs, the whole range (see the top). */
static bool make_writable(struct mp_range *m, void *page)
{
	if (!mprotect(page, PAGE, PROT_READ | PROT_WRITE))
		return true;
	if (errno != ENOMEM ||
	    mprotect(page_addr(m, 0), m->end - m->start, PROT_READ | PROT_WRITE))
		return false;
	bitmap_set_range(&m->dirty, 0, m->npages);
	__atomic_store_n(&m->t->overflowed, 1, __ATOMIC_RELAXED);
	return true;
}

/* A write fault at addr: true when it was ours and the write may retry. */
static bool handle_write(uint64_t addr)
{
	struct mp_range *m = registry_lookup(addr);
	struct uffd_tracker *t;
	void *page;
	size_t bit;
	bool first, ok;

	if (!m)
		return absorb_stray(addr);
	t = m->t;
	bit = (addr - m->start) / PAGE;
	page = page_addr(m, bit);
	spin_lock(&m->busy);
	/* Set already: another thread's fault got there first (or a failed
	 * re-protect left the page read-only: make it writable again). */
	first = !bitmap_test(&m->dirty, bit);
	if (first) {
		bitmap_set_atomic(&m->dirty, bit);
		__atomic_fetch_add(&t->write_faults, 1, __ATOMIC_RELAXED);
		if (t->opts.on_write)
			t->opts.on_write(page, t->opts.arg);
	}
	ok = make_writable(m, page);
	if (!ok && first)
		bitmap_clear_range(&m->dirty, bit, bit + 1);
	spin_unlock(&m->busy);
	return ok;
}

/* Reads of tracked pages never fault: they are PROT_READ. */
static bool fault_is_write(const void *uc)
{
#if defined(__x86_64__)
	/* The page-fault error code: bit 1 (X86_PF_WRITE) for a write. */
	return ((const ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR] & 2;
#else
	(void)uc;
	return true;
#endif
}

static void on_sigsegv(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	bool ours = false;

	if (si->si_code == SEGV_ACCERR && fault_is_write(uc)) {
		__atomic_add_fetch(&handlers_running, 1, __ATOMIC_SEQ_CST);
		ours = handle_write((uintptr_t)si->si_addr);
		__atomic_sub_fetch(&handlers_running, 1, __ATOMIC_SEQ_CST);
	}
	if (!ours)
		uffd__sigchain_forward(&prev_action, sig, si, uc);
	errno = saved_errno;
}

/* fork(), before: no range changes hands or state until it is done. */
static void fork_prepare(void)
{
	sigset_t all;
	int i;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &fork_saved_mask);
	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < registry_used; i++)
		if (registry[i].range)
			spin_lock(&registry[i].range->busy);
}

static void fork_parent(void)
{
	int i;

	for (i = registry_used; i-- > 0;)
		if (registry[i].range)
			spin_unlock(&registry[i].range->busy);
	pthread_mutex_unlock(&registry_lock);
	pthread_sigmask(SIG_SETMASK, &fork_saved_mask, NULL);
}

/*
 * fork(), in the child: the only thread.  Tracked memory becomes plain
 * writable memory and leaves the registry; the flags are released for a
 * tracker the child might still look at (it answers -ECHILD first).
 * Handlers that were running in other threads at the fork ran there, not
 * here.
 */
static void fork_child(void)
{
	int i;

	for (i = 0; i < registry_used; i++) {
		struct mp_range *m = registry[i].range;

		if (!m)
			continue;
		mprotect(page_addr(m, 0), m->end - m->start, PROT_READ | PROT_WRITE);
		registry[i].range = NULL;
		registry[i].stray_faults = 0;
		spin_unlock(&m->busy);
	}
	handlers_running = 0;
	pthread_mutex_unlock(&registry_lock);
	pthread_sigmask(SIG_SETMASK, &fork_saved_mask, NULL);
}

/*
 * SA_ONSTACK: a stack overflow is not ours, but we must run to chain it,
 * which needs the alternate stack if the program set one up for it.  All
 * signals are blocked in the handler: a signal handler interrupting it
 * could write to tracked memory, and a SIGSEGV while SIGSEGV is blocked
 * kills the process.
 */
static int install_handler(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigsegv,
				.sa_flags = SA_SIGINFO | SA_ONSTACK };
	int ret = 0;

	sigfillset(&sa.sa_mask);
	pthread_mutex_lock(&registry_lock);
	/* The fork handlers, once there, stay: an empty registry is
	 * nothing to them. */
	if (!atfork_registered) {
		ret = -pthread_atfork(fork_prepare, fork_parent, fork_child);
		atfork_registered = !ret;
	}
	if (!ret && !handler_installed) {
		if (sigaction(SIGSEGV, &sa, &prev_action))
			ret = -errno;
		else
			handler_installed = true;
	}
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

static bool overlaps(const struct mp_range *a, const struct mp_range *b)
{
	return a->start < b->end && b->start < a->end;
}

static int registry_publish(struct mp_range *m)
{
	int i, free_slot = -1, ret = 0;

	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < registry_used; i++) {
		struct mp_range *o = registry[i].range;

		if (o && overlaps(o, m)) {
			ret = -EEXIST;
			goto out_unlock;
		}
		if (!o && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0 && registry_used == MAX_RANGES) {
		ret = -ENOSPC;
		goto out_unlock;
	}
	if (free_slot < 0)
		free_slot = registry_used;
	m->slot = free_slot;
	__atomic_store_n(&registry[free_slot].range, m, __ATOMIC_SEQ_CST);
	if (free_slot == registry_used)
		__atomic_store_n(&registry_used, free_slot + 1, __ATOMIC_RELEASE);
out_unlock:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

/* Withdraw the ranges (already writable again) and wait out handlers. */
static void registry_withdraw(struct mp_range **ranges, int n)
{
	int i;

	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < n; i++) {
		struct registry_slot *s = &registry[ranges[i]->slot];

		__atomic_store_n(&s->stray_faults, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->stray_start, ranges[i]->start, __ATOMIC_RELAXED);
		__atomic_store_n(&s->stray_end, ranges[i]->end, __ATOMIC_RELAXED);
		__atomic_store_n(&s->stray_faults, STRAY_FAULTS, __ATOMIC_RELEASE);
		__atomic_store_n(&s->range, NULL, __ATOMIC_SEQ_CST);
	}
	pthread_mutex_unlock(&registry_lock);
	while (__atomic_load_n(&handlers_running, __ATOMIC_SEQ_CST))
		sched_yield();
}

static void free_range(struct mp_range *m)
{
	bitmap_free(&m->dirty);
	free(m);
}

static int mp_init(struct uffd_tracker *t)
{
	struct mp_tracker *mt;
	int ret = install_handler();

	if (ret)
		return ret;
	mt = calloc(1, sizeof(*mt));
	if (!mt)
		return -ENOMEM;
	pthread_mutex_init(&mt->lock, NULL);
	t->priv = mt;
	return 0;
}

static int list_append(struct mp_tracker *mt, struct mp_range *m)
{
	struct mp_range **v;

	pthread_mutex_lock(&mt->lock);
	v = realloc(mt->ranges, (mt->nranges + 1) * sizeof(*v));
	if (v) {
		mt->ranges = v;
		mt->ranges[mt->nranges++] = m;
	}
	pthread_mutex_unlock(&mt->lock);
	return v ? 0 : -ENOMEM;
}

static void list_remove(struct mp_tracker *mt, struct mp_range *m)
{
	int i;

	pthread_mutex_lock(&mt->lock);
	for (i = 0; i < mt->nranges; i++) {
		if (mt->ranges[i] == m) {
			mt->ranges[i] = mt->ranges[--mt->nranges];
			break;
		}
	}
	pthread_mutex_unlock(&mt->lock);
}

static struct mp_range *find_range(struct uffd_tracker *t, const struct track_range *r)
{
	struct mp_tracker *mt = t->priv;
	struct mp_range *m = NULL;
	int i;

	pthread_mutex_lock(&mt->lock);
	/* Bits of a failed add are given back: match the address too. */
	for (i = 0; i < mt->nranges && !m; i++)
		if (mt->ranges[i]->first_bit == r->first_bit &&
		    mt->ranges[i]->start == r->start)
			m = mt->ranges[i];
	pthread_mutex_unlock(&mt->lock);
	return m;
}

static int mp_add(struct uffd_tracker *t, struct track_range *r)
{
	struct mp_tracker *mt = t->priv;
	struct mp_range *m = calloc(1, sizeof(*m));
	void *addr = (void *)(uintptr_t)r->start;
	int ret;

	if (!m)
		return -ENOMEM;
	m->t = t;
	m->start = r->start;
	m->end = r->start + r->len;
	m->first_bit = r->first_bit;
	m->npages = r->len / PAGE;
	ret = bitmap_resize(&m->dirty, m->npages);
	if (!ret)
		ret = list_append(mt, m);
	if (ret)
		goto out_free;
	ret = registry_publish(m);
	if (ret)
		goto out_remove;
	/* Writable first: fails (EACCES) where the handler could not unprotect. */
	if (mprotect(addr, r->len, PROT_READ | PROT_WRITE)) {
		ret = -errno;
		registry_withdraw(&m, 1);
		goto out_remove;
	}
	/*
	 * Give an anonymous VMA its anon_vma now, which the pieces split off
	 * it share.  Otherwise each page written under protection gets an
	 * anon_vma of its own, and VMAs with different ones never merge
	 * again: the VMAs would stay split after a rearm, an overflow or the
	 * end of tracking.  Best effort (Linux 5.14+).
	 */
	madvise(addr, PAGE, MADV_POPULATE_WRITE);
	if (mprotect(addr, r->len, PROT_READ)) {
		ret = -errno;
		mprotect(addr, r->len, PROT_READ | PROT_WRITE);
		registry_withdraw(&m, 1);
		goto out_remove;
	}
	return 0;
out_remove:
	list_remove(mt, m);
out_free:
	free_range(m);
	return ret;
}

/* With m->busy held: make pages [s, e) read-only and clean again. */
static int rearm_pages(struct mp_range *m, size_t s, size_t e)
{
	if (mprotect(page_addr(m, s), (e - s) * PAGE, PROT_READ))
		return -errno;
	bitmap_clear_range(&m->dirty, s, e);
	return 0;
}

/*
 * The flag is taken run by run, so a handler waits for one mprotect at
 * most.  Signals stay blocked meanwhile: a handler interrupting this
 * thread and writing to the range would spin on the flag for ever.
 */
static int mp_collect(struct uffd_tracker *t, struct track_range *r, bool rearm)
{
	struct mp_range *m = find_range(t, r);
	size_t pos = 0, s, e;
	sigset_t all, old;
	bool found = true;
	int ret = 0;

	if (!m)
		return -ENOENT;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (__atomic_load_n(&t->overflowed, __ATOMIC_RELAXED)) {
		/* Everything counts as written (see the top). */
		spin_lock(&m->busy);
		track_emit(t, r, m->start, m->end);
		if (rearm)
			ret = rearm_pages(m, 0, m->npages);
		spin_unlock(&m->busy);
		found = false;
	}
	while (found && !ret) {
		spin_lock(&m->busy);
		found = bitmap_next_run(&m->dirty, &pos, m->npages, &s, &e);
		if (found) {
			track_emit(t, r, m->start + s * PAGE, m->start + e * PAGE);
			if (rearm)
				ret = rearm_pages(m, s, e);
		}
		spin_unlock(&m->busy);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static int mp_reset(struct uffd_tracker *t, struct track_range *r)
{
	struct mp_range *m = find_range(t, r);
	sigset_t all, old;
	int ret;

	if (!m)
		return -ENOENT;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	spin_lock(&m->busy);
	ret = rearm_pages(m, 0, m->npages);
	spin_unlock(&m->busy);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

/* Writable first, then withdrawn: a fault in between still finds its
 * range, and one that reaches the handler later is a stray (see top). */
static void mp_destroy(struct uffd_tracker *t)
{
	struct mp_tracker *mt = t->priv;
	int i;

	if (!mt)
		return;
	for (i = 0; i < mt->nranges; i++)
		mprotect(page_addr(mt->ranges[i], 0),
			 mt->ranges[i]->end - mt->ranges[i]->start,
			 PROT_READ | PROT_WRITE);
	registry_withdraw(mt->ranges, mt->nranges);
	for (i = 0; i < mt->nranges; i++)
		free_range(mt->ranges[i]);
	free(mt->ranges);
	pthread_mutex_destroy(&mt->lock);
	free(mt);
	t->priv = NULL;
}

const struct track_backend track_mprotect = {
	.kind = UFFD_TRACK_MPROTECT,
	.init = mp_init,
	.add = mp_add,
	.collect = mp_collect,
	.reset = mp_reset,
	.destroy = mp_destroy,
};
