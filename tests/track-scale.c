/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * WP_ASYNC at scale: a 16 GiB MAP_NORESERVE private anonymous range is
 * tracked whole (virtual: only what is written gets memory), and 200,000
 * scattered pages of it are written once each (~800 MiB resident, freed at
 * the end).  A collect with REARM reports exactly those pages - the same
 * runs a sorted list of them gives - and a second collect reports nothing.
 * The pages are a fixed pseudo-random set: page (i * K + C) mod 2^22 for
 * i < 200,000 with K odd, distinct because multiplying by an odd number
 * is a bijection modulo a power of two.  Skipped (with the reason) when
 * the machine has too little free memory or cannot reserve the range.
 */
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

#define RANGE		(16ULL << 30)
#define RANGE_PAGES	(RANGE / PAGE)		/* 2^22 */
#define NR_WRITES	200000
#define STRIDE		2654435761ULL		/* odd */
#define OFFSET		12345ULL
#define NEED_FREE_KB	(1600ULL << 10)		/* 800 MiB touched, twice over */

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long long mem_available_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int main(void)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = UFFD_TRACK_WP_ASYNC);
	struct uffd_track_result res = { 0 };
	uint64_t *want, pos, nruns = 0, i;
	unsigned long long avail = mem_available_kb();
	struct uffd_tracker *t;
	double t0, t1, t2, t3;
	char *area;

	signal(SIGALRM, on_timeout);
	alarm(30);
	if (avail < NEED_FREE_KB)
		SKIP("%llu MiB available, this test needs %llu MiB", avail >> 10,
		     NEED_FREE_KB >> 10);
	area = mmap(NULL, RANGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED)
		SKIP("cannot map 16 GiB MAP_NORESERVE: %s", strerror(errno));
	want = calloc(RANGE_PAGES / 64, sizeof(*want));
	CHECK(want);
	t = uffd_track_new(&o);
	if (!t)
		FAIL("wp-async: uffd_track_new: errno %d (%s)", errno, strerrorname_np(errno));

	t0 = now_s();
	CHECK_OK(uffd_track_add(t, area, RANGE));
	t1 = now_s();
	for (i = 0; i < NR_WRITES; i++) {
		uint64_t pg = (i * STRIDE + OFFSET) % RANGE_PAGES;

		CHECK(!(want[pg / 64] >> (pg % 64) & 1));
		want[pg / 64] |= 1ULL << (pg % 64);
		((volatile char *)area)[pg * PAGE + (i % PAGE)] = (char)(i | 1);
	}
	t2 = now_s();
	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	t3 = now_s();
	CHECK_EQ(res.pages, NR_WRITES);

	/* The result is exactly the runs of want, in order. */
	pos = 0;
	while (pos < RANGE_PAGES) {
		uint64_t start;

		if (!(want[pos / 64] >> (pos % 64) & 1)) {
			pos++;
			continue;
		}
		for (start = pos; pos < RANGE_PAGES && (want[pos / 64] >> (pos % 64) & 1); pos++)
			;
		if (nruns >= res.nranges ||
		    res.ranges[nruns].start != (uintptr_t)(area + start * PAGE) ||
		    res.ranges[nruns].end != (uintptr_t)(area + pos * PAGE))
			FAIL("run %" PRIu64 " [page %" PRIu64 ", %" PRIu64 ") not reported as such",
			     nruns, start, pos);
		nruns++;
	}
	CHECK_EQ(res.nranges, nruns);

	CHECK_OK(uffd_track_collect(t, 0, &res));
	CHECK_EQ(res.nranges, 0);
	CHECK_EQ(res.pages, 0);
	fprintf(stderr, "add 16 GiB %.2f s, %d writes %.2f s, collect %.2f s (%" PRIu64
		" runs), second collect %.2f s\n", t1 - t0, NR_WRITES, t2 - t1, t3 - t2,
		nruns, now_s() - t3);

	uffd_track_result_free(&res);
	uffd_track_free(t);
	CHECK_EQ(munmap(area, RANGE), 0);
	free(want);
	return T_EXIT_PASS;
}
