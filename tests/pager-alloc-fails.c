/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Any allocation of the pager may fail, and then the pager fails cleanly
 * or works on, never wrongly.  For n = 0, 1, 2, ... the pager's
 * allocations after the first n are refused (the library's internal
 * uffd__fail_alloc_after hook), and a whole life of a pager is run:
 * uffd_pager_new and uffd_pager_map may give NULL with ENOMEM (EAGAIN
 * for a thread: pthread_create's word for it), leaking nothing (ASan
 * checks); once they succeed, reads under eviction,
 * read-ahead, writes, flush, a pinned prefetch, evict and unmap must all
 * succeed with exact data - a read or a write-back that can not have its
 * bounce buffer goes through the pages' shadow - and the pager's
 * invariants (every count, every evictable page on the inactive queue)
 * hold after each step.  The sweep ends at the first n that refuses
 * nothing.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"
#include "util/failalloc.h"

#define NPAGES	256
#define BUFFER	(64 * PAGE)
#define SEED	5
#define MAX_N	1000

static uint64_t word(size_t page, size_t k, bool rewritten)
{
	return t_word(page * PAGE + k * 8, rewritten ? SEED + 1 : SEED);
}

/* Every page written by this test: a third of them. */
static bool written(size_t page)
{
	return page % 3 == 1;
}

static void check_invariants(struct uffd_pager *p, long n, const char *when)
{
	char why[256] = "";
	int ret = uffd__pager_check(p, why, sizeof(why));

	if (ret)
		FAIL("n=%ld, %s: %s (%s)", n, when, why, t_errname(ret));
}

/* Read every page, in a scattered order; rewritten: which are new. */
static void check_pages(const char *map, long n, bool rewritten)
{
	size_t i, k;

	for (i = 0; i < NPAGES; i++) {
		size_t page = (i * 37) % NPAGES;
		const uint64_t *pg = (const uint64_t *)(map + page * PAGE);

		for (k = 0; k < PAGE / 8; k += 127)
			if (pg[k] != word(page, k, rewritten && written(page)))
				FAIL("n=%ld: page %zu word %zu is %#llx", n, page, k,
				     (unsigned long long)pg[k]);
	}
}

/* One life of a pager with the allocations after the first n refused.
 * Returns how many were refused. */
static long life(long n)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .fillers = 2,
		  .read_ahead = 16 * PAGE);
	struct t_store *ts = t_store_new(NPAGES * PAGE, SEED);
	struct uffd_pager_range r;
	struct uffd_pager *p;
	size_t i, k;
	char *map;
	long got;

	uffd__fail_alloc_after(n);
	p = uffd_pager_new(&o);
	if (!p) {
		/* (EAGAIN: a thread could not be had.) */
		CHECK(errno == ENOMEM || errno == EAGAIN);
		goto out;
	}
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	if (!map) {
		CHECK_EQ(errno, ENOMEM);
		CHECK_OK(uffd_pager_free(p));
		goto out;
	}
	/* Reads: sequential (read-ahead), then scattered, all under
	 * eviction (the map is four buffers long). */
	for (i = 0; i < NPAGES; i++)
		CHECK_EQ(((uint64_t *)(map + i * PAGE))[0], word(i, 0, false));
	check_pages(map, n, false);
	check_invariants(p, n, "after reading");
	/* Writes, then a flush that must write them all. */
	for (i = 0; i < NPAGES; i++)
		if (written(i))
			for (k = 0; k < PAGE / 8; k++)
				((uint64_t *)(map + i * PAGE))[k] = word(i, k, true);
	CHECK_OK(uffd_pager_flush(p, map, 0));
	for (i = 0; i < NPAGES; i++)
		if (written(i))
			CHECK_EQ(((uint64_t *)(ts->data + i * PAGE))[PAGE / 8 - 1],
				 word(i, PAGE / 8 - 1, true));
	check_pages(map, n, true);
	check_invariants(p, n, "after writing");
	/* Pinned and evicted again. */
	r = (struct uffd_pager_range){ map + 8 * PAGE, 16 * PAGE };
	got = uffd_pager_prefetch(p, &r, 1, UFFD_PAGER_PIN);
	CHECK(got >= 0 && got <= 16);
	check_invariants(p, n, "after a pinned prefetch");
	CHECK_OK(uffd_pager_evict(p, map + 8 * PAGE, 16 * PAGE));
	check_invariants(p, n, "after evict");
	check_pages(map, n, true);
	/* Rewritten back to the original, written back by unmap. */
	for (i = 0; i < NPAGES; i++)
		if (written(i))
			for (k = 0; k < PAGE / 8; k++)
				((uint64_t *)(map + i * PAGE))[k] = word(i, k, false);
	check_invariants(p, n, "before unmap");
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	for (i = 0; i < NPAGES; i++)
		for (k = 0; k < PAGE / 8; k += 61)
			CHECK_EQ(((uint64_t *)(ts->data + i * PAGE))[k], word(i, k, false));
out:
	got = uffd__fail_alloc_after(-1);
	t_store_free(ts);
	return got;
}

int main(void)
{
	long n, refused = 0;

	/* Skip here, not mid-sweep, without write-protect. */
	CHECK_OK(uffd_pager_free(t_pager_new(NULL)));
	for (n = 0; n < MAX_N; n++) {
		refused = life(n);
		if (!refused)
			break;
	}
	CHECK_EQ(refused, 0);
	fprintf(stderr, "%ld allocations in a pager's life, each refused in turn\n", n);
	return T_EXIT_PASS;
}
