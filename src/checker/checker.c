/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The consistency checker: writer threads stamp versions into a table of
 * pages, and the checker can then tell, for every page, which version it
 * had at the last marked instant - and so prove a copy or an image of the
 * table right or show the first page that is wrong.
 *
 * The idea that makes it cheap: each page has one writer (p % T), and that
 * writer keeps the page's versions in a side array of its own.  At the first
 * write to a page in a new epoch it saves the version the page had (its
 * version at the instant) before overwriting it.  A verifier never reads
 * the live table, only the side arrays, so it may run while the writers do:
 * it reads the page's current version first and its epoch second, and since
 * the writer stores them in the opposite order (epoch and saved version
 * before the new current version), a current version from after the
 * instant always comes with the epoch that points at the saved one.
 *
 * Pausing costs the writers one relaxed load per write (the hold flag);
 * parking and waking go through a mutex and two condition variables, and
 * the pauser spins on the parked count for a few microseconds first,
 * since a writer is never more than one page write away from parking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/image.h>

#include "util/clock.h"
#include "util/opts.h"

#define CHECKER_PAGE		4096UL
#define PAGE_WORDS		(CHECKER_PAGE / 8)
#define DEFAULT_BYTES		(1UL << 30)
#define DEFAULT_WRITERS		2
#define CACHE_LINE		64

/* Where the stamps live in a page (in 64-bit words). */
#define W_VERSION		0
#define W_INDEX			1
#define W_MIDDLE		(2048 / 8)
#define W_CHECKSUM		(4088 / 8)

/*
 * How long a pause spins on the parked count before sleeping: many page
 * writes' worth, enough for writers running on CPUs of their own to park
 * (a microsecond or two).  Not longer: a writer that shares the pauser's
 * CPU, or is blocked in a fault (a snapshot's write-protection), parks
 * only once the pauser sleeps, so the spin is pure delay there (measured
 * on 2 loaded CPUs: the median pause is the spin plus ~8 us; yielding
 * instead of sleeping was worse, the CPU going to other processes).
 */
#define PAUSE_SPIN_NS		5000
#define PAUSE_SPIN_CHECKS	64		/* between two clock reads */

/* A writer at a rate looks at the clock once per this many writes. */
#define RATE_CHUNK		16

/*
 * The stamps in the middle and at the end: different bijections of the
 * version, keyed by the page index, so each decodes back to the version it
 * was made from (a torn page's report says which versions met) and a page
 * restored at the wrong index does not pass.
 */
#define MIDDLE_MUL		0x9e3779b97f4a7c15ULL
#define MIDDLE_KEY		0x6d6964646c652121ULL
#define MIDDLE_ROT		29
#define CHECKSUM_MUL		0xc2b2ae3d27d4eb4fULL
#define CHECKSUM_KEY		0x636865636b73756dULL
#define CHECKSUM_ROT		43

/* A page's versions, kept by its writer (all accessed atomically). */
struct page_state {
	uint64_t current;	/* in the table now (0: never written) */
	uint64_t saved;		/* at the instant of epoch `epoch` */
	uint64_t epoch;		/* the epoch saved belongs to */
	uint64_t origin;	/* adopted tables: 1 + the version found in
				   the page at its first write here (0: not
				   written yet; ORIGIN_BAD: not a whole page).
				   Also keeps the struct at two to a cache
				   line, never straddling */
};

#define ORIGIN_BAD		UINT64_MAX

/* One writer: pages index, index + T, index + 2T... */
struct checker_writer {
	struct uffd_checker *c;
	pthread_t thread;
	size_t index;			/* its first page */
	uint64_t rng;			/* xorshift64 state, owner only */
	size_t npages;			/* pages it owns */
	size_t hot_npages;		/* of which it writes the first these */
	uint64_t rate_ns;		/* ns per write (0: no limit) */
	struct page_state *pages;	/* [i]: page index + i * T */
	uint64_t writes;		/* atomic, written by the owner only */
} __attribute__((aligned(CACHE_LINE)));

struct uffd_checker {
	/* read by the writers on every write */
	char *area;
	size_t len, npages;
	int nwriters;
	int hold;			/* atomic: leave the write loop */
	struct checker_writer *writers;
	/* the version clock, alone on its line: every write takes it */
	uint64_t clock __attribute__((aligned(CACHE_LINE)));	/* atomic */
	/* control, under lock */
	pthread_mutex_t lock __attribute__((aligned(CACHE_LINE)));
	pthread_cond_t parked_cond;	/* the last writer parked */
	pthread_cond_t resume_cond;	/* pause over, or stop */
	bool running, paused, stopping, pauser_waiting;
	int parked;			/* atomic (the pauser spins on it) */
	uint64_t epoch;			/* atomic: 0 until the first instant */
	uint64_t instant_clock;		/* atomic: clock at the instant */
	struct uffd_checker_opts opts;
	bool owns_area;			/* false for an adopted table */
	bool adopted;			/* read each page at its first write */
	int adopt_bad;			/* atomic: a bad page was found */
	char adopt_msg[192];		/* the first one, written once */
};

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t rotr64(uint64_t x, int r)
{
	return (x >> r) | (x << (64 - r));
}

static inline uint64_t middle_of(uint64_t version, uint64_t page)
{
	return rotl64(version ^ page * MIDDLE_MUL ^ MIDDLE_KEY, MIDDLE_ROT);
}

static inline uint64_t checksum_of(uint64_t version, uint64_t page)
{
	return rotl64(version ^ page * CHECKSUM_MUL ^ CHECKSUM_KEY, CHECKSUM_ROT);
}

static uint64_t middle_version(uint64_t word, uint64_t page)
{
	return rotr64(word, MIDDLE_ROT) ^ page * MIDDLE_MUL ^ MIDDLE_KEY;
}

static uint64_t checksum_version(uint64_t word, uint64_t page)
{
	return rotr64(word, CHECKSUM_ROT) ^ page * CHECKSUM_MUL ^ CHECKSUM_KEY;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline struct page_state *state_of(const struct uffd_checker *c, size_t page)
{
	return &c->writers[page % c->nwriters].pages[page / c->nwriters];
}

/*
 * Stamp a page: header, then middle, then checksum (release stores keep
 * that order on weakly ordered machines too), so a copy taken in the middle
 * of a write has stamps that disagree.
 */
static inline void stamp_page(char *page_addr, uint64_t version, uint64_t page)
{
	uint64_t *w = (uint64_t *)page_addr;

	__atomic_store_n(&w[W_VERSION], version, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_INDEX], page, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_MIDDLE], middle_of(version, page), __ATOMIC_RELEASE);
	__atomic_store_n(&w[W_CHECKSUM], checksum_of(version, page), __ATOMIC_RELEASE);
}

static uint64_t adopt_origin(struct uffd_checker *c, struct page_state *s, size_t page);

/* The hot path: one write to the writer's i-th page. */
static inline void write_one(struct uffd_checker *c, struct checker_writer *w,
			     size_t i, uint64_t epoch)
{
	struct page_state *s = &w->pages[i];
	size_t page = w->index + i * c->nwriters;
	uint64_t version = __atomic_fetch_add(&c->clock, 1, __ATOMIC_RELAXED) + 1;

	/* First write in this epoch: keep the version at the instant. */
	if (__atomic_load_n(&s->epoch, __ATOMIC_RELAXED) != epoch) {
		uint64_t cur = __atomic_load_n(&s->current, __ATOMIC_RELAXED);

		/* An adopted table: what is in the page is its history. */
		if (c->adopted && !__atomic_load_n(&s->origin, __ATOMIC_RELAXED))
			cur = adopt_origin(c, s, page);
		__atomic_store_n(&s->saved, cur, __ATOMIC_RELAXED);
		__atomic_store_n(&s->epoch, epoch, __ATOMIC_RELEASE);
	}
	stamp_page(c->area + page * CHECKER_PAGE, version, page);
	__atomic_store_n(&s->current, version, __ATOMIC_RELEASE);
}

/* Park until resumed; true if the writer is to exit instead. */
static bool writer_park(struct uffd_checker *c)
{
	bool stop;

	pthread_mutex_lock(&c->lock);
	if (__atomic_add_fetch(&c->parked, 1, __ATOMIC_ACQ_REL) == c->nwriters &&
	    c->pauser_waiting)
		pthread_cond_signal(&c->parked_cond);
	while (c->paused && !c->stopping)
		pthread_cond_wait(&c->resume_cond, &c->lock);
	__atomic_sub_fetch(&c->parked, 1, __ATOMIC_RELAXED);
	stop = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ULL), (long)(t % 1000000000ULL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *writer_main(void *arg)
{
	struct checker_writer *w = arg;
	struct uffd_checker *c = w->c;
	uint64_t epoch = __atomic_load_n(&c->epoch, __ATOMIC_RELAXED);
	uint64_t writes = __atomic_load_n(&w->writes, __ATOMIC_RELAXED);
	uint64_t rng = w->rng, t_start = 0, n_since = 0;

	for (;;) {
		if (__atomic_load_n(&c->hold, __ATOMIC_RELAXED)) {
			if (writer_park(c))
				break;
			/* An instant may have been marked while parked. */
			epoch = __atomic_load_n(&c->epoch, __ATOMIC_RELAXED);
			t_start = 0;	/* the rate counts from the resume */
		}
		/* At a rate: a write is due every rate_ns (checked every
		 * RATE_CHUNK writes, sleeping off any lead). */
		if (w->rate_ns && !(n_since++ % RATE_CHUNK)) {
			uint64_t due;

			if (!t_start) {
				t_start = mono_ns();
				n_since = 1;
			}
			due = t_start + (n_since - 1) * w->rate_ns;
			if (due > mono_ns())
				sleep_until(due);
		}
		/* A uniform index in [0, hot_npages) without a division. */
		write_one(c, w, (size_t)(((unsigned __int128)xorshift64(&rng) *
					  w->hot_npages) >> 64), epoch);
		__atomic_store_n(&w->writes, ++writes, __ATOMIC_RELAXED);
	}
	w->rng = rng;
	return NULL;
}

/* Write a seed-chosen fraction of the pages once, in page order. */
static void prefill(struct uffd_checker *c)
{
	double fill = c->opts.fill;
	uint64_t threshold = fill * 0x1p64 >= 0x1p64 ? UINT64_MAX : (uint64_t)(fill * 0x1p64);
	size_t p;

	if (fill <= 0.0)
		return;
	for (p = 0; p < c->npages; p++) {
		uint64_t version;

		if (splitmix64(((uint64_t)c->opts.seed << 40) ^ p) > threshold)
			continue;
		version = ++c->clock;
		stamp_page(c->area + p * CHECKER_PAGE, version, p);
		state_of(c, p)->current = version;
	}
}

static void *map_table(enum uffd_checker_mem mem, size_t len)
{
	void *area;
	int fd;

	if (mem == UFFD_CHECKER_ANON)
		return mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	fd = memfd_create("uffd-checker", MFD_CLOEXEC);
	if (fd < 0)
		return MAP_FAILED;
	/* The mapping keeps the memfd alive. */
	if (ftruncate(fd, len) < 0)
		area = MAP_FAILED;
	else
		area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return area;
}

/* The pages writers write to: the first hot_bytes, or all. */
static size_t hot_pages(const struct uffd_checker *c)
{
	size_t hot = c->opts.hot_bytes / CHECKER_PAGE;

	return hot && hot < c->npages ? hot : c->npages;
}

static int alloc_writers(struct uffd_checker *c)
{
	size_t size = sizeof(*c->writers) * c->nwriters;
	int i;

	if (posix_memalign((void **)&c->writers, CACHE_LINE, size))
		return -ENOMEM;
	memset(c->writers, 0, size);
	for (i = 0; i < c->nwriters; i++) {
		struct checker_writer *w = &c->writers[i];

		w->c = c;
		w->index = i;
		w->npages = (c->npages - i + c->nwriters - 1) / c->nwriters;
		w->hot_npages = (hot_pages(c) - i + c->nwriters - 1) / c->nwriters;
		if (!w->hot_npages)
			w->hot_npages = 1;
		w->rate_ns = c->opts.rate > 0 ? (uint64_t)(1e9 * c->nwriters / c->opts.rate) : 0;
		w->rng = splitmix64((uint64_t)c->opts.seed * 0x100000001b3ULL + i) | 1;
		/* Fresh anonymous memory: zero without being written (32
		 * bytes a page: 32 MiB for 4 GiB, which a memset would take
		 * tens of ms to touch - in a migration's pause, for one). */
		w->pages = mmap(NULL, w->npages * sizeof(*w->pages), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (w->pages == MAP_FAILED) {
			w->pages = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

static void free_writers(struct uffd_checker *c)
{
	int i;

	if (!c->writers)
		return;
	for (i = 0; i < c->nwriters; i++)
		if (c->writers[i].pages)
			munmap(c->writers[i].pages,
			       c->writers[i].npages * sizeof(*c->writers[i].pages));
	free(c->writers);
}

struct uffd_checker *uffd_checker_new(const struct uffd_checker_opts *o)
{
	struct uffd_checker_opts opts;
	struct uffd_checker *c;
	int ret;

	ret = uffd__load_opts(&opts, o, struct uffd_checker_opts, rate, fill);
	if (ret) {
		errno = -ret;
		return NULL;
	}
	if (!opts.bytes)
		opts.bytes = DEFAULT_BYTES;
	if (!opts.writers)
		opts.writers = DEFAULT_WRITERS;
	if (!opts.seed)
		opts.seed = 1;
	if (opts.bytes % CHECKER_PAGE || opts.writers < 0 ||
	    (size_t)opts.writers > opts.bytes / CHECKER_PAGE ||
	    !(opts.fill >= 0.0 && opts.fill <= 1.0) || opts.hot_bytes % CHECKER_PAGE ||
	    !(opts.rate >= 0.0 && opts.rate < 1e12) ||
	    (opts.mem != UFFD_CHECKER_ANON && opts.mem != UFFD_CHECKER_SHMEM)) {
		errno = EINVAL;
		return NULL;
	}
	if (posix_memalign((void **)&c, CACHE_LINE, sizeof(*c))) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->opts = opts;
	c->len = opts.bytes;
	c->npages = opts.bytes / CHECKER_PAGE;
	c->nwriters = opts.writers;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->parked_cond, NULL);
	pthread_cond_init(&c->resume_cond, NULL);
	ret = alloc_writers(c);
	if (ret)
		goto out_free;
	c->owns_area = true;
	c->area = map_table(opts.mem, c->len);
	if (c->area == MAP_FAILED) {
		ret = -errno;
		goto out_free;
	}
	prefill(c);
	return c;

out_free:
	free_writers(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->parked_cond);
	pthread_cond_destroy(&c->resume_cond);
	free(c);
	errno = -ret;
	return NULL;
}

void *uffd_checker_area(const struct uffd_checker *c)
{
	if (!c) {
		errno = EINVAL;
		return NULL;
	}
	return c->area;
}

size_t uffd_checker_len(const struct uffd_checker *c)
{
	return c ? c->len : 0;
}

/* Under lock: make the writers leave their loops and join them. */
static void stop_locked(struct uffd_checker *c, int nthreads)
{
	int i;

	c->stopping = true;
	__atomic_store_n(&c->hold, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&c->resume_cond);
	pthread_cond_broadcast(&c->parked_cond);	/* a pause gives up */
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < nthreads; i++)
		pthread_join(c->writers[i].thread, NULL);
	pthread_mutex_lock(&c->lock);
	c->running = c->paused = c->stopping = false;
	__atomic_store_n(&c->hold, 0, __ATOMIC_RELAXED);
}

int uffd_checker_start(struct uffd_checker *c)
{
	int i, ret = 0;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->running) {
		ret = -EBUSY;
		goto out;
	}
	c->running = true;
	for (i = 0; i < c->nwriters; i++) {
		ret = -pthread_create(&c->writers[i].thread, NULL, writer_main,
				      &c->writers[i]);
		if (ret) {
			stop_locked(c, i);
			break;
		}
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static bool all_parked(struct uffd_checker *c)
{
	return __atomic_load_n(&c->parked, __ATOMIC_ACQUIRE) == c->nwriters;
}

void uffd_checker_pause(struct uffd_checker *c)
{
	uint64_t deadline;

	/*
	 * Set under the lock: a writer decides to leave the park under it
	 * too, so once this is set no writer can leave, and a parked count
	 * of T read below means T writers that stay.
	 */
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (!c->running || c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->paused = true;
	__atomic_store_n(&c->hold, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&c->lock);

	deadline = mono_ns() + PAUSE_SPIN_NS;
	do {
		for (int i = 0; i < PAUSE_SPIN_CHECKS; i++) {
			if (all_parked(c))
				return;
			cpu_relax();
		}
	} while (mono_ns() < deadline);

	pthread_mutex_lock(&c->lock);
	c->pauser_waiting = true;
	while (c->running && !c->stopping && !all_parked(c))
		pthread_cond_wait(&c->parked_cond, &c->lock);
	c->pauser_waiting = false;
	pthread_mutex_unlock(&c->lock);
}

void uffd_checker_resume(struct uffd_checker *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->paused) {
		c->paused = false;
		__atomic_store_n(&c->hold, 0, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&c->resume_cond);
	}
	pthread_mutex_unlock(&c->lock);
}

void uffd_checker_mark_instant(struct uffd_checker *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	/* Writers that are running would race the epoch change: ignored. */
	if (!c->running || c->paused) {
		__atomic_store_n(&c->instant_clock,
				 __atomic_load_n(&c->clock, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->epoch, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&c->lock);
}

void uffd_checker_pause_cb(void *c)
{
	uffd_checker_pause(c);
	uffd_checker_mark_instant(c);
}

void uffd_checker_resume_cb(void *c)
{
	uffd_checker_resume(c);
}

void uffd_checker_stop(struct uffd_checker *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->running)
		stop_locked(c, c->nwriters);
	pthread_mutex_unlock(&c->lock);
}

uint64_t uffd_checker_writes(const struct uffd_checker *c)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; c && i < c->nwriters; i++)
		sum += __atomic_load_n(&c->writers[i].writes, __ATOMIC_RELAXED);
	return sum;
}

void uffd_checker_free(struct uffd_checker *c)
{
	if (!c)
		return;
	uffd_checker_stop(c);
	if (c->owns_area)
		munmap(c->area, c->len);
	free_writers(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->parked_cond);
	pthread_cond_destroy(&c->resume_cond);
	free(c);
}

/* ---- verification ----------------------------------------------------- */

/*
 * The page's version at the instant.  current is read before epoch: a
 * current from after the instant was stored after the epoch and the saved
 * version (release), so reading it (acquire) makes them visible too.
 */
static uint64_t version_at_instant(const struct uffd_checker *c, size_t page,
				   uint64_t epoch)
{
	struct page_state *s = state_of(c, page);
	uint64_t cur = __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);

	if (__atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE) == epoch)
		return __atomic_load_n(&s->saved, __ATOMIC_RELAXED);
	return cur;
}

static int report(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int report(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* "of 12", or "zero" for a stamp that was never written. */
static void describe_stamp(char *buf, size_t len, uint64_t word, uint64_t version)
{
	if (word)
		snprintf(buf, len, "of %llu", (unsigned long long)version);
	else
		snprintf(buf, len, "zero");
}

/* The stamps are one version's, of this page (or all zero). */
static int check_stamps(size_t page, const uint64_t *w, char *msg, size_t msglen)
{
	unsigned long long p = page, found = w[W_VERSION];

	if (found || w[W_INDEX] || w[W_MIDDLE] || w[W_CHECKSUM]) {
		uint64_t mid = middle_version(w[W_MIDDLE], page);
		uint64_t sum = checksum_version(w[W_CHECKSUM], page);
		char mids[32], sums[32];

		uint64_t idx = w[W_INDEX];

		/* Whole and consistent, but another page's: misplaced. */
		if (found && idx != page &&
		    middle_version(w[W_MIDDLE], idx) == found &&
		    checksum_version(w[W_CHECKSUM], idx) == found)
			return report(msg, msglen, "page %llu: header of page %llu (version %llu)",
				      p, (unsigned long long)idx, found);
		if (!found || idx != page || mid != found || sum != found) {
			describe_stamp(mids, sizeof(mids), w[W_MIDDLE], mid);
			describe_stamp(sums, sizeof(sums), w[W_CHECKSUM], sum);
			return report(msg, msglen, "page %llu: torn (header %llu, middle %s, checksum %s)",
				      p, found, mids, sums);
		}
	}
	return 0;
}

/* Writers touch nothing else: the rest of the page is zero. */
static int check_stray(size_t page, const uint64_t *w, char *msg, size_t msglen)
{
	size_t i;

	for (i = W_INDEX + 1; i < PAGE_WORDS; i++) {
		if (w[i] && i != W_MIDDLE && i != W_CHECKSUM)
			return report(msg, msglen, "page %llu: stray bytes at offset %zu (version %llu)",
				      (unsigned long long)page, i * 8,
				      (unsigned long long)w[W_VERSION]);
	}
	return 0;
}

/* Check one page's contents against the version it had at the instant. */
static int check_page(const struct uffd_checker *c, size_t page, const uint64_t *w,
		      uint64_t expected, char *msg, size_t msglen)
{
	unsigned long long p = page, found = w[W_VERSION];
	int ret = check_stamps(page, w, msg, msglen);

	if (ret)
		return ret;
	if (found != expected) {
		unsigned long long instant = __atomic_load_n(&c->instant_clock,
							     __ATOMIC_RELAXED);
		const char *why = found > instant ? " (after the instant)" :
				  found < expected ? " (older)" : " (never this page's)";

		if (!found)
			why = " (zero page)";
		return report(msg, msglen, "page %llu: version %llu%s, expected %llu",
			      p, found, why, (unsigned long long)expected);
	}
	return check_stray(page, w, msg, msglen);
}

/* The epoch to verify against, or -EINVAL if no instant was marked. */
static int current_epoch(const struct uffd_checker *c, uint64_t *epoch,
			 char *msg, size_t msglen)
{
	*epoch = __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE);
	if (*epoch)
		return 0;
	if (msg && msglen)
		snprintf(msg, msglen, "no instant marked");
	return -EINVAL;
}

int uffd_checker_verify_memory(struct uffd_checker *c, const void *mem,
			       char *msg, size_t msglen)
{
	uint64_t epoch;
	size_t p;
	int ret;

	if (!c || !mem)
		return -EINVAL;
	ret = current_epoch(c, &epoch, msg, msglen);
	for (p = 0; !ret && p < c->npages; p++)
		ret = check_page(c, p, (const uint64_t *)((const char *)mem + p * CHECKER_PAGE),
				 version_at_instant(c, p, epoch), msg, msglen);
	return ret;
}

/* The image's region must be the table's shape. */
static int check_region(struct uffd_checker *c, struct uffd_image_chain *chain,
			int region, char *msg, size_t msglen)
{
	struct uffd_image *img = uffd_image_chain_get(chain, 0);
	struct uffd_image_info info;
	int ret;

	ret = img ? uffd_image_info(img, &info) : -EINVAL;
	if (ret)
		return ret;
	if (region < 0 || region >= info.nregions) {
		snprintf(msg, msglen, "no region %d (the image has %d)", region,
			 info.nregions);
		return -EINVAL;
	}
	if (info.regions[region].len != c->len ||
	    info.regions[region].page_size != CHECKER_PAGE) {
		snprintf(msg, msglen, "region %d: %llu bytes of %u-byte pages, the table %zu of %lu",
			 region, (unsigned long long)info.regions[region].len,
			 info.regions[region].page_size, c->len, CHECKER_PAGE);
		return -EINVAL;
	}
	return 0;
}

int uffd_checker_verify_image(struct uffd_checker *c, struct uffd_image_chain *chain,
			      int region, char *msg, size_t msglen)
{
	char dummy[1], *buf;
	uint64_t epoch;
	size_t p;
	int ret;

	if (!c || !chain)
		return -EINVAL;
	if (!msg || !msglen) {
		msg = dummy;
		msglen = sizeof(dummy);
	}
	ret = current_epoch(c, &epoch, msg, msglen);
	if (!ret)
		ret = check_region(c, chain, region, msg, msglen);
	if (ret)
		return ret;
	buf = aligned_alloc(CHECKER_PAGE, CHECKER_PAGE);
	if (!buf)
		return -ENOMEM;
	for (p = 0; p < c->npages; p++) {
		ret = uffd_image_chain_read_page(chain, region, p, buf);
		if (ret < 0) {
			snprintf(msg, msglen, "page %zu: %s", p, strerror(-ret));
			break;
		}
		ret = check_page(c, p, (const uint64_t *)buf,
				 version_at_instant(c, p, epoch), msg, msglen);
		if (ret)
			break;
	}
	free(buf);
	return ret;
}

/* ---- handing the writers to another process ----------------------------- */

/*
 * The exported state (little-endian; written and read by this file only,
 * between two processes of the same build):
 *
 *   u32 magic "UCKS", u32 format (1), u64 table bytes, u32 writers,
 *   u32 seed, u64 clock, u64 epoch, u64 instant clock, u64 hot bytes,
 *   f64 rate, u64 zero (64 bytes); then per writer u64 rng, u64 writes.
 */
#define STATE_MAGIC		0x534b4355u	/* "UCKS" */
#define STATE_FORMAT		1
#define STATE_HEAD		64
#define STATE_PER_WRITER	16

static size_t state_size(int writers)
{
	return STATE_HEAD + (size_t)STATE_PER_WRITER * writers;
}

/*
 * An adopted table's page at its first write here: its stamps must be
 * one whole version of this page (or zeros).  Records and returns the
 * version found (0 for a bad page, whose description is kept once).
 */
static uint64_t adopt_origin(struct uffd_checker *c, struct page_state *s, size_t page)
{
	const uint64_t *w = (const uint64_t *)(c->area + page * CHECKER_PAGE);
	char msg[sizeof(c->adopt_msg) - 32];
	uint64_t v;

	if (check_stamps(page, w, msg, sizeof(msg)) || check_stray(page, w, msg, sizeof(msg))) {
		if (!__atomic_exchange_n(&c->adopt_bad, 1, __ATOMIC_ACQ_REL))
			snprintf(c->adopt_msg, sizeof(c->adopt_msg), "%s when first written here",
				 msg);
		__atomic_store_n(&s->origin, ORIGIN_BAD, __ATOMIC_RELAXED);
		return 0;
	}
	v = w[W_VERSION];
	__atomic_store_n(&s->origin, v + 1, __ATOMIC_RELAXED);
	return v;
}

static bool writers_running(struct uffd_checker *c)
{
	bool running;

	pthread_mutex_lock(&c->lock);
	running = c->running && !c->paused;
	pthread_mutex_unlock(&c->lock);
	return running;
}

int uffd_checker_export(struct uffd_checker *c, void *buf, size_t len)
{
	size_t need;
	uint8_t *b = buf;
	int i;

	if (!c)
		return -EINVAL;
	need = state_size(c->nwriters);
	if (!buf)
		return (int)need;
	if (len < need)
		return -ENOSPC;
	/* The writers' rng and counts must stay put while copied. */
	if (writers_running(c) || !__atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE))
		return -EINVAL;
	memset(b, 0, need);
	memcpy(b, &(uint32_t){ STATE_MAGIC }, 4);
	memcpy(b + 4, &(uint32_t){ STATE_FORMAT }, 4);
	memcpy(b + 8, &(uint64_t){ c->len }, 8);
	memcpy(b + 16, &(uint32_t){ (uint32_t)c->nwriters }, 4);
	memcpy(b + 20, &(uint32_t){ c->opts.seed }, 4);
	memcpy(b + 24, &(uint64_t){ __atomic_load_n(&c->clock, __ATOMIC_RELAXED) }, 8);
	memcpy(b + 32, &(uint64_t){ __atomic_load_n(&c->epoch, __ATOMIC_RELAXED) }, 8);
	memcpy(b + 40, &(uint64_t){ __atomic_load_n(&c->instant_clock, __ATOMIC_RELAXED) }, 8);
	memcpy(b + 48, &(uint64_t){ c->opts.hot_bytes }, 8);
	memcpy(b + 56, &c->opts.rate, 8);
	for (i = 0; i < c->nwriters; i++) {
		uint8_t *p = b + STATE_HEAD + (size_t)STATE_PER_WRITER * i;

		memcpy(p, &c->writers[i].rng, 8);
		memcpy(p + 8, &(uint64_t){ __atomic_load_n(&c->writers[i].writes,
							     __ATOMIC_RELAXED) }, 8);
	}
	return (int)need;
}

struct uffd_checker *uffd_checker_adopt(void *area, size_t len, const void *state,
					size_t state_len)
{
	const uint8_t *b = state;
	uint32_t magic, format, writers;
	uint64_t table, clock, epoch, instant;
	struct uffd_checker_opts o = { .sz = sizeof(o) };
	struct uffd_checker *c;
	int i;

	if (!area || !state || state_len < STATE_HEAD || (uintptr_t)area % CHECKER_PAGE) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(&magic, b, 4);
	memcpy(&format, b + 4, 4);
	memcpy(&table, b + 8, 8);
	memcpy(&writers, b + 16, 4);
	memcpy(&o.seed, b + 20, 4);
	memcpy(&clock, b + 24, 8);
	memcpy(&epoch, b + 32, 8);
	memcpy(&instant, b + 40, 8);
	memcpy(&o.hot_bytes, b + 48, 8);
	memcpy(&o.rate, b + 56, 8);
	if (magic != STATE_MAGIC || format != STATE_FORMAT || table != len || !len ||
	    len % CHECKER_PAGE || writers < 1 || writers > len / CHECKER_PAGE ||
	    state_len != state_size((int)writers) || !epoch || instant > clock ||
	    o.hot_bytes % CHECKER_PAGE || !(o.rate >= 0.0 && o.rate < 1e12)) {
		errno = EINVAL;
		return NULL;
	}
	if (posix_memalign((void **)&c, CACHE_LINE, sizeof(*c))) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	o.bytes = len;
	o.writers = (int)writers;
	c->opts = o;
	c->len = len;
	c->npages = len / CHECKER_PAGE;
	c->nwriters = (int)writers;
	c->area = area;
	c->adopted = true;
	c->clock = clock;
	c->epoch = epoch;
	c->instant_clock = instant;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->parked_cond, NULL);
	pthread_cond_init(&c->resume_cond, NULL);
	if (alloc_writers(c)) {
		free_writers(c);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->parked_cond);
		pthread_cond_destroy(&c->resume_cond);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < c->nwriters; i++) {
		const uint8_t *p = b + STATE_HEAD + (size_t)STATE_PER_WRITER * i;

		memcpy(&c->writers[i].rng, p, 8);
		memcpy(&c->writers[i].writes, p + 8, 8);
		if (!c->writers[i].rng)		/* xorshift would stay at 0 */
			c->writers[i].rng = 1;
	}
	return c;
}

int uffd_checker_instant_versions(struct uffd_checker *c, uint64_t *versions, size_t npages)
{
	uint64_t epoch;
	size_t p;
	int ret;

	if (!c || !versions || npages != c->npages)
		return -EINVAL;
	ret = current_epoch(c, &epoch, NULL, 0);
	if (ret)
		return ret;
	for (p = 0; p < npages; p++)
		versions[p] = version_at_instant(c, p, epoch);
	return 0;
}

int uffd_checker_adopt_versions(struct uffd_checker *c, const uint64_t *versions, size_t npages,
				char *msg, size_t msglen)
{
	size_t p;
	int ret = 0;

	if (!c || !versions || npages != c->npages || !c->adopted)
		return -EINVAL;
	if (writers_running(c)) {
		if (msg && msglen)
			snprintf(msg, msglen, "the writers are running");
		return -EBUSY;
	}
	for (p = 0; p < c->npages && !ret; p++) {
		struct page_state *s = state_of(c, p);
		const uint64_t *w = (const uint64_t *)(c->area + p * CHECKER_PAGE);
		uint64_t origin = __atomic_load_n(&s->origin, __ATOMIC_RELAXED);

		if (origin == ORIGIN_BAD) {
			/* The first bad page found is described as found. */
			ret = report(msg, msglen, "%s", c->adopt_msg);
			break;
		}
		if (origin && origin - 1 != versions[p]) {
			ret = report(msg, msglen, "page %zu: version %llu when first written here, "
				     "the source had %llu", p, (unsigned long long)(origin - 1),
				     (unsigned long long)versions[p]);
			break;
		}
		/* Written here: the last write is what must be there (nothing
		 * older came over it); else the source's version. */
		ret = check_page(c, p, w, origin ? __atomic_load_n(&s->current, __ATOMIC_RELAXED) :
				 versions[p], msg, msglen);
		if (!ret && !origin)
			__atomic_store_n(&s->current, versions[p], __ATOMIC_RELAXED);
	}
	return ret;
}
