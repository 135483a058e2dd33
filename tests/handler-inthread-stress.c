// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The in-thread runtime's published table under churn: four threads fault
 * their way through a 1024-page MISSING region, again and again (each pass
 * ends with MADV_DONTNEED of its pages), while the main thread adds
 * and removes other regions of the same handler (each a new table, the
 * old one freed after a grace period) and creates and frees a second
 * in-thread handler (the SIGBUS handler shared, never put back meanwhile),
 * touching the pages of each region it adds.  Every page of every region
 * holds what its callback copied, every fault was resolved once (or
 * retried), and no SIGBUS reached the default action.  Run under ASan, a table freed while
 * a handler still reads it shows.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 1024
#define NTHREADS 4
#define SIDE_PAGES 8

static char *src;

static int fill(struct uffd_fault *f)
{
	char *base = uffd_region_data(f->region);

	return uffd_fault_copy(f, src + ((char *)f->addr - base), PAGE);
}

static const struct uffd_region_ops ops = { .missing = fill };

struct toucher {
	pthread_t thread;
	char *from;
	size_t pages;
	void *base;
	int passes, bad;
};

static int stop;	/* atomic */

static void *touch(void *arg)
{
	struct toucher *t = arg;
	size_t off0 = t->from - (char *)t->base, i, at;

	do {
		madvise(t->from, t->pages * PAGE, MADV_DONTNEED);
		for (i = 0; i < t->pages; i++) {
			at = i * PAGE + i % PAGE;
			if (((volatile char *)t->from)[at] != src[off0 + at])
				__atomic_fetch_add(&t->bad, 1, __ATOMIC_RELAXED);
		}
		t->passes++;
	} while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE));
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct toucher th[NTHREADS];
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct uffd u, u2;
	char *area, *side;
	int i, round = 0;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 1);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, area));
	CHECK_OK(uffd_handler_start(h));

	for (i = 0; i < NTHREADS; i++) {
		th[i] = (struct toucher){ .from = area + (size_t)i * (NPAGES / NTHREADS) * PAGE,
					  .pages = NPAGES / NTHREADS, .base = area };
		CHECK(!pthread_create(&th[i].thread, NULL, touch, &th[i]));
	}
	for (round = 0; round < 200; round++) {
		struct uffd_region *r;
		struct uffd_handler *h2;

		side = t_map_anon(SIDE_PAGES * PAGE);
		r = uffd_handler_add(h, side, SIDE_PAGES * PAGE, 0, UFFD_REG_MISSING, &ops, side);
		CHECK(r);
		t_check_bytes("side region", side, src, SIDE_PAGES * PAGE);
		CHECK_OK(uffd_handler_remove(r));
		munmap(side, SIDE_PAGES * PAGE);
		if (round % 20)
			continue;
		t_open(&u2, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
		h2 = uffd_handler_new(&u2, &o);
		if (!h2)
			FAIL("round %d: a second in-thread handler: %s", round, strerror(errno));
		side = t_map_anon(PAGE);
		CHECK(uffd_handler_add(h2, side, PAGE, 0, UFFD_REG_MISSING, &ops, side));
		t_check_bytes("second handler", side, src, PAGE);
		uffd_handler_free(h2);
		uffd_close(&u2);
		munmap(side, PAGE);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i].thread, NULL);
		CHECK(th[i].passes >= 1);
		CHECK_EQ(th[i].bad, 0);
	}
	t_check_bytes("region", area, src, NPAGES * PAGE);
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING] - s.retries, s.pages_resolved);
	CHECK(s.pages_resolved >= NPAGES + 200 * SIDE_PAGES);
	CHECK_EQ(s.callback_errors, 0);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
