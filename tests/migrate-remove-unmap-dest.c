// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program at the destination removes (MADV_DONTNEED) and unmaps
 * memory whose pages have not arrived yet: when they arrive they are
 * dropped, never mapped again - removed pages read as zeros, as the
 * program asked, and unmapped ones stay unmapped (the test unmaps them
 * by mapping an inaccessible mapping of its own over them, and no page of
 * it becomes resident).
 *
 * Postcopy only, no writers; a relay holds the background stream back
 * after the switchover while the test removes pages 100-199 and unmaps
 * pages 300-399 of the destination's table, and touches page 150 (a zero
 * page, no request).  Then the stream goes on: each of those 200 pages
 * arrives once and is counted as dropped, every other page is exactly the
 * source's.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"
#include "migrate/wire.h"

#define TABLE (4u << 20)
#define NPAGES (TABLE / 4096)

int main(void)
{
	struct t_relay relay = { .hold_after = MIG_SWITCHOVER };
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = TABLE, .writers = 1,
			.seed = 6, .fill = 1.0 },
		.mode = UFFD_MIG_POSTCOPY_ONLY,
		.no_writers = true,
		.stream_relay = &relay,
	};
	struct uffd_mig_stats ss, ds;
	unsigned char vec;
	char *src, *dst;
	size_t p;
	int ret;

	t_mig_start(&m);
	src = uffd_checker_area(m.src_c);
	dst = m.dst_area;
	while (!__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	CHECK_OK(madvise(dst + 100 * 4096, 100 * 4096, MADV_DONTNEED));
	/* Unmapped by mapping over it, inaccessible and unregistered (an
	 * UNMAP for the destination all the same): after a plain munmap a
	 * later mmap of this process (a thread's buffer, malloc) could land
	 * in the hole - it did once in 8 runs, and again between an munmap
	 * and a MAP_FIXED_NOREPLACE right after it. */
	CHECK(mmap(dst + 300 * 4096, 100 * 4096, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == dst + 300 * 4096);
	CHECK(t_is_zero(dst + 150 * 4096, 4096));
	__atomic_store_n(&relay.hold, 0, __ATOMIC_RELEASE);
	ret = t_mig_wait(&m, 30000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("migration: %s (source: %s; destination: %s)", strerror(-ret), ss.message,
		     ds.message);
	CHECK_EQ(ds.dropped, 200);
	CHECK_EQ(ds.pages_requested, 0);
	CHECK_EQ(ds.pages_background, NPAGES - 200);
	CHECK_EQ(ds.pages_local_zero, 0);
	for (p = 0; p < NPAGES; p++) {
		if (p >= 300 && p < 400) {
			/* nothing was mapped into the hole */
			CHECK_OK(mincore(dst + p * 4096, 4096, &vec));
			CHECK_EQ(vec & 1, 0);
		} else if (p >= 100 && p < 200) {
			if (!t_is_zero(dst + p * 4096, 4096))
				FAIL("removed page %zu was mapped again", p);
		} else {
			t_check_bytes("page", dst + p * 4096, src + p * 4096, 4096);
		}
	}
	/* t_mig_free unmaps the whole table: put the hole back first. */
	CHECK(mmap(dst + 300 * 4096, 100 * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == dst + 300 * 4096);
	t_mig_free(&m);
	return T_EXIT_PASS;
}
