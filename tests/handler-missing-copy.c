/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The runtime serves MISSING faults through a region's callback: with two
 * servicing threads and four application threads each reading its own
 * quarter of a 64-page region, every page ends up holding exactly the bytes
 * the callback copied from the source buffer at the same offset, every page
 * is filled exactly once (pages_resolved == 64), and the counters add up:
 * each fault message read is either merged into another of its batch
 * (coalesced), or served by a fill (pages_resolved) or found already filled
 * (eexist); each served fault has a latency sample.  The counters survive
 * uffd_handler_stop().
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

#define NPAGES 64
#define NAPP 4

/* Set before uffd_handler_start(), read by the servicing threads. */
static char *area, *src;
static struct uffd_region *region;
static int marker;
static int callbacks;		/* atomic */
static int bad_callbacks;	/* atomic: wrong region, data or kind */

static int copy_from_source(struct uffd_fault *f)
{
	size_t off = (char *)f->addr - area;

	__atomic_fetch_add(&callbacks, 1, __ATOMIC_RELAXED);
	if (f->region != region || f->data != &marker ||
	    f->kind != UFFD_FAULT_MISSING || f->write ||
	    off % PAGE || off >= NPAGES * PAGE ||
	    f->exact != (uintptr_t)f->addr)
		__atomic_fetch_add(&bad_callbacks, 1, __ATOMIC_RELAXED);
	return uffd_fault_copy(f, src + off, PAGE);
}

struct reader {
	pthread_t thread;
	int first;		/* first page of its quarter */
	unsigned long sum;	/* keeps the reads */
	int done;		/* atomic */
};

static void *read_quarter(void *arg)
{
	struct reader *rd = arg;
	int i;

	for (i = rd->first; i < rd->first + NPAGES / NAPP; i++)
		rd->sum += ((volatile unsigned char *)area)[(size_t)i * PAGE + 17];
	__atomic_store_n(&rd->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void check_stats(const struct uffd_handler_stats *s)
{
	int cb = __atomic_load_n(&callbacks, __ATOMIC_RELAXED);
	int i;

	CHECK_EQ(s->pages_resolved, NPAGES);
	CHECK(s->faults[UFFD_FAULT_MISSING] >= NPAGES);
	CHECK_EQ(s->faults[UFFD_FAULT_WP], 0);
	CHECK_EQ(s->faults[UFFD_FAULT_MINOR], 0);
	CHECK_EQ(s->messages, s->faults[UFFD_FAULT_MISSING]);
	CHECK(s->reads >= 1 && s->reads <= s->messages);
	/* Every message: merged, or served by a fill or by someone else's. */
	CHECK_EQ(s->faults[UFFD_FAULT_MISSING],
		 s->pages_resolved + s->eexist + s->coalesced);
	CHECK_EQ(cb, s->pages_resolved + s->eexist);
	/* One latency sample per fault taken from a batch's list: at least
	 * one per fault not merged, at most one per message. */
	CHECK(t_hist_total(s) >= s->faults[UFFD_FAULT_MISSING] - s->coalesced);
	CHECK(t_hist_total(s) <= s->faults[UFFD_FAULT_MISSING]);
	CHECK(s->latency_ns_max > 0);
	CHECK(s->latency_ns_sum >= s->latency_ns_max);
	for (i = 0; i < 5; i++)
		CHECK_EQ(s->events[i], 0);
	CHECK_EQ(s->retries, 0);
	CHECK_EQ(s->enoent, 0);
	CHECK_EQ(s->unknown_addr, 0);
	CHECK_EQ(s->callback_errors, 0);
	CHECK_EQ(s->dead_contexts, 0);
	CHECK_EQ(s->contexts, 1);
}

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_region_ops ops = { .missing = copy_from_source };
	struct uffd_handler_stats s, after;
	struct reader rd[NAPP];
	struct uffd_handler *h;
	struct uffd u;
	int i;

	t_open(&u, 0, 0);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 5);

	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	region = uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING,
				  &ops, &marker);
	CHECK(region);
	CHECK(uffd_region_addr(region) == area);
	CHECK_EQ(uffd_region_len(region), NPAGES * PAGE);
	CHECK_EQ(uffd_region_page_size(region), PAGE);
	CHECK(uffd_region_data(region) == &marker);
	CHECK(uffd_region_uffd(region) == &u);
	/* Overlapping an existing region is refused. */
	errno = 0;
	CHECK(!uffd_handler_add(h, area + PAGE, PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_EQ(errno, EINVAL);
	CHECK_OK(uffd_handler_start(h));
	CHECK_EQ(uffd_handler_start(h), -EBUSY);

	for (i = 0; i < NAPP; i++) {
		rd[i].first = i * NPAGES / NAPP;
		rd[i].sum = 0;
		rd[i].done = 0;
		if (pthread_create(&rd[i].thread, NULL, read_quarter, &rd[i]))
			FAIL("pthread_create");
	}
	for (i = 0; i < NAPP; i++) {
		if (!t_wait_flag(&rd[i].done, 5000))
			FAIL("reader %d did not finish within 5 s", i);
		pthread_join(rd[i].thread, NULL);
	}
	CHECK(memcmp(area, src, NPAGES * PAGE) == 0);
	CHECK_EQ(__atomic_load_n(&bad_callbacks, __ATOMIC_RELAXED), 0);

	WAIT_STATS(h, s, s.pages_resolved == NPAGES &&
		   s.faults[UFFD_FAULT_MISSING] == s.pages_resolved + s.eexist + s.coalesced &&
		   t_hist_total(&s) >= s.faults[UFFD_FAULT_MISSING] - s.coalesced);
	check_stats(&s);
	CHECK_OK(uffd_handler_stop(h));
	CHECK_OK(uffd_handler_stats(h, &after));
	check_stats(&after);
	CHECK(memcmp(&s, &after, sizeof(s)) == 0);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
