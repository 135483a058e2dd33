/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stress, in the spirit of the kernel's uffd-stress: worker threads
 * lock-step increment per-thread counters on random pages of a region that
 * is being emptied and refilled through faults at the same time, and at
 * the end every counter must hold exactly the number of increments made.
 *
 * The region's authoritative contents live in a "store" whenever a page is
 * not present: the emptier writes a page back to the store, then zaps it
 * (MADV_DONTNEED, a REMOVE event); the next touch faults and the handler's
 * missing callback copies it back from the store; a copy-ahead thread
 * refills pages before anyone asks.  Per-page mutexes order the three, and
 * the handler never takes them (the faulting worker already holds one).
 *
 * Modes run one after the other: "dontneed" (the above), "mremap" (also
 * moves the whole region back and forth, REMAP events; workers follow the
 * base pointer under a rwlock), "fork" (also forks children that read every
 * page through the handler's child context and exit).  Events counted by
 * the handler must equal the operations done.  LIBUFFD_STRESS_ITERS
 * overrides the increments per worker (default: short, for make check).
 *
 * A stuck run fails rather than hangs: a watchdog fails the mode when no
 * thread has made progress for STALL_MS, and failures end with _exit(),
 * since exit() waits for the locks a fork() stuck in the kernel holds.
 */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

/* exit() runs the atexit handlers and flushes stdio: both wait for locks
 * that glibc's fork() holds while its FORK message is unread. */
#undef FAIL
#define FAIL(...) do {							\
	fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__,	\
		mode_names[s.mode]);					\
	fprintf(stderr, __VA_ARGS__);					\
	fprintf(stderr, "\n");						\
	_exit(T_EXIT_FAIL);						\
} while (0)

#define NPAGES 64
#define NWORKERS 4
#define DEFAULT_ITERS 4000
/* No progress by any thread for this long is a stuck run, not a slow one
 * (a mode's steps take micro- to milliseconds, under sanitizers too). */
#define STALL_MS 20000

enum mode { MODE_DONTNEED, MODE_MREMAP, MODE_FORK };
static const char *const mode_names[] = { "dontneed", "mremap", "fork" };

struct page_counters {
	uint64_t count[NWORKERS];
};

static struct {
	enum mode mode;
	char *store;			/* authoritative when a page is absent */
	char *area_a, *area_b;		/* the two places mremap alternates */
	char *base;			/* where the region is now (map_lock) */
	pthread_rwlock_t map_lock;
	pthread_mutex_t page_lock[NPAGES];
	struct uffd u;
	struct uffd_region *region;
	uint64_t tally[NWORKERS][NPAGES];
	long iters;
	int workers_done;		/* atomic */
	long zaps, remaps, forks;	/* done by the background threads */
	uint64_t progress;		/* atomic: steps done by any thread */
	int mode_done;			/* atomic: the watchdog can end */
} s;

static void progressed(void)
{
	__atomic_fetch_add(&s.progress, 1, __ATOMIC_RELAXED);
}

static int missing(struct uffd_fault *f)
{
	uint64_t off = (uintptr_t)f->addr - (uintptr_t)uffd_region_addr(f->region);
	int p = off / PAGE, ret;
	bool child = uffd_region_uffd(f->region) != &s.u;

	/* A forked child's fault comes from a process holding no lock of
	 * ours: take the page lock so the store is stable while copied. */
	if (child)
		pthread_mutex_lock(&s.page_lock[p]);
	ret = uffd_fault_copy(f, s.store + off, PAGE);
	if (child)
		pthread_mutex_unlock(&s.page_lock[p]);
	return ret;
}

static unsigned next_rand(unsigned *seed)
{
	*seed = *seed * 1103515245 + 12345;
	return (*seed >> 16) & 0x7fff;
}

static void *worker_main(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned seed = 7 + t;
	long i;

	for (i = 0; i < s.iters; i++) {
		int p = next_rand(&seed) % NPAGES;
		struct page_counters *pc;

		pthread_mutex_lock(&s.page_lock[p]);
		pthread_rwlock_rdlock(&s.map_lock);
		pc = (struct page_counters *)(s.base + p * PAGE);
		pc->count[t]++;
		s.tally[t][p]++;
		pthread_rwlock_unlock(&s.map_lock);
		pthread_mutex_unlock(&s.page_lock[p]);
		progressed();
	}
	__atomic_fetch_add(&s.workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool workers_running(void)
{
	return __atomic_load_n(&s.workers_done, __ATOMIC_ACQUIRE) < NWORKERS;
}

/* Write a page back to the store, then zap it: the next touch faults. */
static void *emptier_main(void *arg)
{
	unsigned seed = 99;

	(void)arg;
	while (workers_running()) {
		int p = next_rand(&seed) % NPAGES;

		pthread_mutex_lock(&s.page_lock[p]);
		pthread_rwlock_rdlock(&s.map_lock);
		memcpy(s.store + p * PAGE, s.base + p * PAGE, PAGE);
		if (madvise(s.base + p * PAGE, PAGE, MADV_DONTNEED))
			FAIL("madvise: %s", strerror(errno));
		s.zaps++;
		pthread_rwlock_unlock(&s.map_lock);
		pthread_mutex_unlock(&s.page_lock[p]);
		progressed();
	}
	return NULL;
}

/* Refill absent pages before anyone asks (EEXIST when present: fine). */
static void *copy_ahead_main(void *arg)
{
	unsigned seed = 1234;

	(void)arg;
	while (workers_running()) {
		int p = next_rand(&seed) % NPAGES, ret;

		pthread_mutex_lock(&s.page_lock[p]);
		pthread_rwlock_rdlock(&s.map_lock);
		ret = uffd_region_copy(s.region, s.base + p * PAGE, s.store + p * PAGE, PAGE);
		pthread_rwlock_unlock(&s.map_lock);
		pthread_mutex_unlock(&s.page_lock[p]);
		if (ret)
			FAIL("copy-ahead: %s", strerror(-ret));
		progressed();
		sched_yield();
	}
	return NULL;
}

static void *mremap_main(void *arg)
{
	(void)arg;
	while (workers_running()) {
		char *to;

		pthread_rwlock_wrlock(&s.map_lock);
		to = s.base == s.area_a ? s.area_b : s.area_a;
		/* DONTUNMAP leaves an empty mapping behind, so nothing else
		 * (a thread stack, a malloc arena) can move into the slot
		 * the next mremap will claim with MREMAP_FIXED. */
		if (mremap(s.base, NPAGES * PAGE, NPAGES * PAGE,
			   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) != to)
			FAIL("mremap: %s", strerror(errno));
		s.base = to;
		s.remaps++;
		pthread_rwlock_unlock(&s.map_lock);
		progressed();
		t_sleep_ms(2);
	}
	return NULL;
}

/* The child touches every page (faults served by the child context). */
static void child_reads_all(void)
{
	volatile uint64_t sum = 0;
	int p, t;

	for (p = 0; p < NPAGES; p++)
		for (t = 0; t < NWORKERS; t++)
			sum += ((struct page_counters *)(s.base + p * PAGE))->count[t];
	(void)sum;
	_exit(0);
}

static void *fork_main(void *arg)
{
	(void)arg;
	while (workers_running() && s.forks < 4) {
		int status, waited;
		pid_t pid;

		pthread_rwlock_rdlock(&s.map_lock);
		pid = fork();
		if (pid == 0)
			child_reads_all();
		pthread_rwlock_unlock(&s.map_lock);
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		s.forks++;
		for (waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited++) {
			if (waited > 10000)
				FAIL("forked child did not finish in 10 s");
			t_sleep_ms(1);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			FAIL("child status %#x", status);
		progressed();
	}
	return NULL;
}

/* Fail the mode when nothing has moved for STALL_MS, saying how far
 * each kind of step got. */
static void *watchdog_main(void *arg)
{
	uint64_t seen = 0;
	int still_ms = 0;

	(void)arg;
	while (!__atomic_load_n(&s.mode_done, __ATOMIC_ACQUIRE)) {
		uint64_t now = __atomic_load_n(&s.progress, __ATOMIC_RELAXED);

		still_ms = now == seen ? still_ms + 10 : 0;
		seen = now;
		if (still_ms >= STALL_MS)
			FAIL("no progress for %d ms: %" PRIu64 " steps, %d of %d workers done, "
			     "%ld zaps, %ld remaps, %ld forks", STALL_MS, now,
			     __atomic_load_n(&s.workers_done, __ATOMIC_ACQUIRE), NWORKERS,
			     __atomic_load_n(&s.zaps, __ATOMIC_RELAXED),
			     __atomic_load_n(&s.remaps, __ATOMIC_RELAXED),
			     __atomic_load_n(&s.forks, __ATOMIC_RELAXED));
		t_sleep_ms(10);
	}
	return NULL;
}

static void run_mode(enum mode mode)
{
	static const struct uffd_region_ops ops = { .missing = missing };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_handler_stats st;
	struct uffd_handler *h;
	pthread_t workers[NWORKERS], bg[3], watchdog;
	int nbg = 0, i, p, t;
	char *env = getenv("LIBUFFD_STRESS_ITERS");

	memset(s.tally, 0, sizeof(s.tally));
	s.mode = mode;
	s.iters = env ? atol(env) : DEFAULT_ITERS;
	s.workers_done = 0;
	s.zaps = s.remaps = s.forks = 0;
	s.progress = 0;
	s.mode_done = 0;
	t_open(&s.u, UFFD_F(UFFD_FEAT_EVENT_REMOVE) | UFFD_F(UFFD_FEAT_EVENT_REMAP) |
		     (mode == MODE_FORK ? UFFD_F(UFFD_FEAT_EVENT_FORK) : 0), 0);
	/* Two slots for mremap to alternate between; the region starts in A. */
	s.area_a = t_map_anon(2 * NPAGES * PAGE);
	s.area_b = s.area_a + NPAGES * PAGE;
	s.base = s.area_a;
	s.store = t_map_anon(NPAGES * PAGE);
	h = uffd_handler_new(&s.u, &opts);
	CHECK(h);
	s.region = uffd_handler_add(h, s.area_a, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL);
	CHECK(s.region);
	CHECK_OK(uffd_handler_start(h));
	pthread_create(&watchdog, NULL, watchdog_main, NULL);

	for (t = 0; t < NWORKERS; t++)
		pthread_create(&workers[t], NULL, worker_main, (void *)(intptr_t)t);
	pthread_create(&bg[nbg++], NULL, emptier_main, NULL);
	pthread_create(&bg[nbg++], NULL, copy_ahead_main, NULL);
	if (mode == MODE_MREMAP)
		pthread_create(&bg[nbg++], NULL, mremap_main, NULL);
	if (mode == MODE_FORK)
		pthread_create(&bg[nbg++], NULL, fork_main, NULL);
	for (t = 0; t < NWORKERS; t++)
		pthread_join(workers[t], NULL);
	for (i = 0; i < nbg; i++)
		pthread_join(bg[i], NULL);

	/* Every counter, read through faults where a page is absent. */
	for (p = 0; p < NPAGES; p++) {
		struct page_counters *pc = (struct page_counters *)(s.base + p * PAGE);

		for (t = 0; t < NWORKERS; t++)
			if (pc->count[t] != s.tally[t][p])
				FAIL("%s: page %d thread %d: counter %" PRIu64 ", made %" PRIu64,
				     mode_names[mode], p, t, pc->count[t], s.tally[t][p]);
	}
	CHECK_OK(uffd_handler_stats(h, &st));
	CHECK_EQ(st.events[2], s.zaps);		/* REMOVE */
	CHECK_EQ(st.events[1], s.remaps);	/* REMAP */
	CHECK_EQ(st.events[0], s.forks);	/* FORK */
	CHECK(st.faults[UFFD_FAULT_MISSING] > 0);
	CHECK_EQ(st.unknown_addr, 0);
	CHECK_EQ(st.callback_errors, 0);
	fprintf(stderr, "%-8s %ld increments, %ld zaps, %ld remaps, %ld forks, "
		"%" PRIu64 " faults, %" PRIu64 " coalesced, %" PRIu64 " eexist, "
		"%" PRIu64 " retries\n", mode_names[mode], NWORKERS * s.iters, s.zaps,
		s.remaps, s.forks, st.faults[UFFD_FAULT_MISSING], st.coalesced,
		st.eexist, st.retries);
	CHECK_OK(uffd_handler_stop(h));
	__atomic_store_n(&s.mode_done, 1, __ATOMIC_RELEASE);
	pthread_join(watchdog, NULL);
	uffd_handler_free(h);
	uffd_close(&s.u);
	munmap(s.area_a, 2 * NPAGES * PAGE);
	munmap(s.store, NPAGES * PAGE);
}

int main(void)
{
	int p;

	pthread_rwlock_init(&s.map_lock, NULL);
	for (p = 0; p < NPAGES; p++)
		pthread_mutex_init(&s.page_lock[p], NULL);
	run_mode(MODE_DONTNEED);
	run_mode(MODE_MREMAP);
	run_mode(MODE_FORK);
	return T_EXIT_PASS;
}
