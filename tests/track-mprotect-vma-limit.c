/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The MPROTECT backend runs out of VMAs as track.h documents, and WP_ASYNC
 * has no such limit.  Every other page of a range of 2 * (max_map_count/2 +
 * 1000) pages is written, so the written pages alone would need more than
 * max_map_count VMAs under mprotect:
 *  - WP_ASYNC: the collect (REARM) returns 0 and reports exactly the
 *    written pages, one range each; the next collect reports nothing;
 *  - MPROTECT: every write completes (no hang, no crash); stats.overflowed
 *    is true; a collect returns -ENOSPC and reports every tracked page as
 *    written, as ranges and as a bitmap, without REARM and with it; after
 *    that REARM tracking goes on: a collect reports nothing, and writes to
 *    3 pages are reported exactly (collect returns 0).
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"

static size_t npages;

static void on_timeout(int sig)
{
	static const char msg[] = "FAIL: timed out (a write or collect hung)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = -1;

	if (!f)
		SKIP("cannot read /proc/sys/vm/max_map_count: %s", strerror(errno));
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	if (v <= 0)
		FAIL("bad vm.max_map_count");
	return v;
}

static struct uffd_tracker *new_tracker(enum uffd_track_backend b)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = b);
	struct uffd_tracker *t = uffd_track_new(&o);

	if (!t)
		FAIL("%s: uffd_track_new: errno %d (%s)", uffd_track_backend_name(b), errno,
		     strerrorname_np(errno));
	return t;
}

static void write_every_other(char *area)
{
	size_t i;

	for (i = 0; i < npages; i += 2)
		((volatile char *)area)[i * PAGE + 1] = 'w';
}

static void wp_async_no_limit(void)
{
	struct uffd_tracker *t = new_tracker(UFFD_TRACK_WP_ASYNC);
	struct uffd_track_result res = { 0 };
	char *area = t_map_anon(npages * PAGE);
	size_t i;

	CHECK_OK(uffd_track_add(t, area, npages * PAGE));
	write_every_other(area);
	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	CHECK_EQ(res.nranges, npages / 2);
	CHECK_EQ(res.pages, npages / 2);
	for (i = 0; i < res.nranges; i++) {
		if (res.ranges[i].start != (uintptr_t)(area + 2 * i * PAGE) ||
		    res.ranges[i].end != (uintptr_t)(area + (2 * i + 1) * PAGE))
			FAIL("wp-async: range %zu is not page %zu", i, 2 * i);
	}
	CHECK_OK(uffd_track_collect(t, 0, &res));
	CHECK_EQ(res.nranges, 0);
	CHECK_EQ(res.pages, 0);
	uffd_track_result_free(&res);
	uffd_track_free(t);
	munmap(area, npages * PAGE);
}

/* A collect returns -ENOSPC with every page of area reported. */
static void expect_everything(struct uffd_tracker *t, char *area, unsigned flags)
{
	struct uffd_track_result res = { 0 };
	uint64_t *bm = calloc((npages + 63) / 64, 8), pages = 0;
	size_t i;

	CHECK(bm);
	CHECK_EQ(uffd_track_collect(t, 0, &res), -ENOSPC);
	CHECK_EQ(res.nranges, 1);
	CHECK_EQ(res.ranges[0].start, (uintptr_t)area);
	CHECK_EQ(res.ranges[0].end, (uintptr_t)(area + npages * PAGE));
	CHECK_EQ(res.pages, npages);
	uffd_track_result_free(&res);

	CHECK_EQ(uffd_track_collect_bitmap(t, 0, bm, npages, &pages), -ENOSPC);
	CHECK_EQ(pages, npages);
	for (i = 0; i < npages; i++)
		if (!(bm[i / 64] >> (i % 64) & 1))
			FAIL("mprotect: bit %zu not set after the overflow", i);
	free(bm);

	if (flags & UFFD_TRACK_REARM) {
		CHECK_EQ(uffd_track_collect(t, UFFD_TRACK_REARM, &res), -ENOSPC);
		CHECK_EQ(res.nranges, 1);
		CHECK_EQ(res.pages, npages);
		uffd_track_result_free(&res);
	}
}

static void mprotect_overflow(void)
{
	struct uffd_tracker *t = new_tracker(UFFD_TRACK_MPROTECT);
	struct uffd_track_result res = { 0 };
	const size_t three[] = { 7, npages / 2 + 1, npages - 1 };
	char *area = t_map_anon(npages * PAGE);
	struct uffd_track_stats st;
	size_t i;

	CHECK_OK(uffd_track_add(t, area, npages * PAGE));
	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.overflowed, false);
	write_every_other(area);
	for (i = 0; i < npages; i += 2)
		CHECK_EQ(area[i * PAGE + 1], 'w');
	CHECK_OK(uffd_track_stats(t, &st));
	CHECK_EQ(st.overflowed, true);

	expect_everything(t, area, 0);
	expect_everything(t, area, UFFD_TRACK_REARM);

	/* Re-armed: tracking goes on, exactly. */
	CHECK_OK(uffd_track_collect(t, 0, &res));
	CHECK_EQ(res.nranges, 0);
	for (i = 0; i < 3; i++)
		((volatile char *)area)[three[i] * PAGE + 100] = 'x';
	CHECK_OK(uffd_track_collect(t, UFFD_TRACK_REARM, &res));
	CHECK_EQ(res.nranges, 3);
	CHECK_EQ(res.pages, 3);
	for (i = 0; i < 3; i++) {
		CHECK_EQ(res.ranges[i].start, (uintptr_t)(area + three[i] * PAGE));
		CHECK_EQ(res.ranges[i].end, (uintptr_t)(area + (three[i] + 1) * PAGE));
	}
	uffd_track_result_free(&res);
	uffd_track_free(t);
	munmap(area, npages * PAGE);
}

int main(void)
{
	long max = max_map_count();

	npages = 2 * (max / 2 + 1000);
	fprintf(stderr, "vm.max_map_count %ld: %zu pages, %zu written\n", max, npages,
		npages / 2);
	signal(SIGALRM, on_timeout);
	alarm(20);
	wp_async_no_limit();
	mprotect_overflow();
	return T_EXIT_PASS;
}
