// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode: a fault is resolved by the thread that took it.  Four
 * threads each read their quarter of a 64-page MISSING region; the
 * region's callback runs in each faulting thread itself (gettid() there is
 * the reader's, and so is f->tid with THREAD_ID), sees a copy of the
 * region (its address, length and data, with the kind, the exact address
 * and the read), and every page ends up holding the bytes it copied.  This
 * works from uffd_handler_add() on, before any start.  A write-protected
 * region without callbacks is un-protected by the default, in the writing
 * thread too.  The counters: one fault and one latency sample per page,
 * no message read.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

#define NPAGES 64
#define NAPP 4

static char *area, *src;
static int marker;
static pid_t resolved_by[NPAGES];	/* gettid() in the callback, per page */
static int bad_callbacks;		/* atomic */

static int copy_from_source(struct uffd_fault *f)
{
	size_t off = (char *)f->addr - area;

	if (uffd_region_addr(f->region) != area ||
	    uffd_region_len(f->region) != NPAGES * PAGE ||
	    uffd_region_data(f->region) != &marker || f->data != &marker ||
	    f->kind != UFFD_FAULT_MISSING || f->write || off % PAGE ||
	    off >= NPAGES * PAGE || f->exact != (uintptr_t)f->addr + 17 ||
	    f->tid != (uint32_t)gettid())
		__atomic_fetch_add(&bad_callbacks, 1, __ATOMIC_RELAXED);
	resolved_by[off / PAGE] = gettid();
	return uffd_fault_copy(f, src + off, PAGE);
}

struct reader {
	pthread_t thread;
	int first;
	pid_t tid;
	unsigned long sum;
};

static void *read_quarter(void *arg)
{
	struct reader *rd = arg;
	int i;

	rd->tid = gettid();
	for (i = rd->first; i < rd->first + NPAGES / NAPP; i++)
		rd->sum += ((volatile unsigned char *)area)[(size_t)i * PAGE + 17];
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, opts, .in_thread = true);
	struct uffd_region_ops ops = { .missing = copy_from_source };
	struct uffd_handler_stats s;
	struct uffd_region *region;
	struct reader rd[NAPP];
	struct uffd_handler *h;
	char *wp_area;
	struct uffd u;
	int i, p;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS) | UFFD_F(UFFD_FEAT_THREAD_ID) |
	       UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), UFFD_NONBLOCK);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 5);

	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	region = uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, &marker);
	CHECK(region);

	/* Not started: the faults are resolved all the same. */
	for (i = 0; i < NAPP; i++) {
		rd[i].first = i * NPAGES / NAPP;
		rd[i].sum = 0;
		if (pthread_create(&rd[i].thread, NULL, read_quarter, &rd[i]))
			FAIL("pthread_create");
	}
	for (i = 0; i < NAPP; i++)
		pthread_join(rd[i].thread, NULL);
	t_check_bytes("region", area, src, NPAGES * PAGE);
	CHECK_EQ(__atomic_load_n(&bad_callbacks, __ATOMIC_RELAXED), 0);
	for (i = 0; i < NAPP; i++)
		for (p = rd[i].first; p < rd[i].first + NPAGES / NAPP; p++)
			CHECK_EQ(resolved_by[p], rd[i].tid);

	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], NPAGES);
	CHECK_EQ(s.pages_resolved, NPAGES);
	CHECK_EQ(t_hist_total(&s), NPAGES);
	CHECK_EQ(s.messages, 0);
	CHECK_EQ(s.callback_errors, 0);
	CHECK_EQ(s.retries, 0);

	/* Write-protect, no callback: the default un-protects, in-thread. */
	CHECK_OK(uffd_handler_start(h));
	wp_area = t_map_anon(8 * PAGE);
	memset(wp_area, 1, 8 * PAGE);
	CHECK(uffd_handler_add(h, wp_area, 8 * PAGE, 0, UFFD_REG_WP, NULL, NULL));
	CHECK_OK(uffd_writeprotect(&u, wp_area, 8 * PAGE, true, 0));
	for (p = 0; p < 8; p++)
		wp_area[p * PAGE + 5] = 7;
	for (p = 0; p < 8; p++)
		CHECK_EQ(wp_area[p * PAGE + 5], 7);
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_WP], 8);
	CHECK_EQ(s.pages_resolved, NPAGES + 8);
	CHECK_EQ(s.messages, 0);

	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
