/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_checker_pause() returns only once every writer is parked, and
 * uffd_checker_resume() lets them all go again; uffd_checker_stop() joins
 * them.  With 1, 2 and 4 writers, on anonymous memory and on shmem:
 *  - nothing is written before start;
 *  - while paused for 50 ms the write count does not move and the table
 *    does not change by a byte;
 *  - after resume the count moves again;
 *  - 200 quick pause/resume cycles: each time the count read right after
 *    pause() is still the count 20 us later (no writer was mid-write);
 *  - after stop the count stays put, and pause/resume are no-ops.
 */
#include <sys/mman.h>
#include <time.h>

#include <uffd/checker.h>

#include "lib/harness.h"

#define TABLE_BYTES	(4UL << 20)
#define QUICK_CYCLES	200

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
}

/* Wait up to 5 s for the count to pass `than`. */
static void wait_writes_above(struct uffd_checker *c, uint64_t than)
{
	uint64_t deadline = now_us() + 5000000;

	while (uffd_checker_writes(c) <= than) {
		if (now_us() > deadline)
			FAIL("writes stuck at %llu", (unsigned long long)than);
		t_sleep_ms(1);
	}
}

static void run(enum uffd_checker_mem mem, int writers)
{
	UFFD_OPTS(uffd_checker_opts, o, .bytes = TABLE_BYTES, .writers = writers, .mem = mem,
		  .seed = 3, .fill = 0.25);
	struct uffd_checker *c = uffd_checker_new(&o);
	char *area, *copy = t_map_anon(TABLE_BYTES);
	uint64_t w, t0;
	int i;

	if (!c)
		FAIL("uffd_checker_new(%d writers, mem %d): %s", writers, mem,
		     strerror(errno));
	area = uffd_checker_area(c);
	CHECK_EQ(uffd_checker_writes(c), 0);
	CHECK_OK(uffd_checker_start(c));
	CHECK_EQ(uffd_checker_start(c), -EBUSY);
	wait_writes_above(c, 1000);

	uffd_checker_pause(c);
	w = uffd_checker_writes(c);
	memcpy(copy, area, TABLE_BYTES);
	t_sleep_ms(50);
	CHECK_EQ(uffd_checker_writes(c), w);
	CHECK(!memcmp(copy, area, TABLE_BYTES));
	uffd_checker_resume(c);
	wait_writes_above(c, w);

	for (i = 0; i < QUICK_CYCLES; i++) {
		uffd_checker_pause(c);
		w = uffd_checker_writes(c);
		t0 = now_us();
		while (now_us() - t0 < 20)
			;
		if (uffd_checker_writes(c) != w)
			FAIL("cycle %d: %llu writes after pause returned", i,
			     (unsigned long long)(uffd_checker_writes(c) - w));
		uffd_checker_resume(c);
	}
	wait_writes_above(c, w);

	uffd_checker_stop(c);
	w = uffd_checker_writes(c);
	uffd_checker_pause(c);
	uffd_checker_resume(c);
	t_sleep_ms(20);
	CHECK_EQ(uffd_checker_writes(c), w);
	uffd_checker_free(c);
	munmap(copy, TABLE_BYTES);
}

int main(void)
{
	static const int writers[] = { 1, 2, 4 };
	int i;

	for (i = 0; i < 3; i++) {
		run(UFFD_CHECKER_ANON, writers[i]);
		run(UFFD_CHECKER_SHMEM, writers[i]);
	}
	return T_EXIT_PASS;
}
