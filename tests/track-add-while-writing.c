/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Adding ranges to a tracker while another thread writes to a range it
 * already tracks loses no write: 4 workers write each of 8192 pages of a
 * tracked range once while the main thread keeps adding 1024-page ranges
 * (each add grows the tracker's page bitmaps; up to 900 adds, under the
 * MPROTECT backend's 1024 ranges); once the worker is done, a collect
 * reports exactly the 8192 pages, as one range, and nothing from the
 * ranges added meanwhile (never written).  Every backend, ROUNDS times
 * (a lost write is a race: each round is another chance to see it); with
 * SYNC_WP the writes are recorded by the tracker's thread, with SYNC_WP
 * in-thread and MPROTECT by the workers' signal handlers, concurrently
 * with the adds (spread over the writes by a 100 us pause after each).
 * In-thread, each add moves the bitmaps to new storage while the handlers
 * may be setting bits in the old.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define NR_WRITTEN	8192
#define ADD_PAGES	1024
#define MAX_ADDS	900
#define ROUNDS		4

#define WRITERS		4	/* keep the tracker's thread busy */
#define ADD_PAUSE_US	100	/* spread the adds over the writes */

static char *area;
static int writers_done;

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

/* Not instrumented: TSan cannot see that the write waited for the fault. */
__attribute__((no_sanitize("thread"), noinline))
static void write_byte(char *p)
{
	*(volatile char *)p = 'w';
}

/* Writer n writes pages n, n + WRITERS, ... */
static void *writer(void *arg)
{
	size_t i;

	for (i = (uintptr_t)arg; i < NR_WRITTEN; i += WRITERS)
		write_byte(area + i * PAGE + 11);
	__atomic_fetch_add(&writers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void run_backend(enum uffd_track_backend b, bool in_thread, int round)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .in_thread = in_thread);
	const char *be = in_thread ? "sync-wp in-thread" : uffd_track_backend_name(b);
	struct uffd_track_result res = { 0 };
	struct uffd_tracker *t;
	size_t pool_len = (size_t)MAX_ADDS * ADD_PAGES * PAGE;
	char *pool;
	pthread_t w[WRITERS];
	int adds = 0, i;

	t = uffd_track_new(&o);
	if (!t) {
		if (errno == EOPNOTSUPP && b == UFFD_TRACK_SOFT_DIRTY) {
			if (!round)
				fprintf(stderr, "note: %s not available here (EOPNOTSUPP), skipped\n",
					be);
			return;
		}
		FAIL("%s: uffd_track_new: errno %d (%s)", be, errno, strerrorname_np(errno));
	}
	area = t_map_anon(NR_WRITTEN * PAGE);
	for (i = 0; i < NR_WRITTEN; i++)
		area[i * PAGE] = 1;
	pool = mmap(NULL, pool_len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(pool != MAP_FAILED);
	CHECK_OK(uffd_track_add(t, area, NR_WRITTEN * PAGE));

	__atomic_store_n(&writers_done, 0, __ATOMIC_RELEASE);
	for (i = 0; i < WRITERS; i++)
		CHECK_EQ(pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i), 0);
	while (adds < MAX_ADDS &&
	       (__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) < WRITERS || adds < 64)) {
		CHECK_OK(uffd_track_add(t, pool + (size_t)adds * ADD_PAGES * PAGE,
					ADD_PAGES * PAGE));
		adds++;
		usleep(ADD_PAUSE_US);
	}
	for (i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	CHECK_EQ(uffd_track_pages(t), NR_WRITTEN + (size_t)adds * ADD_PAGES);

	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	if (res.nranges != 1 || res.pages != NR_WRITTEN)
		FAIL("%s: %zu ranges, %" PRIu64 " pages reported after %d adds; want 1 range of %d"
		     " pages", be, res.nranges, res.pages, adds, NR_WRITTEN);
	CHECK_EQ(res.ranges[0].start, (uintptr_t)area);
	CHECK_EQ(res.ranges[0].end, (uintptr_t)(area + NR_WRITTEN * PAGE));
	uffd_track_result_free(&res);
	fprintf(stderr, "%s round %d: %d ranges added during the writes, no write lost\n", be,
		round, adds);
	uffd_track_free(t);
	munmap(pool, pool_len);
	munmap(area, NR_WRITTEN * PAGE);
}

int main(void)
{
	static const enum uffd_track_backend backends[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP, UFFD_TRACK_SOFT_DIRTY,
		UFFD_TRACK_MPROTECT,
	};
	bool in_thread_ok = t_in_thread_ok();
	size_t i;
	int round;

	signal(SIGALRM, on_timeout);
	alarm(20);
	for (round = 0; round < ROUNDS; round++) {
		for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
			run_backend(backends[i], false, round);
		if (in_thread_ok)
			run_backend(UFFD_TRACK_SYNC_WP, true, round);
	}
	return T_EXIT_PASS;
}
