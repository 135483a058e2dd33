// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program at the destination moves part of its migrated memory with
 * mremap(2) before the pages arrive: the migration follows it - pages
 * still to come are filled where the memory went, a touch at the new
 * address fetches the right page, and nothing is filled at the old one.
 *
 * Postcopy only, no writers, the background stream held after the
 * switchover: pages 512-767 of the 1024-page table are moved to a new
 * address, page 600 is read there (an urgent request for page 600), then
 * the stream goes on.  Every page ends up exactly the source's, at its old
 * address or at the new one; nothing is filled at the old range.
 *
 * The old range is held all along, so that no other mapping lands there
 * (the test checks it, and unmaps it at the end).  A plain move frees it,
 * and any mmap of another thread may take it before a placeholder is put
 * there: the library's own allocations, applying this very REMAP, did.
 * So the move is made with MREMAP_DONTUNMAP (the same REMAP event), which
 * leaves the old range mapped, empty and still registered, and a PROT_NONE
 * placeholder replaces that with MAP_FIXED: an UNMAP of it, as after a
 * plain move.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"
#include "migrate/wire.h"

#define TABLE (4u << 20)
#define NPAGES (TABLE / 4096)
#define FROM 512
#define COUNT 256

int main(void)
{
	struct t_relay relay = { .hold_after = MIG_SWITCHOVER };
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = TABLE, .writers = 1,
			.seed = 8, .fill = 1.0 },
		.mode = UFFD_MIG_POSTCOPY_ONLY,
		.no_writers = true,
		.stream_relay = &relay,
	};
	struct uffd_mig_stats ss, ds;
	char *src, *dst, *moved, *to, *hole;
	unsigned char vec;
	size_t p;
	int ret;

	t_mig_start(&m);
	src = uffd_checker_area(m.src_c);
	dst = m.dst_area;
	while (!__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	/* A place to move to, then the move, the old range kept. */
	to = mmap(NULL, COUNT * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED);
	moved = mremap(dst + FROM * 4096, COUNT * 4096, COUNT * 4096,
		       MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
	CHECK(moved == to);
	hole = mmap(dst + FROM * 4096, COUNT * 4096, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(hole == dst + FROM * 4096);
	t_check_bytes("page 600, moved", moved + (600 - FROM) * 4096, src + 600 * 4096, 4096);
	__atomic_store_n(&relay.hold, 0, __ATOMIC_RELEASE);
	ret = t_mig_wait(&m, 30000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("migration: %s (source: %s; destination: %s)", strerror(-ret), ss.message,
		     ds.message);
	CHECK_EQ(ds.pages_requested, 1);
	CHECK_EQ(ds.dropped, 0);
	CHECK_EQ(ds.pages_answered + ds.pages_background, NPAGES);
	for (p = 0; p < NPAGES; p++) {
		if (p >= FROM && p < FROM + COUNT) {
			t_check_bytes("moved page", moved + (p - FROM) * 4096, src + p * 4096, 4096);
			CHECK_EQ(mincore(dst + p * 4096, 4096, &vec), 0);
			CHECK_EQ(vec & 1, 0);
		} else {
			t_check_bytes("page", dst + p * 4096, src + p * 4096, 4096);
		}
	}
	/* t_mig_free unmaps the table: put the moved part back. */
	CHECK(mremap(moved, COUNT * 4096, COUNT * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
		     dst + FROM * 4096) == dst + FROM * 4096);
	t_mig_free(&m);
	return T_EXIT_PASS;
}
