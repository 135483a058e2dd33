/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stress: fork, mremap, MADV_DONTNEED and munmap race against every
 * tracking backend and against a live snapshot, and the answers stay
 * exact (issue 15, "Fuzzing, as a habit").
 *
 * Trackers (WP_ASYNC, SYNC_WP, MPROTECT; SOFT_DIRTY where the kernel has
 * it - not here - and skipped otherwise).  A tracked range of 256 pages in
 * four zones of 64, answered as a bitmap (a page keeps its bit when
 * mremap moves it):
 *   W  written by the main thread every round;
 *   D  written every round too, and DONTNEEDed page by page all the time;
 *   R  never written, moved from place to place by mremap;
 *   U  never written, unmapped page by page, fresh memory mapped into each
 *      hole and written there;
 * while a thread forks children that write to W and D (their own copies)
 * and exit.  Each round the main thread writes W and D and collects with
 * REARM: the exact answer is W and D, every page of both and nothing else
 * (a write to a page zapped behind the re-arm must be seen, a move or an
 * unmap must not look like a write, a child's write is not the parent's).
 * MPROTECT follows no event: it gets the DONTNEEDs and the forks only.
 * 0.7 s per backend.
 *
 * Snapshot.  Two regions: a checker table (two writers) and a 24 MiB area
 * whose pages each hold a pattern of their own and that nothing writes.
 * Once the instant has passed (the resume callback), a thread DONTNEEDs
 * pages of the area, unmaps a piece, moves another away with mremap, and
 * forks a child that writes to both regions.  The answer is one of two:
 * uffd_snap_wait() returns 0 and the image is the table at the instant
 * and every page of the area as it was (unmapped, moved and DONTNEEDed
 * ones included), or it returns -EFAULT and there is no file.  8 rounds:
 * the changes made at once in the half of the area the writer thread has
 * not reached (-EFAULT, mostly), or in the half it has passed (an image,
 * mostly).
 */
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>
#include <uffd/track.h>

#include "lib/checker-pause.h"
#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/snap-mm.h"

#define ZONE		64
#define NPAGES		(4 * ZONE)
#define W0		0
#define D0		ZONE
#define R0		(2 * ZONE)
#define U0		(3 * ZONE)
#define TRACK_MS	700

static int now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* ---- trackers ---------------------------------------------------------- */

struct chaos {
	char *area;		/* the tracked range (R moves, U goes) */
	bool follows;		/* the backend follows mremap and munmap */
	int stop;		/* atomic */
	uint64_t dontneeds, moves, unmaps, forks;
};

static void *dontneed_main(void *arg)
{
	struct chaos *c = arg;
	unsigned i = 0;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		if (madvise(c->area + (D0 + i++ % ZONE) * PAGE, PAGE, MADV_DONTNEED))
			FAIL("madvise: %s", strerror(errno));
		if (++c->dontneeds % 16 == 0)
			sched_yield();
	}
	return NULL;
}

/* mremap R to a new place (a reservation of ours: the place it leaves may
 * be taken by any mapping, the library's own included); unmap U page by
 * page, mapping fresh memory (written) into each hole. */
static void *move_unmap_main(void *arg)
{
	struct chaos *c = arg;
	char *r = c->area + R0 * PAGE;
	int u = 0;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		char *to = mmap(NULL, ZONE * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (to == MAP_FAILED)
			FAIL("mmap: %s", strerror(errno));
		if (mremap(r, ZONE * PAGE, ZONE * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
			FAIL("mremap: %s", strerror(errno));
		r = to;
		c->moves++;
		if (u < ZONE) {
			char *p = c->area + (U0 + u++) * PAGE;

			if (munmap(p, PAGE))
				FAIL("munmap: %s", strerror(errno));
			p = mmap(p, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
				 MAP_FIXED_NOREPLACE, -1, 0);
			if (p != MAP_FAILED)	/* else something else took the hole */
				memset(p, 0x5a, PAGE);
			c->unmaps++;
		}
		/* A few thousand moves a second: each one's event holds up
		 * every UFFDIO_WRITEPROTECT meanwhile (-EAGAIN). */
		usleep(200);
	}
	return NULL;
}

static void *fork_main(void *arg)
{
	struct chaos *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		pid_t pid = fork();
		int i;

		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0) {
			for (i = W0; i < R0; i++)
				((volatile char *)c->area)[i * PAGE + 9] = 7;
			_exit(0);
		}
		if (t_wait_child(pid, 5000))
			FAIL("a forked child failed");
		c->forks++;
	}
	return NULL;
}

static int track_backend(enum uffd_track_backend b)
{
	const char *be = uffd_track_backend_name(b);
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .no_thp = true);
	uint64_t bm[NPAGES / 64], pages, rounds = 0;
	struct chaos c = { 0 };
	struct uffd_tracker *t;
	pthread_t th[3];
	int nth = 0, i, end;

	t = uffd_track_new(&o);
	if (!t) {
		if (errno == EOPNOTSUPP) {
			fprintf(stderr, "%-22s not available here: skipped\n", be);
			return T_EXIT_SKIP;
		}
		FAIL("%s: uffd_track_new: %s", be, strerror(errno));
	}
	c.follows = b != UFFD_TRACK_MPROTECT && b != UFFD_TRACK_SOFT_DIRTY;
	c.area = t_map_anon(NPAGES * PAGE);
	memset(c.area, 1, NPAGES * PAGE);
	CHECK_OK(uffd_track_add(t, c.area, NPAGES * PAGE));
	CHECK_OK(pthread_create(&th[nth++], NULL, dontneed_main, &c));
	CHECK_OK(pthread_create(&th[nth++], NULL, fork_main, &c));
	if (c.follows)
		CHECK_OK(pthread_create(&th[nth++], NULL, move_unmap_main, &c));
	end = now_ms() + TRACK_MS;
	do {
		int ret;

		for (i = W0; i < R0; i++)
			((volatile char *)c.area)[i * PAGE + 100] = (char)rounds;
		ret = uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, bm, NPAGES, &pages);
		if (ret)
			FAIL("%s round %" PRIu64 ": collect: %d (%s)", be, rounds, ret,
			     t_errname(ret));
		for (i = 0; i < NPAGES; i++) {
			bool got = bm[i / 64] >> (i % 64) & 1, want = i < R0;

			if (got != want)
				FAIL("%s round %" PRIu64 ": page %d (zone %c) %s", be, rounds, i,
				     "WDRU"[i / ZONE], got ? "reported, never written" :
				     "written, not reported");
		}
		rounds++;
	} while (now_ms() < end);
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < nth; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	fprintf(stderr, "%-22s %" PRIu64 " rounds exact; %" PRIu64 " DONTNEEDs, %" PRIu64
		" forks, %" PRIu64 " moves, %" PRIu64 " unmaps\n", be, rounds, c.dontneeds,
		c.forks, c.moves, c.unmaps);
	uffd_track_free(t);
	return T_EXIT_PASS;
}

/* ---- snapshot ---------------------------------------------------------- */

#define TABLE		(8UL << 20)
#define AREA_PAGES	6144	/* 24 MiB */
#define SEED		41

struct snap_chaos {
	struct uffd_checker *checker;
	char *area;
	bool behind;		/* wait for the writer to pass the first half */
	int go;			/* atomic: the instant has passed */
	struct uffd_snap *snap;	/* atomic: set once begin returned */
	pthread_t thread;
};

static void resume_and_go(void *arg)
{
	struct snap_chaos *sc = arg;

	uffd_checker_resume_cb(sc->checker);
	__atomic_store_n(&sc->go, 1, __ATOMIC_RELEASE);
}

static void pause_cb(void *arg)
{
	uffd_checker_pause_cb(((struct snap_chaos *)arg)->checker);
}

/* Wait (5 s at most) until the writer has streamed the table and the
 * first half of the area, or the snapshot has ended. */
static void wait_for_writer(struct snap_chaos *sc)
{
	uint64_t want = TABLE / PAGE + AREA_PAGES / 2;
	struct uffd_snap_stats st;
	struct uffd_snap *s;
	int end = now_ms() + 5000;

	while (!(s = __atomic_load_n(&sc->snap, __ATOMIC_ACQUIRE)))
		sched_yield();
	do {
		CHECK_OK(uffd_snap_stats(s, &st));
		if (st.done || st.written_background + st.copied_before_write + st.sync_writes +
			       st.zero_pages >= want)
			return;
		t_sleep_ms(1);
	} while (now_ms() < end);
}

/*
 * After the instant: DONTNEED single pages and a run, fork a child that
 * writes to both regions, munmap a piece and mremap another away - in the
 * second half of the area (ahead of the writer), or, once the writer has
 * passed it, in the first half.
 */
static void *snap_chaos_main(void *arg)
{
	struct snap_chaos *sc = arg;
	size_t base = sc->behind ? 0 : AREA_PAGES / 2;
	char *a = sc->area + base * PAGE, *to;
	pid_t pid;
	int i;

	while (!__atomic_load_n(&sc->go, __ATOMIC_ACQUIRE))
		sched_yield();
	if (sc->behind)
		wait_for_writer(sc);
	for (i = 0; i < 16; i++)
		CHECK_EQ(madvise(a + (100 + i * 97) * PAGE, PAGE, MADV_DONTNEED), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		memset(a, 0x33, 64 * PAGE);
		memset(uffd_checker_area(sc->checker), 0x44, 64 * PAGE);
		_exit(0);
	}
	CHECK_EQ(t_wait_child(pid, 5000), 0);
	CHECK_EQ(munmap(a + 1000 * PAGE, 256 * PAGE), 0);
	to = mremap(a + 2000 * PAGE, 512 * PAGE, 512 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		    mmap(NULL, 512 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK(to != MAP_FAILED);
	CHECK(t_is_filled(to + 7 * PAGE, PAGE, SEED + base + 2007));	/* moved intact */
	CHECK_EQ(madvise(a + 2600 * PAGE, 256 * PAGE, MADV_DONTNEED), 0);
	CHECK(t_is_zero(a + 2600 * PAGE, 256 * PAGE));
	munmap(to, 512 * PAGE);
	return NULL;
}

static bool snapshot_round(const char *path, bool behind)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 5, .fill = 0.7);
	struct snap_chaos sc = { .behind = behind };
	struct uffd_image_region regs[2];
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = regs, .nregions = 2,
		  .buffer_bytes = 1 << 20, .pause = pause_cb,
		  .resume = resume_and_go, .arg = &sc);
	struct uffd_snap *s;
	char msg[256];
	bool saved;
	int ret;

	sc.checker = t_checker_table(&co, UFFD_IMAGE_ANON, &regs[0]);
	sc.area = t_map_anon(AREA_PAGES * PAGE);
	t_snap_fill(sc.area, AREA_PAGES, SEED);
	regs[1] = (struct uffd_image_region){ (uintptr_t)sc.area, AREA_PAGES * PAGE, PAGE,
					      UFFD_IMAGE_ANON };
	CHECK_OK(pthread_create(&sc.thread, NULL, snap_chaos_main, &sc));
	CHECK_OK(uffd_checker_start(sc.checker));
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	__atomic_store_n(&sc.snap, s, __ATOMIC_RELEASE);
	ret = uffd_snap_wait(s, 30000);
	CHECK_OK(pthread_join(sc.thread, NULL));
	uffd_checker_stop(sc.checker);
	uffd_snap_free(s);
	if (!ret) {
		struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);

		if (!chain)
			FAIL("uffd_image_chain_open: %s", strerror(errno));
		if (uffd_checker_verify_image(sc.checker, chain, 0, msg, sizeof(msg)))
			FAIL("the table in the image is not the instant: %s", msg);
		uffd_image_chain_close(chain);
	}
	saved = t_snap_outcome(path, ret, 1, AREA_PAGES, SEED);
	uffd_checker_free(sc.checker);
	return saved;
}

static int track_child(void *b)
{
	return track_backend(*(const enum uffd_track_backend *)b);
}

static int snapshot_child(const void *dir, int k)
{
	return snapshot_round(t_img_path(0, dir, "stress.img"), k % 2) ? T_SNAP_SAVED : T_SNAP_LOST;
}

int main(void)
{
	static const enum uffd_track_backend backends[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP, UFFD_TRACK_MPROTECT,
		UFFD_TRACK_SOFT_DIRTY,
	};
	int failed, ran, saved = 0, lost = 0;
	const char *dir;

	failed = t_run_each_in_child(track_child, backends, sizeof(backends[0]),
				     sizeof(backends) / sizeof(backends[0]), 20000, &ran);
	if (failed)
		FAIL("%d tracking backend(s) failed (see above)", failed);
	if (uffd_feature_supported(UFFD_FEAT_REG_WP_ANON) != 1) {
		fprintf(stderr, "snapshot: no write-protection here: skipped\n");
		return ran ? T_EXIT_PASS : T_EXIT_SKIP;
	}
	dir = t_img_dir();
	t_snap_rounds("snapshot", snapshot_child, dir, 8, 40000, &saved, &lost);
	fprintf(stderr, "snapshot: image exactly the instant %d times, -EFAULT %d times\n",
		saved, lost);
	return T_EXIT_PASS;
}
