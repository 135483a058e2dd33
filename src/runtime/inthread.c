/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * In-thread mode: a fault is resolved by the thread that took it.
 *
 * With UFFD_FEATURE_SIGBUS the kernel queues no message for a fault: it
 * raises SIGBUS in the faulting thread (si_code BUS_ADRERR, si_addr the
 * address).  libuffd installs one SIGBUS handler for the process, shared by
 * every in-thread handler and counted, and put back as it was when the
 * last one goes.  The handler looks the address up in the regions of all
 * in-thread handlers, runs the region's callback (or the default) right
 * there, and returns: the instruction runs again and finds its page.  No
 * other thread is involved, which removes the hand-off that costs most of
 * a fault on these machines (a wake-up across vCPUs).  A SIGBUS that is
 * not ours - another si_code, an address outside every region, a fault
 * the callback cannot resolve - goes to the action that was there before
 * (util/sigchain.c), so the program sees what it would have seen.
 *
 * The one idea that makes it safe: the signal side takes no lock and
 * allocates nothing.  It reads a table of copies of the regions, published
 * with one atomic store by the ordinary side (add, remove, the events that
 * move or cut regions) and retired, never changed: RCU in miniature.  A
 * reader counts itself in one of two counters, chosen by a phase bit; a
 * grace period is two flips of the bit, each once the counter being left
 * has drained, so old tables are freed only when no handler can still hold
 * one, and new handlers never hold up a writer for long.  Callbacks get a
 * region copy (f->region is not the pointer uffd_handler_add returned) that
 * stays as it was for the whole callback.
 *
 * Events (REMOVE, UNMAP, REMAP) still arrive as messages: the handler's
 * thread reads and applies them, counting each read in ev_started before
 * it and ev_done once applied and republished.  A fault at an address no
 * region has may be ours at an address an mremap just moved a region to:
 * while a read is being applied, an event is queued, or a newer table has
 * been published since the lookup (the move may have been applied between
 * the two) it is retried (the handler returns; the access faults again),
 * only then chained.  Regions removed are remembered for a few faults, for
 * a SIGBUS raised before they were unregistered and delivered after.
 *
 * Services that copy memory other threads may unmap meanwhile use
 * uffd__guarded_copy(): page by page under a sigsetjmp, with a SIGSEGV
 * handler (installed only while a service asks for it) that jumps back
 * when the fault is in the range being copied.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "inthread.h"
#include "runtime.h"
#include "util/clock.h"
#include "util/mmalloc.h"
#include "util/pagecopy.h"
#include "util/sigchain.h"

#define PAGE_BYTES	4096UL
/* Removed regions remembered, and the faults each lets through. */
#define STRAYS		16
#define STRAY_FAULTS	64
/* Faults nested in a callback's faults: beyond this one is not ours (the
 * program dies of it rather than of a stack overflow). */
#define MAX_DEPTH	4
#define X86_TRAP_PF	14

#define TLS_IE __attribute__((tls_model("initial-exec")))

struct it_entry {
	uint64_t start, end;
	struct uffd_region region;	/* a copy, as it was published */
};

struct it_table {
	size_t n, nctx;
	struct handler_ctx **ctxs;	/* the attached contexts (below v) */
	struct it_entry v[];
};

struct retired {
	struct retired *next;
	void *p;
	uint64_t gp;			/* grace periods when it was retired */
};

static struct {
	pthread_mutex_t lock;		/* all but the atomics the handler reads */
	struct handler_ctx *ctxs;	/* attached, through it_next */
	struct it_table *table;		/* published (atomic) */
	int readers[2];			/* atomic: handlers inside, by phase */
	int phase;			/* atomic */
	uint64_t gp;			/* grace periods completed */
	struct retired *retired;
	int attached;			/* contexts: the SIGBUS handler's users */
	int guards;			/* uffd__guard_get() references */
	struct sigaction prev_bus, prev_segv;
	bool atfork_done;
	struct {
		uint64_t start, end;
		int budget;		/* atomic */
	} strays[STRAYS];
	int next_stray;
} it = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A guarded copy in progress on this thread. */
struct guard {
	sigjmp_buf env;
	uint64_t lo, hi;
};

static __thread int tls_depth TLS_IE;		/* our handler's frames */
static __thread struct guard *tls_guard TLS_IE;

bool uffd__in_fault_handler(void)
{
	return tls_depth > 0;
}

/* ---- the grace periods ------------------------------------------------ */

static int reader_enter(void)
{
	int ph = __atomic_load_n(&it.phase, __ATOMIC_SEQ_CST) & 1;

	__atomic_fetch_add(&it.readers[ph], 1, __ATOMIC_SEQ_CST);
	return ph;
}

static void reader_exit(int ph)
{
	__atomic_fetch_sub(&it.readers[ph], 1, __ATOMIC_SEQ_CST);
}

/* With it.lock: flip the phase if the counter left behind has drained. */
static bool gp_advance(void)
{
	int cur = __atomic_load_n(&it.phase, __ATOMIC_SEQ_CST) & 1;

	if (__atomic_load_n(&it.readers[!cur], __ATOMIC_SEQ_CST))
		return false;
	__atomic_store_n(&it.phase, !cur, __ATOMIC_SEQ_CST);
	it.gp++;
	return true;
}

/* With it.lock: free what has been retired for two grace periods. */
static void reclaim_locked(void)
{
	struct retired **pp = &it.retired, *r;

	if (!it.retired)
		return;
	if (gp_advance())
		gp_advance();
	while ((r = *pp)) {
		if (it.gp >= r->gp + 2) {
			*pp = r->next;
			mm_free(r->p);
			mm_free(r);
		} else {
			pp = &r->next;
		}
	}
}

static void retire_locked(void *p)
{
	struct retired *r;

	if (!p)
		return;
	r = mm_zalloc(sizeof(*r));
	if (!r) {
		/* Cannot defer: wait instead (never from a handler's thread
		 * while it holds a callback: retire is not called there). */
		uint64_t want = it.gp + 2;

		while (it.gp < want) {
			if (!gp_advance()) {
				pthread_mutex_unlock(&it.lock);
				sched_yield();
				pthread_mutex_lock(&it.lock);
			}
		}
		mm_free(p);
		return;
	}
	r->p = p;
	r->gp = it.gp;
	r->next = it.retired;
	it.retired = r;
}

void uffd__inthread_retire(void *p)
{
	pthread_mutex_lock(&it.lock);
	retire_locked(p);
	reclaim_locked();
	pthread_mutex_unlock(&it.lock);
}

/* A handler takes microseconds: watch the counter being left that long
 * before giving the CPU away (a yield can cost a time slice). */
#define DRAIN_SPIN_NS 50000

static void wait_drain(void)
{
	uint64_t until = mono_ns() + DRAIN_SPIN_NS;
	int old = !(__atomic_load_n(&it.phase, __ATOMIC_SEQ_CST) & 1);

	while (__atomic_load_n(&it.readers[old], __ATOMIC_SEQ_CST))
		if (mono_ns() > until) {
			sched_yield();
			return;
		}
}

/* Two grace periods from now, letting go of the lock between tries (a
 * handler may wait for an event thread that needs it to republish). */
void uffd__inthread_synchronize(void)
{
	uint64_t want;
	bool done;

	pthread_mutex_lock(&it.lock);
	want = it.gp + 2;
	pthread_mutex_unlock(&it.lock);
	for (;;) {
		pthread_mutex_lock(&it.lock);
		gp_advance();
		done = it.gp >= want;
		if (done)
			reclaim_locked();
		pthread_mutex_unlock(&it.lock);
		if (done)
			return;
		wait_drain();
	}
}

/* ---- the published table ---------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
	const struct it_entry *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* A table of every attached context's regions, or NULL (ENOMEM). */
static struct it_table *build_locked(void)
{
	struct handler_ctx *c;
	struct it_table *t;
	size_t n = 0, nctx = 0, room;
	int k;

	for (c = it.ctxs; c; c = c->it_next) {
		pthread_rwlock_rdlock(&c->table.lock);
		n += c->table.n;
		pthread_rwlock_unlock(&c->table.lock);
		nctx++;
	}
	/* Room for regions added while this is built: their own republish
	 * comes after this one (it.lock) and includes them. */
	room = n + 8;
	t = mm_zalloc(sizeof(*t) + room * sizeof(t->v[0]) + nctx * sizeof(t->ctxs[0]));
	if (!t)
		return NULL;
	t->ctxs = (struct handler_ctx **)&t->v[room];
	for (c = it.ctxs; c; c = c->it_next) {
		t->ctxs[t->nctx++] = c;
		pthread_rwlock_rdlock(&c->table.lock);
		for (k = 0; k < c->table.n && t->n < room; k++) {
			struct it_entry *e = &t->v[t->n++];

			e->region = *c->table.v[k];
			e->start = e->region.start;
			e->end = e->region.start + e->region.len;
		}
		pthread_rwlock_unlock(&c->table.lock);
	}
	qsort(t->v, t->n, sizeof(t->v[0]), cmp_entry);
	return t;
}

static int republish_locked(void)
{
	struct it_table *t = build_locked(), *old;

	if (!t)
		return -ENOMEM;
	old = __atomic_exchange_n(&it.table, t, __ATOMIC_SEQ_CST);
	retire_locked(old);
	reclaim_locked();
	return 0;
}

int uffd__inthread_republish(void)
{
	int ret;

	pthread_mutex_lock(&it.lock);
	ret = republish_locked();
	pthread_mutex_unlock(&it.lock);
	return ret;
}

static void stray_locked(uint64_t start, uint64_t end)
{
	int i = it.next_stray++ % STRAYS;

	__atomic_store_n(&it.strays[i].budget, 0, __ATOMIC_SEQ_CST);
	it.strays[i].start = start;
	it.strays[i].end = end;
	__atomic_store_n(&it.strays[i].budget, STRAY_FAULTS, __ATOMIC_SEQ_CST);
}

void uffd__inthread_stray(uint64_t start, uint64_t end)
{
	pthread_mutex_lock(&it.lock);
	stray_locked(start, end);
	pthread_mutex_unlock(&it.lock);
}

/* ---- the signal side ----------------------------------------------------- */

static const struct it_entry *lookup(const struct it_table *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n;

	/* The first entry starting above addr; the one before may hold it. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && addr < t->v[lo - 1].end)
		return &t->v[lo - 1];
	return NULL;
}

/*
 * A region may be about to appear there, or be in a newer table than t: an
 * event is read, not applied, or queued and not read, or was applied since
 * t was loaded.  The last is looked at after the counters: when they
 * match, every event read so far is in the table published by then (its
 * thread republishes before it counts the read as applied), and t, which
 * this handler holds, cannot have been freed and handed out again.
 */
static bool events_in_flight(const struct it_table *t)
{
	size_t i;

	for (i = 0; t && i < t->nctx; i++) {
		struct handler_ctx *c = t->ctxs[i];
		struct pollfd p = { .fd = c->u->fd, .events = POLLIN };

		if (__atomic_load_n(&c->ev_started, __ATOMIC_SEQ_CST) !=
		    __atomic_load_n(&c->ev_done, __ATOMIC_SEQ_CST) ||
		    poll(&p, 1, 0) > 0)
			return true;
	}
	return __atomic_load_n(&it.table, __ATOMIC_SEQ_CST) != t;
}

/* A region removed lately was there: let the access try again. */
static bool stray(uint64_t addr)
{
	int i;

	for (i = 0; i < STRAYS; i++)
		if (__atomic_load_n(&it.strays[i].budget, __ATOMIC_SEQ_CST) > 0 &&
		    addr >= it.strays[i].start && addr < it.strays[i].end &&
		    __atomic_fetch_sub(&it.strays[i].budget, 1, __ATOMIC_SEQ_CST) > 0)
			return true;
	return false;
}

static bool from_page_fault(const void *uc)
{
#if defined(__x86_64__)
	return ((const ucontext_t *)uc)->uc_mcontext.gregs[REG_TRAPNO] == X86_TRAP_PF;
#else
	(void)uc;
	return true;
#endif
}

/* Whether the page at addr is mapped (present) or, for shmem, cached. */
static bool resident(uint64_t addr)
{
	unsigned char v = 0;

	return !mincore((void *)(uintptr_t)(addr & ~(PAGE_BYTES - 1)), PAGE_BYTES, &v) &&
	       (v & 1);
}

/*
 * The kind of fault, which SIGBUS does not say.  A region registered in
 * one mode: that one.  Else the page-fault error code (x86-64: bit 0, the
 * page was present, so a write-protect fault; bit 1, a write), or whether
 * the page is resident elsewhere; with MINOR and MISSING both, whether the
 * page cache holds the page.
 */
static enum uffd_fault_kind fault_kind(const struct uffd_region *r, const void *uc,
				       uint64_t addr, bool *write)
{
	unsigned modes = r->modes & (UFFD_REG_MISSING | UFFD_REG_WP | UFFD_REG_MINOR);
	bool present;

#if defined(__x86_64__)
	long err = ((const ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR];

	*write = err & 2;
	present = err & 1;
#else
	(void)uc;
	*write = true;		/* unknown: the cautious answer */
	present = (modes & UFFD_REG_WP) && modes != UFFD_REG_WP && resident(addr);
#endif
	if (modes == UFFD_REG_WP || ((modes & UFFD_REG_WP) && present)) {
		*write = true;
		return UFFD_FAULT_WP;
	}
	if ((modes & UFFD_REG_MINOR) && (!(modes & UFFD_REG_MISSING) || resident(addr)))
		return UFFD_FAULT_MINOR;
	return UFFD_FAULT_MISSING;
}

enum { IT_NOT_OURS, IT_DONE, IT_RETRY };

static int fault_in_thread(const siginfo_t *si, const void *uc)
{
	uint64_t addr = (uintptr_t)si->si_addr, t0;
	struct uffd_handler_stats *st;
	const struct it_table *t;
	const struct it_entry *e;
	struct uffd_region *r;
	struct uffd_fault f;
	bool failed, poisoned = false;
	int ph, ret, out;

	if (si->si_code != BUS_ADRERR || !from_page_fault(uc))
		return IT_NOT_OURS;
	t0 = mono_ns();
	ph = reader_enter();
	t = __atomic_load_n(&it.table, __ATOMIC_SEQ_CST);
	e = t ? lookup(t, addr) : NULL;
	if (!e) {
		out = events_in_flight(t) || stray(addr) ? IT_RETRY : IT_NOT_OURS;
		goto out;
	}
	r = (struct uffd_region *)&e->region;
	if (__atomic_load_n(&r->ctx->it_stopped, __ATOMIC_ACQUIRE)) {
		out = IT_RETRY;		/* being unregistered: soon a plain fault */
		goto out;
	}
	f = (struct uffd_fault){
		.region = r, .exact = addr, .data = r->data,
		.addr = (void *)(uintptr_t)(addr & ~(uint64_t)(r->page_size - 1)),
		.seq = __atomic_load_n(&r->ctx->read_seq, __ATOMIC_SEQ_CST),
	};
	f.kind = fault_kind(r, uc, addr, &f.write);
	if (r->ctx->u->features & UFFD_F(UFFD_FEAT_THREAD_ID))
		f.tid = gettid();
	st = handler_extra_stats(r->ctx);
	STAT_ADD(st, faults[f.kind], 1);
	ret = run_callback(&f);
	failed = ret < 0 && ret != -EAGAIN;
	if (failed)
		STAT_ADD(st, callback_errors, 1);
	if (ret == UFFD_FAULT_DEFERRED) {
		ret = 0;	/* resolved by the service, or the access faults again */
	} else if (ret != -EAGAIN && !f.resolved_) {
		ret = fault_resolve_default(&f, failed);
		poisoned = failed && fault_can_poison(&f) && !resident(addr);
	}
	if (ret == -EAGAIN) {
		STAT_ADD(st, retries, 1);
		out = IT_RETRY;
	} else if ((ret < 0 && !f.resolved_) || poisoned) {
		/* Cannot be resolved, or failed and poisoned: the program's
		 * SIGBUS, this one.  Returning would run the access into the
		 * marker, whose SIGBUS a kernel without memory-failure support
		 * reports as BUS_ADRERR at this address - this fault again,
		 * forever.  (A page that holds data - resolved by another
		 * thread meanwhile - is let through, as the hand-off's wake
		 * lets it.) */
		out = IT_NOT_OURS;
	} else {
		record_latency(st, mono_ns() - t0);
		out = IT_DONE;
	}
out:
	reader_exit(ph);
	return out;
}

/* A fault in the range a guarded copy of this thread is reading. */
static void guard_catch(const siginfo_t *si)
{
	struct guard *g = tls_guard;
	uint64_t addr = (uintptr_t)si->si_addr;

	if (g && addr >= g->lo && addr < g->hi) {
		tls_guard = NULL;
		siglongjmp(g->env, 1);
	}
}

/*
 * Cancellation waits until the fault is resolved: a callback may reach a
 * cancellation point (a read, a condition wait), and a thread that ended
 * there would hold a reader count, and whatever the service holds, for
 * ever.  (Setting the state is an atomic of the thread's own; a pending
 * asynchronous cancel acts as it is enabled again, after the count.)
 */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno, ret = IT_NOT_OURS, cancel;

	if (tls_depth < MAX_DEPTH) {
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
		tls_depth++;
		ret = fault_in_thread(si, uc);
		tls_depth--;
		pthread_setcancelstate(cancel, NULL);
	}
	if (ret == IT_NOT_OURS) {
		guard_catch(si);
		uffd__sigchain_forward(&it.prev_bus, sig, si, uc);
	} else if (ret == IT_RETRY) {
		sched_yield();
	}
	errno = saved_errno;
}

static void on_sigsegv(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;

	guard_catch(si);
	uffd__sigchain_forward(&it.prev_segv, sig, si, uc);
	errno = saved_errno;
}

/* ---- guarded copies -------------------------------------------------------- */

size_t uffd__guarded_copy(void *const *dst, const void *src, size_t n, size_t page_size)
{
	struct guard g;
	volatile size_t done = 0;

	g.lo = (uintptr_t)src;
	g.hi = g.lo + n * page_size;
	/* Out of a handler the signal mask is saved: the SIGSEGV handler's
	 * blocked signals stay blocked after the jump otherwise (in ours,
	 * returning from the SIGBUS handler restores the mask anyway). */
	if (sigsetjmp(g.env, tls_depth == 0))
		return done;
	tls_guard = &g;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	for (; done < n; done++) {
		const char *from = (const char *)src + done * page_size;

		copy_live_page(dst[done], from, page_size);
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	tls_guard = NULL;
	return n;
}

int uffd__guard_get(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigsegv,
				.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART };
	int ret = 0;

	uffd__async_signals(&sa.sa_mask);	/* held off in our handlers */
	pthread_mutex_lock(&it.lock);
	if (!it.guards) {
		struct sigaction prev;

		/* A stack overflow is not ours, but the handler we chain it
		 * to may need the alternate stack to run at all. */
		if (sigaction(SIGSEGV, NULL, &prev)) {
			ret = -errno;
		} else {
			if (prev.sa_flags & SA_ONSTACK)
				sa.sa_flags |= SA_ONSTACK;
			if (!(prev.sa_flags & SA_SIGINFO) || prev.sa_sigaction != on_sigsegv)
				it.prev_segv = prev;
			if (sigaction(SIGSEGV, &sa, NULL))
				ret = -errno;
		}
	}
	if (!ret)
		it.guards++;
	pthread_mutex_unlock(&it.lock);
	return ret;
}

void uffd__guard_put(void)
{
	pthread_mutex_lock(&it.lock);
	/* Put back what was there, unless someone has replaced us since (then
	 * our handler stays theirs to chain to). */
	if (it.guards && !--it.guards && uffd__sigchain_is_ours(SIGSEGV, on_sigsegv))
		sigaction(SIGSEGV, &it.prev_segv, NULL);
	pthread_mutex_unlock(&it.lock);
}

/* ---- set-up ------------------------------------------------------------- */

/* fork(): no table changes hands while it copies the process. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&it.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&it.lock);
}

/*
 * In the child the in-thread regions are not registered (no EVENT_FORK in
 * this mode) and their userfaultfds are the parent's: none is the child's.
 * It starts over with none (the parent's handlers, freed there, detach
 * nothing); the SIGBUS handler stays, passing everything on, until a
 * handler of the child's own uses it again.  The old tables are left to
 * leak: no thread of the child reads them.
 */
static void fork_child(void)
{
	it.ctxs = NULL;
	it.table = NULL;
	it.retired = NULL;
	it.readers[0] = it.readers[1] = 0;
	it.attached = 0;
	pthread_mutex_unlock(&it.lock);
}

/* Whether thread tid blocks SIGBUS (false if it is gone); *waiting (may
 * be NULL): it is runnable, waiting for a CPU. */
static bool tid_blocks_sigbus(const char *tid, bool *waiting)
{
	char path[64], line[128], state = 0;
	unsigned long long mask;
	bool blocked = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%.20s/status", tid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "State: %c", &state) == 1)
			continue;
		if (sscanf(line, "SigBlk: %llx", &mask) == 1) {
			blocked = mask >> (SIGBUS - 1) & 1;
			break;
		}
	}
	fclose(f);
	if (waiting)
		*waiting = state == 'R';
	return blocked;
}

/* The CPU time thread tid has had, in ns (0 if unknown). */
static unsigned long long tid_ran_ns(const char *tid)
{
	unsigned long long ns = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%.20s/schedstat", tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

/* A thread that blocks SIGBUS now, into tid; false if none. */
static bool scan_blocked(char *tid, size_t len)
{
	struct dirent *d;
	bool blocked = false;
	DIR *dir;

	dir = opendir("/proc/self/task");
	if (!dir)
		return false;
	while (!blocked && (d = readdir(dir)))
		if (d->d_name[0] != '.' && tid_blocks_sigbus(d->d_name, NULL)) {
			snprintf(tid, len, "%.20s", d->d_name);
			blocked = true;
		}
	closedir(dir);
	return blocked;
}

/*
 * Whether a thread of this process blocks SIGBUS: its first fault in an
 * in-thread region would kill the process (the kernel unblocks a fault's
 * signal and resets it to the default).  glibc blocks every signal for a
 * moment in a thread that creates another, in the new thread until it
 * starts, and in a thread that exits (which may still be listed just after
 * it was joined): one thread must be seen blocking it in looks 2 ms apart
 * for 10 ms.  A look counts only if the thread has run since the one
 * before, or is not waiting for a CPU: on a loaded machine a new thread
 * may wait longer than that for its first time slice, still blocking
 * everything (seen: EBUSY for threads just created).  /proc unreadable:
 * cannot tell.
 */
#define BLOCKED_LOOKS 6
#define BLOCKED_SCANS 20	/* fresh looks for another thread, at most */
#define WAITING_LOOKS 500	/* looks at a thread waiting for a CPU: 1 s */

static bool some_thread_blocks_sigbus(void)
{
	struct timespec gap = { 0, 2000000 };
	char tid[24];
	sigset_t mine;
	int scans, look;

	if (!pthread_sigmask(SIG_BLOCK, NULL, &mine) && sigismember(&mine, SIGBUS))
		return true;
	for (scans = 0; scans < BLOCKED_SCANS; scans++) {
		unsigned long long ran;
		int waited = 0;
		bool waiting;

		if (!scan_blocked(tid, sizeof(tid)))
			return false;
		ran = tid_ran_ns(tid);
		for (look = 1; look < BLOCKED_LOOKS;) {
			unsigned long long now;

			nanosleep(&gap, NULL);
			if (!tid_blocks_sigbus(tid, &waiting))
				break;
			now = tid_ran_ns(tid);
			if (now != ran || !waiting || ++waited > WAITING_LOOKS)
				look++;
			ran = now;
		}
		if (look == BLOCKED_LOOKS)
			return true;
	}
	return true;	/* a different thread every time: say so rather than guess */
}

int uffd__inthread_check_action(void)
{
	return uffd__sigchain_is_ours(SIGBUS, on_sigbus) ? 0 : -EBUSY;
}

bool uffd__inthread_holds_my_stack(uint64_t start, uint64_t len)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;
	bool holds;
	char probe;

	if (pthread_getattr_np(pthread_self(), &attr))
		return (uintptr_t)&probe >= start && (uintptr_t)&probe - start < len;
	if (pthread_attr_getstack(&attr, &addr, &size))
		size = 0;
	pthread_attr_destroy(&attr);
	holds = size && (uintptr_t)addr < start + len && start < (uintptr_t)addr + size;
	return holds || ((uintptr_t)&probe >= start && (uintptr_t)&probe - start < len);
}

int uffd__inthread_attach(struct handler_ctx *ctx)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART };
	int ret = 0;

	if (some_thread_blocks_sigbus())
		return -EBUSY;
	uffd__async_signals(&sa.sa_mask);	/* held off in our handlers */
	pthread_mutex_lock(&it.lock);
	if (!it.atfork_done) {
		ret = -pthread_atfork(fork_prepare, fork_parent, fork_child);
		it.atfork_done = !ret;
	}
	if (!ret && !it.attached) {
		struct sigaction prev;

		if (sigaction(SIGBUS, NULL, &prev))
			ret = -errno;
		else {
			/* Still ours from before (someone installed over us and
			 * went): keep the action we chain to. */
			if (!(prev.sa_flags & SA_SIGINFO) || prev.sa_sigaction != on_sigbus)
				it.prev_bus = prev;
			if (sigaction(SIGBUS, &sa, NULL))
				ret = -errno;
		}
	} else if (!ret && !uffd__sigchain_is_ours(SIGBUS, on_sigbus)) {
		ret = -EBUSY;	/* another handler replaced ours */
	}
	if (!ret) {
		it.attached++;
		ctx->in_thread = true;
		ctx->it_next = it.ctxs;
		it.ctxs = ctx;
		ret = republish_locked();
		if (ret) {
			it.ctxs = ctx->it_next;
			it.attached--;
		}
	}
	if (ret && !it.attached && uffd__sigchain_is_ours(SIGBUS, on_sigbus))
		sigaction(SIGBUS, &it.prev_bus, NULL);
	pthread_mutex_unlock(&it.lock);
	return ret;
}

void uffd__inthread_detach(struct handler_ctx *ctx)
{
	struct handler_ctx **pp;
	int i;

	pthread_mutex_lock(&it.lock);
	for (pp = &it.ctxs; *pp && *pp != ctx; pp = &(*pp)->it_next)
		;
	if (!*pp) {
		pthread_mutex_unlock(&it.lock);
		return;
	}
	*pp = ctx->it_next;
	pthread_rwlock_rdlock(&ctx->table.lock);
	for (i = 0; i < ctx->table.n; i++)
		stray_locked(ctx->table.v[i]->start, ctx->table.v[i]->start + ctx->table.v[i]->len);
	pthread_rwlock_unlock(&ctx->table.lock);
	/* Without memory for a new table the old one stays, ctx in it: wait
	 * for memory rather than free ctx under a handler. */
	while (republish_locked()) {
		pthread_mutex_unlock(&it.lock);
		sched_yield();
		pthread_mutex_lock(&it.lock);
	}
	if (!--it.attached && uffd__sigchain_is_ours(SIGBUS, on_sigbus))
		sigaction(SIGBUS, &it.prev_bus, NULL);
	pthread_mutex_unlock(&it.lock);
	uffd__inthread_synchronize();
}
