/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a map may cover of its store.  It may run past the store's end, as
 * mmap of a file may: the page holding the end reads as the store's bytes
 * then zeros, a page wholly past it raises SIGBUS.  It may not start at or
 * past the end of a store that knows its size, nor end past 2^63 - 1 (an
 * off_t: no store's offsets go further), which also refuses an offset
 * whose end wraps around 2^64: EINVAL.  And the end is the store's size when the map
 * was made: a store that grows afterwards shows no more through the map -
 * its new bytes read as zeros, pages past the old end raise SIGBUS - so
 * nothing is shown that write-back would not write (write-back never went
 * past that end: a write there was silently lost).
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/sigbus.h"
#include "lib/test-store.h"

#define SEED	21

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	/* Room for 4 pages; the store says 1.5 for now. */
	struct t_store *ts = t_store_new(4 * PAGE, SEED);
	struct uffd_store_ops sizeless_ops = *ts->store.ops;
	struct uffd_store sizeless = ts->store;
	struct t_sigbus bus;
	struct uffd_pager *p;
	char v, *map;
	size_t k;

	t_sigbus_catch();
	p = t_pager_new(&o);
	ts->len = PAGE + PAGE / 2;

	/* Starting at or past the end: nothing of the store in it. */
	errno = 0;
	CHECK(!uffd_pager_map(p, &ts->store, 2 * PAGE, PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	/* Past 2^63 - 1, and wrapping around 2^64, even where the store does
	 * not say its size. */
	sizeless_ops.size = NULL;
	sizeless.ops = &sizeless_ops;
	errno = 0;
	CHECK(!uffd_pager_map(p, &sizeless, (1ULL << 63) - PAGE, 2 * PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(!uffd_pager_map(p, &sizeless, 1ULL << 63, PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(!uffd_pager_map(p, &sizeless, -(uint64_t)PAGE, 2 * PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(!uffd_pager_map(p, &ts->store, -(uint64_t)PAGE, 2 * PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	/* Ending below 2^63 is a map (nothing there to read: SIGBUS). */
	map = uffd_pager_map(p, &sizeless, (1ULL << 63) - 3 * PAGE, 2 * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	CHECK(t_access_catching_sigbus(map + PAGE, false, &v, &bus));
	CHECK_OK(uffd_pager_unmap(p, map));

	/* Starting inside the last, partial page, and running past the end. */
	map = uffd_pager_map(p, &ts->store, PAGE, 2 * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	CHECK_EQ(*(uint64_t *)map, t_word(PAGE, SEED));
	CHECK_OK(uffd_pager_unmap(p, map));

	map = uffd_pager_map(p, &ts->store, 0, 4 * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	/* The store grows to 4 pages under the map. */
	ts->len = 4 * PAGE;
	CHECK_EQ(*(uint64_t *)map, t_word(0, SEED));
	CHECK_EQ(*(uint64_t *)(map + PAGE), t_word(PAGE, SEED));
	CHECK_EQ(*(uint64_t *)(map + PAGE + PAGE / 2 - 8), t_word(PAGE + PAGE / 2 - 8, SEED));
	CHECK(t_is_zero(map + PAGE + PAGE / 2, PAGE / 2));
	CHECK(t_access_catching_sigbus(map + 2 * PAGE, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr & ~(PAGE - 1), (uintptr_t)(map + 2 * PAGE));
	CHECK(t_access_catching_sigbus(map + 3 * PAGE + 100, true, &v, &bus));
	/* Write-back stops at the end the map saw. */
	memset(map + PAGE, 'w', PAGE);
	CHECK_OK(uffd_pager_unmap(p, map));
	for (k = 0; k < PAGE / 2; k++)
		CHECK_EQ(ts->data[PAGE + k], 'w');
	for (k = PAGE / 2; k < PAGE; k += 8)
		CHECK_EQ(*(uint64_t *)(ts->data + PAGE + k), t_word(PAGE + k, SEED));
	CHECK_EQ(t_reads(ts, 2), 0);
	CHECK_EQ(t_reads(ts, 3), 0);

	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return T_EXIT_PASS;
}
