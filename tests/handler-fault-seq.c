/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every fault carries the count of the batch of messages it was read in
 * (uffd_fault.seq), and uffd_region_read_seq() is the count so far: in a
 * callback 1 <= f->seq <= uffd_region_read_seq(r), and of faults taken one
 * after another (each access waits for its page) each was read in a later
 * batch than the one before.  Before any message the count is 0.
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 4

static uint64_t seen_seq[NPAGES], seen_count[NPAGES];

static int fill(struct uffd_fault *f)
{
	size_t i = ((char *)f->addr - (char *)uffd_region_addr(f->region)) / PAGE;
	static const char page[PAGE];

	/* Atomic: the accessing thread reads them after the copy wakes it,
	 * an order made by the kernel that ThreadSanitizer cannot see. */
	__atomic_store_n(&seen_seq[i], f->seq, __ATOMIC_RELEASE);
	__atomic_store_n(&seen_count[i], uffd_region_read_seq(f->region), __ATOMIC_RELEASE);
	return uffd_fault_copy(f, page, PAGE);
}

int main(void)
{
	struct uffd_region_ops ops = { .missing = fill };
	struct uffd_handler *h;
	struct uffd_region *r;
	struct uffd u;
	char *area;
	int i;

	t_open(&u, 0, 0);
	area = t_map_anon(NPAGES * PAGE);
	h = uffd_handler_new(&u, NULL);
	CHECK(h);
	r = uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL);
	CHECK(r);
	CHECK_EQ(uffd_region_read_seq(r), 0);
	CHECK_OK(uffd_handler_start(h));
	for (i = 0; i < NPAGES; i++)
		CHECK_EQ(*(volatile char *)(area + i * PAGE), 0);
	for (i = 0; i < NPAGES; i++) {
		uint64_t seq = __atomic_load_n(&seen_seq[i], __ATOMIC_ACQUIRE);
		uint64_t count = __atomic_load_n(&seen_count[i], __ATOMIC_ACQUIRE);

		if (seq < 1 || seq > count)
			FAIL("fault %d: seq %" PRIu64 ", count %" PRIu64, i, seq, count);
		if (i && seq <= __atomic_load_n(&seen_seq[i - 1], __ATOMIC_ACQUIRE))
			FAIL("fault %d read in batch %" PRIu64 ", the one before earlier",
			     i, seq);
	}
	CHECK(uffd_region_read_seq(r) >= __atomic_load_n(&seen_seq[NPAGES - 1], __ATOMIC_ACQUIRE));
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
