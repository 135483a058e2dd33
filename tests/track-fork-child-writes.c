/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A child of fork() may write tracked memory, whatever the tracker was
 * doing at the fork, and sees it as plain memory (issue 15, item 4: with
 * the MPROTECT backend the child spun for ever on a lock a collect held
 * at the fork, deaf to SIGTERM, and the parent's waitpid never returned).
 *
 * Per backend, while one thread writes to the tracked range (faults) and
 * another collects with REARM in a loop (so locks are held at most
 * forks), the main thread forks 150 times.  Each child writes every
 * tracked page and reads its writes back, checks that its inherited
 * tracker answers -ECHILD (collect, reset, add, stats) and that freeing it
 * is harmless, and exits 0; it must do so within 5 s.  Then, the threads
 * stopped, the parent's tracking is exact: a collect after writes to
 * pages 3 and 40 reports exactly those, none of the children's writes
 * reached the parent's memory, and its own last writes are there.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define NPAGES	64
#define FORKS	150

static char *area;
static struct uffd_tracker *tracker;
static int stop;		/* atomic */
static uint64_t parent_rounds;	/* atomic: the writer's passes */

static void *writer_main(void *arg)
{
	uint64_t round = 0;
	int i;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		round++;
		for (i = 0; i < NPAGES; i++)
			((volatile uint64_t *)(area + i * PAGE))[1] = round;
		__atomic_store_n(&parent_rounds, round, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *collector_main(void *arg)
{
	struct uffd_track_result res = { 0 };
	int ret;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		ret = uffd_track_collect(tracker, UFFD_TRACK_REARM, &res);
		if (ret)
			FAIL("collect in the parent: %d (%s)", ret, t_errname(ret));
	}
	uffd_track_result_free(&res);
	return NULL;
}

static int child_main(int n)
{
	struct uffd_track_result res = { 0 };
	struct uffd_track_stats st;
	uint64_t bm[1];
	int i;

	for (i = 0; i < NPAGES; i++)
		((volatile uint64_t *)(area + i * PAGE))[2] = 1000 + n;
	for (i = 0; i < NPAGES; i++)
		if (((volatile uint64_t *)(area + i * PAGE))[2] != 1000 + (uint64_t)n)
			return 2;
	if (uffd_track_collect(tracker, UFFD_TRACK_REARM, &res) != -ECHILD ||
	    uffd_track_collect_bitmap(tracker, 0, bm, NPAGES, NULL) != -ECHILD ||
	    uffd_track_reset(tracker) != -ECHILD || uffd_track_stats(tracker, &st) != -ECHILD ||
	    uffd_track_add(tracker, area, PAGE) != -ECHILD)
		return 3;
	uffd_track_free(tracker);
	/* Still plain memory after the free. */
	((volatile char *)area)[7] = 1;
	return 0;
}

/* Re-arm whatever the writer left written. */
static void drain(void)
{
	struct uffd_track_result res = { 0 };

	CHECK_OK(uffd_track_collect(tracker, UFFD_TRACK_REARM, &res));
	uffd_track_result_free(&res);
}

static void expect_exactly(const int *pages, int n)
{
	struct uffd_track_result res = { 0 };
	int i;

	CHECK_OK(uffd_track_collect(tracker, UFFD_TRACK_REARM, &res));
	if (res.pages != (uint64_t)n || res.nranges != (size_t)n)
		FAIL("%" PRIu64 " pages in %zu ranges reported, want %d", res.pages,
		     res.nranges, n);
	for (i = 0; i < n; i++)
		if (res.ranges[i].start != (uintptr_t)(area + pages[i] * PAGE) ||
		    res.ranges[i].end != (uintptr_t)(area + (pages[i] + 1) * PAGE))
			FAIL("range %d is not page %d", i, pages[i]);
	uffd_track_result_free(&res);
}

static int run(enum uffd_track_backend b)
{
	const char *be = uffd_track_backend_name(b);
	UFFD_OPTS(uffd_track_opts, o, .backend = b);
	static const int written[] = { 3, 40 };
	pthread_t wr, co;
	uint64_t last;
	int i;

	tracker = uffd_track_new(&o);
	if (!tracker) {
		if (errno == EOPNOTSUPP) {
			fprintf(stderr, "%-22s not available here\n", be);
			return T_EXIT_SKIP;
		}
		FAIL("%s: uffd_track_new: %s", be, strerror(errno));
	}
	area = t_map_anon(NPAGES * PAGE);
	memset(area, 0, NPAGES * PAGE);
	CHECK_OK(uffd_track_add(tracker, area, NPAGES * PAGE));
	CHECK_OK(pthread_create(&wr, NULL, writer_main, NULL));
	CHECK_OK(pthread_create(&co, NULL, collector_main, NULL));
	for (i = 0; i < FORKS; i++) {
		pid_t pid = fork();
		int rc;

		CHECK(pid >= 0);
		if (pid == 0)
			_exit(child_main(i));
		rc = t_wait_child(pid, 5000);
		if (rc)
			FAIL("%s: child %d exited %d", be, i, rc);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	CHECK_OK(pthread_join(wr, NULL));
	CHECK_OK(pthread_join(co, NULL));
	last = __atomic_load_n(&parent_rounds, __ATOMIC_RELAXED);
	for (i = 0; i < NPAGES; i++) {
		CHECK_EQ(((uint64_t *)(area + i * PAGE))[1], last);
		CHECK_EQ(((uint64_t *)(area + i * PAGE))[2], 0);
	}
	CHECK(t_is_zero(area, 8));
	drain();
	for (i = 0; i < 2; i++)
		((volatile char *)area)[written[i] * PAGE + 100] = 1;
	expect_exactly(written, 2);
	fprintf(stderr, "%-22s %d children wrote every tracked page; %" PRIu64
		" passes of the parent's writer\n", be, FORKS, last);
	uffd_track_free(tracker);
	return T_EXIT_PASS;
}

static int run_backend(void *b)
{
	return run(*(const enum uffd_track_backend *)b);
}

int main(void)
{
	static const enum uffd_track_backend backends[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP, UFFD_TRACK_MPROTECT,
	};
	int failed, ran;

	failed = t_run_each_in_child(run_backend, backends, sizeof(backends[0]),
				     sizeof(backends) / sizeof(backends[0]), 25000, &ran);
	if (failed)
		FAIL("%d backend(s) failed (see above)", failed);
	if (!ran)
		SKIP("no tracking backend here");
	return T_EXIT_PASS;
}
