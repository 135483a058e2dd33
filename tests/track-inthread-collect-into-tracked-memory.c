// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * SYNC_WP with in_thread: a write fault is recorded by the writing thread
 * itself, so a collect whose results live in the tracked memory - written
 * by libuffd while it holds the tracker's locks, after the same collect
 * re-protected them - neither deadlocks nor loses a write (by default the
 * servicing thread would wait for the collect's locks, and the collect for
 * it).  The bitmap lives on tracked page 1: the first collect reports the
 * pages the program wrote (5, 20, 40) and page 1 (the bitmap's clearing
 * wrote it), and the second reports page 1 alone (the first collect wrote
 * its later bits there after re-arming it).  The same with the result
 * struct of a ranges collect on page 2.  on_write runs in the writing
 * thread, once per write to a page armed; and an in-thread tracker must be
 * SYNC_WP (EINVAL otherwise).
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/track.h>

#include "lib/harness.h"

#define NPAGES 64

static char *area;
static pid_t writer_of[NPAGES];
static int on_writes;

static void on_write(void *page, void *arg)
{
	size_t pg = ((char *)page - area) / PAGE;

	writer_of[pg] = gettid();
	on_writes++;
}

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out (a collect deadlocked?)\n";

	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static void expect_bits(const uint64_t *bm, const int *pages, int n)
{
	int i, j;

	for (i = 0; i < NPAGES; i++) {
		bool want = false;

		for (j = 0; j < n; j++)
			want |= pages[j] == i;
		if ((bm[i / 64] >> (i % 64) & 1) != want)
			FAIL("page %d: reported %d, want %d", i, !want, want);
	}
}

static void *write_page_40(void *arg)
{
	area[40 * PAGE] = 4;
	return (void *)(long)gettid();
}

int main(void)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = UFFD_TRACK_SYNC_WP, .in_thread = true,
		  .on_write = on_write);
	UFFD_OPTS(uffd_track_opts, async, .backend = UFFD_TRACK_WP_ASYNC, .in_thread = true);
	static const int first[] = { 1, 5, 20, 40 }, second[] = { 1 };
	struct uffd_track_result *res;
	uint64_t *bm, mine[1], pages;
	struct uffd_tracker *t;
	pthread_t th;
	void *tid;

	t_require(UFFD_FEAT_REG_WP_ANON);
	t_require_in_thread();
	signal(SIGALRM, on_timeout);
	alarm(20);
	errno = 0;
	CHECK(!uffd_track_new(&async));
	CHECK_EQ(errno, EINVAL);

	area = t_map_anon(NPAGES * PAGE);
	memset(area, 1, NPAGES * PAGE);
	t = uffd_track_new(&o);
	CHECK(t);
	CHECK_OK(uffd_track_add(t, area, NPAGES * PAGE));
	bm = (uint64_t *)(area + PAGE);
	res = (struct uffd_track_result *)(area + 2 * PAGE);

	area[5 * PAGE] = 2;
	area[20 * PAGE + 7] = 3;
	CHECK(!pthread_create(&th, NULL, write_page_40, NULL));
	pthread_join(th, &tid);
	CHECK_EQ(writer_of[5], gettid());
	CHECK_EQ(writer_of[40], (long)tid);

	CHECK_OK(uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, bm, NPAGES, &pages));
	expect_bits(bm, first, 4);
	CHECK_EQ(pages, 4);
	CHECK_OK(uffd_track_collect_bitmap(t, UFFD_TRACK_REARM, mine, NPAGES, &pages));
	expect_bits(mine, second, 1);
	CHECK_EQ(pages, 1);

	/* Ranges, the result struct on page 2 (zeroed by the program). */
	memset(res, 0, sizeof(*res));
	area[7 * PAGE] = 5;
	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, res));
	CHECK_EQ(res->pages, 2);
	CHECK_EQ(res->nranges, 2);
	CHECK_EQ(res->ranges[0].start, (uintptr_t)(area + 2 * PAGE));
	CHECK_EQ(res->ranges[1].start, (uintptr_t)(area + 7 * PAGE));
	uffd_track_result_free(res);
	/* 5, 20, 40 and the bitmap's page; that page again, written after its
	 * re-arm; the result's page and 7; the result's page again (the second
	 * run's count went there after the first run re-armed it). */
	CHECK_EQ(on_writes, 4 + 1 + 2 + 1);
	uffd_track_free(t);
	return T_EXIT_PASS;
}
