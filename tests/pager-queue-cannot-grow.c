/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * When the inactive queue can not grow (its allocation fails), no page is
 * left inactive and off the queue - where nothing would ever evict it.
 * With a buffer of 2,560 pages the inactive list wants more entries than
 * the ring starts with; every allocation of the pager is refused (the
 * internal uffd__fail_alloc_after hook) while scattered reads and writes
 * run over a map three times the buffer.  Then deactivation must take only
 * as many pages as the ring has room for: the data reads back exact, the
 * pager's invariants hold (every evictable page queued, every count
 * right), the buffer was never overrun, and once allocations work again
 * a last pass and the unmap write every change back.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"
#include "util/failalloc.h"

#define BUFFER	(2560 * PAGE)
#define NPAGES	(3 * 2560)
#define SEED	3

static uint64_t word(size_t page, bool rewritten)
{
	return t_word(page * PAGE, rewritten ? SEED + 1 : SEED);
}

static bool written(size_t page)
{
	return page % 4 == 0;
}

static void check_invariants(struct uffd_pager *p, const char *when)
{
	char why[256] = "";
	int ret = uffd__pager_check(p, why, sizeof(why));

	if (ret)
		FAIL("%s: %s (%s)", when, why, t_errname(ret));
}

/* Touch every page in a scattered order: read it, and write a quarter. */
static void pass(char *map, bool rewritten)
{
	size_t i;

	for (i = 0; i < NPAGES; i++) {
		size_t page = (i * 7919) % NPAGES;
		uint64_t *w = (uint64_t *)(map + page * PAGE);

		if (*w != word(page, rewritten && written(page)))
			FAIL("page %zu reads %#llx", page, (unsigned long long)*w);
		if (written(page))
			*w = word(page, true);
	}
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	struct t_store *ts = t_store_new(NPAGES * PAGE, SEED);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	size_t ring, i;
	char *map;

	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	ring = p->qcap;

	uffd__fail_alloc_after(0);
	pass(map, false);
	pass(map, true);
	check_invariants(p, "with every allocation refused");
	CHECK(uffd__fail_alloc_after(-1) > 0);
	CHECK_EQ(p->qcap, ring);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.resident_peak_bytes <= BUFFER);
	CHECK(st.evictions > NPAGES);

	pass(map, true);
	check_invariants(p, "once allocations work again");
	/* It grows as soon as it can: it was short. */
	CHECK(p->qcap > ring);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.resident_peak_bytes <= BUFFER);
	CHECK_OK(uffd_pager_unmap(p, map));
	for (i = 0; i < NPAGES; i++)
		CHECK_EQ(*(uint64_t *)(ts->data + i * PAGE), word(i, written(i)));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return T_EXIT_PASS;
}
