// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A program that zaps pages of a pager map itself - MADV_DONTNEED, or
 * MADV_FREE and then MADV_PAGEOUT (which discards a lazily freed page at
 * once), or an mremap(MREMAP_DONTUNMAP) that takes a page away and leaves
 * a hole - leaves the pager believing the page is mapped while the kernel
 * has a hole there.  Its next touch faults on a page the pager thought
 * resident: it must read the store as it is then (the program's changes
 * not yet written back went with the page, as anonymous memory's do),
 * never loop on the fault, never read zeros or the old copy.  A flush,
 * an evict or the unmap of such a page, or the clock hand taking it to
 * the shadow through a small buffer, must neither hang (copying out a
 * page that is not there faults, and the fault waits for the copy) nor
 * write anything over the store; a read-only map the same.  Zaps racing
 * with faults, fills and eviction never show a reader anything but the
 * store's words.  MADV_REMOVE is refused (EINVAL: a map is private
 * memory) and leaves the page as it was; MADV_PAGEOUT without swap
 * changes nothing.
 *
 * Each case runs in both modes (a servicing thread, and in-thread) in a
 * child of its own with a deadline, so a fault that loops or a copy that
 * waits for itself fails the case instead of hanging the suite; a case's
 * name as argument runs only it.  After each, the pager's invariants
 * hold (lib/pager-cases.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/pager-cases.h"

#define NPAGES		64
#define LEN		(NPAGES * PAGE)
#define SMALL_BUFFER	(16 * PAGE)	/* the eviction cases' */
#define SEED		7
#define NEW_SEED	8		/* the store's page after someone rewrote it */
#define DEADLINE_MS	20000

static uint64_t word_at(const char *a)
{
	return *(volatile const uint64_t *)a;
}

/*
 * Someone else writes the store's page pg (the map's copy is now old).
 * The pager's lock, taken before and after, orders the write for
 * ThreadSanitizer after its threads' last reads of the store and before
 * their next (they hold the lock around each), as the kernel's fault and
 * wake-up order them for the CPU.
 */
static void rewrite_store_page(struct t_pager_env *e, size_t pg)
{
	struct uffd_pager_stats st;
	size_t k;

	CHECK_OK(uffd_pager_stats(e->p, &st));
	for (k = 0; k < PAGE; k += 8)
		*(uint64_t *)(e->ts->data + pg * PAGE + k) = t_word(pg * PAGE + k, NEW_SEED);
	CHECK_OK(uffd_pager_stats(e->p, &st));
}

static void touch_read(struct t_pager_env *e, size_t pg)
{
	(void)word_at(e->map + pg * PAGE);
}

static void touch_write(struct t_pager_env *e, size_t pg, uint64_t v)
{
	*(volatile uint64_t *)(e->map + pg * PAGE + 64) = v;
}

/* A clean mapped page zapped: read again, from the store as it is now. */
static void dontneed_clean(struct t_pager_env *e)
{
	touch_read(e, 3);
	CHECK_EQ(t_reads(e->ts, 3), 1);
	rewrite_store_page(e, 3);
	CHECK_OK(madvise(e->map + 3 * PAGE, PAGE, MADV_DONTNEED));
	t_pager_check_page(e, 3, "page 3 after DONTNEED");
	CHECK_EQ(t_reads(e->ts, 3), 2);
	/* Written after, it is written back as written. */
	touch_write(e, 3, 0x1234);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 3), 1);
	CHECK_EQ(word_at(e->ts->data + 3 * PAGE + 64), 0x1234);
	t_pager_check_page(e, 3, "page 3 after the flush");
}

/* A written page zapped before its write-back: the write is gone, the
 * store's page is read again and nothing is written over it. */
static void dontneed_dirty(struct t_pager_env *e)
{
	touch_write(e, 5, 0xdead);
	CHECK_OK(madvise(e->map + 5 * PAGE, PAGE, MADV_DONTNEED));
	t_pager_check_page(e, 5, "page 5 after DONTNEED");
	CHECK_EQ(word_at(e->map + 5 * PAGE + 64), t_word(5 * PAGE + 64, SEED));
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 5), 0);
}

/* Zapped, then flushed before any touch. */
static void dontneed_dirty_then_flush(struct t_pager_env *e)
{
	touch_write(e, 6, 0xbeef);
	touch_read(e, 7);
	CHECK_OK(madvise(e->map + 6 * PAGE, 2 * PAGE, MADV_DONTNEED));
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 6), 0);
	CHECK_EQ(word_at(e->ts->data + 6 * PAGE + 64), t_word(6 * PAGE + 64, SEED));
	rewrite_store_page(e, 7);
	t_pager_check_page(e, 6, "page 6 after DONTNEED and flush");
	t_pager_check_page(e, 7, "page 7 after DONTNEED and flush");
}

/* Zapped, then evicted before any touch. */
static void dontneed_then_evict(struct t_pager_env *e)
{
	touch_write(e, 2, 0xfeed);
	touch_read(e, 9);
	CHECK_OK(madvise(e->map + 2 * PAGE, PAGE, MADV_DONTNEED));
	CHECK_OK(madvise(e->map + 9 * PAGE, PAGE, MADV_DONTNEED));
	CHECK_OK(uffd_pager_evict(e->p, e->map, LEN));
	CHECK_EQ(t_writes(e->ts, 2), 0);
	rewrite_store_page(e, 9);
	t_pager_check_page(e, 2, "page 2 after DONTNEED and evict");
	t_pager_check_page(e, 9, "page 9 after DONTNEED and evict");
}

/* Zapped, then unmapped: the written page zapped is not written back,
 * the other is. */
static void dontneed_then_unmap(struct t_pager_env *e)
{
	touch_write(e, 4, 0xf00d);
	touch_write(e, 8, 0xcafe);
	CHECK_OK(madvise(e->map + 4 * PAGE, PAGE, MADV_DONTNEED));
	CHECK_OK(uffd_pager_unmap(e->p, e->map));
	e->map = NULL;
	CHECK_EQ(t_writes(e->ts, 4), 0);
	CHECK_EQ(word_at(e->ts->data + 4 * PAGE + 64), t_word(4 * PAGE + 64, SEED));
	CHECK_EQ(t_writes(e->ts, 8), 1);
	CHECK_EQ(word_at(e->ts->data + 8 * PAGE + 64), 0xcafe);
}

/* The whole map zapped at once, some pages mapped and some not. */
static void dontneed_whole_map(struct t_pager_env *e)
{
	size_t i;

	for (i = 0; i < NPAGES; i += 2)
		touch_read(e, i);
	touch_write(e, 4, 0x77);
	CHECK_OK(madvise(e->map, LEN, MADV_DONTNEED));
	for (i = 0; i < NPAGES; i += 3)
		rewrite_store_page(e, i);
	for (i = 0; i < NPAGES; i++)
		t_pager_check_page(e, i, "a page after DONTNEED of the map");
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/* Is page pg of the map there (pagemap's present bit)? */
static bool present(const struct t_pager_env *e, size_t pg)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		SKIP("/proc/self/pagemap: %s", strerror(errno));
	CHECK_EQ(pread(fd, &entry, 8, (uintptr_t)(e->map + pg * PAGE) / PAGE * 8), 8);
	close(fd);
	return entry >> 63;
}

/*
 * MADV_FREE, then MADV_PAGEOUT: reclaim drops a lazily freed page at once,
 * clean or written, and leaves a hole as DONTNEED does.  (It takes only
 * pages on the LRU lists: the case runs on one CPU, so the pager's fills
 * are not left in another CPU's batch.  A page still there after is as it
 * was.)
 */
static void free_then_pageout(struct t_pager_env *e)
{
	touch_read(e, 10);
	touch_write(e, 11, 0x99);
	CHECK_OK(madvise(e->map + 10 * PAGE, 2 * PAGE, MADV_FREE));
	CHECK_OK(madvise(e->map + 10 * PAGE, 2 * PAGE, MADV_PAGEOUT));
	if (present(e, 10) || present(e, 11)) {
		fprintf(stderr, "note: MADV_PAGEOUT left the pages: they are as they were\n");
		CHECK_EQ(word_at(e->map + 10 * PAGE + 64), t_word(10 * PAGE + 64, SEED));
		CHECK_EQ(word_at(e->map + 11 * PAGE + 64), 0x99);
		return;
	}
	rewrite_store_page(e, 10);
	t_pager_check_page(e, 10, "page 10 after FREE and PAGEOUT");
	t_pager_check_page(e, 11, "page 11 after FREE and PAGEOUT");
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 11), 0);
}

/* Refused on private memory, and nothing changes. */
static void remove_refused(struct t_pager_env *e)
{
	touch_write(e, 12, 0x4242);
	errno = 0;
	CHECK_EQ(madvise(e->map + 12 * PAGE, PAGE, MADV_REMOVE), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(word_at(e->map + 12 * PAGE + 64), 0x4242);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 12), 1);
	CHECK_EQ(word_at(e->ts->data + 12 * PAGE + 64), 0x4242);
	t_pager_check_page(e, 12, "page 12 after MADV_REMOVE");
}

/* Without swap, reclaim can not take an anonymous page: nothing changes
 * (with swap the page would come back from it, as it was). */
static void pageout_keeps(struct t_pager_env *e)
{
	touch_write(e, 13, 0x5151);
	touch_read(e, 14);
	CHECK_OK(madvise(e->map + 13 * PAGE, 2 * PAGE, MADV_PAGEOUT));
	CHECK_EQ(word_at(e->map + 13 * PAGE + 64), 0x5151);
	t_pager_check_page(e, 14, "page 14 after PAGEOUT");
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 13), 1);
	CHECK_EQ(word_at(e->ts->data + 13 * PAGE + 64), 0x5151);
}

/* mremap(MREMAP_DONTUNMAP) moves the page out and leaves the range
 * mapped, empty: the moved copy is the program's, the hole is read
 * again. */
static void mremap_dontunmap(struct t_pager_env *e)
{
	char *moved;

	touch_write(e, 1, 0x6161);
	moved = mremap(e->map + PAGE, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (moved == MAP_FAILED)
		SKIP("mremap(MREMAP_DONTUNMAP): %s", strerror(errno));
	CHECK_EQ(word_at(moved + 64), 0x6161);
	rewrite_store_page(e, 1);
	t_pager_check_page(e, 1, "page 1 after mremap(DONTUNMAP)");
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_writes(e->ts, 1), 0);
	munmap(moved, PAGE);
}

/*
 * Pages zapped while ACTIVE, then pushed out by others through a buffer of
 * 16 pages: the clock hand reaches them, finds them gone as it copies them
 * to the shadow, and forgets them - nothing written back, nothing waiting
 * for itself - and they are read again when touched.
 */
static void dontneed_before_deactivation(struct t_pager_env *e)
{
	struct uffd_pager_stats st;
	size_t i;

	for (i = 0; i < 8; i++)
		if (i % 2)
			touch_read(e, i);
		else
			touch_write(e, i, 0xab00 + i);
	CHECK_OK(madvise(e->map, 8 * PAGE, MADV_DONTNEED));
	for (i = 0; i < 8; i++)
		rewrite_store_page(e, i);
	for (i = 8; i < NPAGES; i++)
		touch_read(e, i);
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK(st.resident_peak_bytes <= SMALL_BUFFER);
	for (i = 0; i < 8; i++)
		CHECK_EQ(t_reads(e->ts, i), 1);	/* gone, not read again yet */
	for (i = 0; i < NPAGES; i++)
		t_pager_check_page(e, i, "a page after DONTNEED and eviction");
	for (i = 0; i < 8; i++)
		CHECK_EQ(t_reads(e->ts, i), 2);
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	CHECK_EQ(t_store_writes(e->ts), 0);
}

/*
 * A read-only map the same: its pages zapped while mapped are read again,
 * and the hand still moves the others to the shadow (a read-only map is
 * asked whether its pages are still its own as a writable one is).
 */
static void dontneed_read_only(struct t_pager_env *e)
{
	struct uffd_pager_stats st;
	size_t i;

	for (i = 0; i < 8; i++)
		touch_read(e, i);
	CHECK_OK(madvise(e->map, 4 * PAGE, MADV_DONTNEED));
	for (i = 0; i < 4; i++)
		rewrite_store_page(e, i);
	for (i = 8; i < NPAGES; i++)
		touch_read(e, i);
	for (i = 0; i < NPAGES; i++)
		t_pager_check_page(e, i, "a page of a read-only map after DONTNEED");
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK(st.deactivations > 0);
	CHECK(st.resident_peak_bytes <= SMALL_BUFFER);
}

/*
 * Two threads read random pages of the map (every word checked against
 * the store) and write words back as the store has them, through a buffer
 * of 16 pages, while a third zaps random runs of pages: whatever the zaps
 * meet - a page mapped, being filled, deactivated, written back - every
 * read is the store's, and the store ends as it began.
 */
#define STRESS_TOUCHES	20000
#define STRESS_ZAPS	4000

struct stress {
	struct t_pager_env *e;
	unsigned n;
	int *go, *done;
	unsigned long bad;
};

static uint64_t next_rnd(uint64_t *r)
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return *r;
}

static void *stress_touch(void *arg)
{
	struct stress *s = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL * (s->n + 1);
	int i;
	size_t k;

	while (!__atomic_load_n(s->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (i = 0; i < STRESS_TOUCHES; i++) {
		size_t pg = next_rnd(&rnd) % NPAGES;
		volatile uint64_t *w = (volatile uint64_t *)(s->e->map + pg * PAGE);

		/* (Atomic: the other thread may read the word as it is
		 * written, the same value.) */
		if (next_rnd(&rnd) % 4 == 0) {
			__atomic_store_n(&w[8], t_word(pg * PAGE + 64, SEED), __ATOMIC_RELAXED);
			continue;
		}
		for (k = 0; k < PAGE / 8; k++)
			if (__atomic_load_n(&w[k], __ATOMIC_RELAXED) !=
			    t_word(pg * PAGE + k * 8, SEED))
				s->bad++;
	}
	__atomic_fetch_add(s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *stress_zap(void *arg)
{
	struct stress *s = arg;
	uint64_t rnd = 0x2545f4914f6cdd1dULL;
	int i;

	while (!__atomic_load_n(s->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (i = 0; i < STRESS_ZAPS && __atomic_load_n(s->done, __ATOMIC_ACQUIRE) < 2; i++) {
		size_t pg = next_rnd(&rnd) % NPAGES, n = 1 + next_rnd(&rnd) % 4;

		if (pg + n > NPAGES)
			n = NPAGES - pg;
		if (madvise(s->e->map + pg * PAGE, n * PAGE, MADV_DONTNEED))
			s->bad++;
		if (i % 8 == 0)
			sched_yield();
	}
	return NULL;
}

static void dontneed_under_eviction(struct t_pager_env *e)
{
	struct stress s[3];
	pthread_t t[3];
	int i, go = 0, done = 0;
	size_t pg;

	for (i = 0; i < 3; i++) {
		s[i] = (struct stress){ .e = e, .n = i, .go = &go, .done = &done };
		CHECK_OK(-pthread_create(&t[i], NULL, i < 2 ? stress_touch : stress_zap, &s[i]));
	}
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 3; i++) {
		CHECK_OK(-pthread_join(t[i], NULL));
		CHECK_EQ(s[i].bad, 0);
	}
	CHECK_OK(uffd_pager_flush(e->p, e->map, 0));
	for (pg = 0; pg < NPAGES; pg++)
		t_pager_check_page(e, pg, "a page after the zaps");
	for (pg = 0; pg < LEN; pg += 8)
		if (*(uint64_t *)(e->ts->data + pg) != t_word(pg, SEED))
			FAIL("the store's word at %zu changed", (size_t)pg);
}

/*
 * A sequential scan, read ahead through a buffer of 256 pages, zapping
 * pages a little ahead of itself now and then: pages read ahead and not
 * touched yet (mapped, to be dropped unused; or parked in the shadow),
 * pages being read, pages not read yet.  The scan reads the store.
 */
#define STREAM_PAGES	2048
#define STREAM_BUFFER	(256 * PAGE)

static void dontneed_ahead_of_a_stream(struct t_pager_env *e)
{
	struct uffd_pager_stats st;
	size_t pg;

	for (pg = 0; pg < e->npages; pg++) {
		if (pg % 64 == 16 && pg + 40 < e->npages)
			CHECK_OK(madvise(e->map + (pg + 8) * PAGE, 32 * PAGE, MADV_DONTNEED));
		t_pager_check_page(e, pg, "a page of the scan");
	}
	CHECK_OK(uffd_pager_stats(e->p, &st));
	CHECK(st.read_ahead > 0);
	CHECK(st.resident_peak_bytes <= STREAM_BUFFER);
}

int main(int argc, char **argv)
{
	static const struct t_pager_case cases[] = {
		T_PAGER_CASE(dontneed_clean),
		T_PAGER_CASE(dontneed_dirty),
		T_PAGER_CASE(dontneed_dirty_then_flush),
		T_PAGER_CASE(dontneed_then_evict),
		T_PAGER_CASE(dontneed_then_unmap),
		T_PAGER_CASE(dontneed_whole_map),
		T_PAGER_CASE(free_then_pageout, .one_cpu = true),
		T_PAGER_CASE(remove_refused),
		T_PAGER_CASE(pageout_keeps),
		T_PAGER_CASE(mremap_dontunmap),
		T_PAGER_CASE(dontneed_before_deactivation, .buffer = SMALL_BUFFER),
		T_PAGER_CASE(dontneed_under_eviction, .buffer = SMALL_BUFFER),
		T_PAGER_CASE(dontneed_read_only, .buffer = SMALL_BUFFER, .read_only = true),
		T_PAGER_CASE(dontneed_ahead_of_a_stream, .npages = STREAM_PAGES,
			     .buffer = STREAM_BUFFER, .read_ahead = true),
	};

	return t_pager_run_cases(cases, sizeof(cases) / sizeof(cases[0]), NPAGES, SEED,
				 DEADLINE_MS, argc > 1 ? argv[1] : NULL);
}
