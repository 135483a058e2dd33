/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_read_events() as documented, and the kernel behaviour it relies on:
 *
 *  - Faults queued by several threads come back from one call (one read(2)
 *    returns every queued message that fits): four threads fault on four
 *    pages, and once they are all queued one uffd_read_events(.., 16, 1000)
 *    returns exactly 4 messages with the 4 distinct page addresses.  One
 *    COPY over the four pages wakes all four threads.
 *  - On an empty non-blocking fd a timeout of 0 returns 0 at once.
 *  - On a blocking fd (uffd_open() without UFFD_NONBLOCK) any timeout >= 0
 *    is -EINVAL (the kernel will not poll a blocking userfaultfd), while -1
 *    sleeps in read(2) and returns a queued fault.
 */
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"

#define NTHREADS 4
#define QUEUE_MS 200	/* long enough for every faulting thread to queue */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void batch_of_faults(void)
{
	struct t_access a[NTHREADS];
	struct uffd_event ev[16];
	bool seen[NTHREADS] = { false };
	struct uffd u;
	char *area, *src;
	long long start;
	int i, n;

	t_open(&u, 0, 0);
	area = t_map_anon(NTHREADS * PAGE);
	src = t_map_anon(NTHREADS * PAGE);
	t_fill(src, NTHREADS * PAGE, 12);
	CHECK_OK(uffd_register(&u, area, NTHREADS * PAGE, UFFD_REG_MISSING, NULL));

	for (i = 0; i < NTHREADS; i++)
		t_access_start(&a[i], area + i * PAGE + i, false, 0);
	t_sleep_ms(QUEUE_MS);

	n = uffd_read_events(&u, ev, 16, 1000);
	CHECK_EQ(n, NTHREADS);
	for (i = 0; i < n; i++) {
		uint64_t off = ev[i].fault.addr - (uintptr_t)area;

		CHECK_EQ(ev[i].type, UFFD_EV_FAULT);
		CHECK_EQ(ev[i].fault.kind, UFFD_FAULT_MISSING);
		CHECK_EQ(ev[i].fault.write, false);
		CHECK_EQ(off % PAGE, 0);
		CHECK(off / PAGE < NTHREADS);
		CHECK(!seen[off / PAGE]);
		seen[off / PAGE] = true;
	}
	for (i = 0; i < NTHREADS; i++)
		CHECK(!t_access_wait(&a[i], 0));

	CHECK_OK(uffd_copy(&u, area, src, NTHREADS * PAGE, 0, NULL));
	for (i = 0; i < NTHREADS; i++) {
		CHECK(t_access_wait(&a[i], 5000));
		t_access_join(&a[i]);
		CHECK_EQ(a[i].value, src[i * PAGE + i]);
	}

	/* Nothing queued: timeout 0 returns 0 without waiting. */
	start = now_ms();
	CHECK_EQ(uffd_read_events(&u, ev, 16, 0), 0);
	CHECK(now_ms() - start < 50);
	uffd_close(&u);
	munmap(area, NTHREADS * PAGE);
}

static void blocking_fd(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char *area;
	int ret;

	ret = uffd_open(&u, 0, 0, 0);
	if (ret)
		FAIL("uffd_open: %s", strerror(-ret));
	CHECK(!(u.how & UFFD_OPENED_NONBLOCK));
	CHECK_EQ(uffd_read_events(&u, &ev, 1, 0), -EINVAL);
	CHECK_EQ(uffd_read_events(&u, &ev, 1, 100), -EINVAL);

	/* -1 reads in read(2); a fault is already queued, so it returns. */
	area = t_map_anon(PAGE);
	CHECK_OK(uffd_register(&u, area, PAGE, UFFD_REG_MISSING, NULL));
	t_access_start(&a, area + 1, false, 0);
	t_sleep_ms(QUEUE_MS);
	CHECK(!t_access_wait(&a, 0));
	alarm(5);	/* bounded even if nothing were queued */
	CHECK_EQ(uffd_read_events(&u, &ev, 1, -1), 1);
	alarm(0);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.addr, (uintptr_t)area);
	CHECK_OK(uffd_zeropage(&u, area, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	uffd_close(&u);
}

int main(void)
{
	batch_of_faults();
	blocking_fd();
	return T_EXIT_PASS;
}
