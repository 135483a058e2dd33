/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: MINOR faults on shmem.  A memfd is
 * mapped twice: "reg", registered MINOR|WP, and "alias", a plain second
 * mapping of the same file through which the test plays the manager that
 * fills the page cache.
 *
 *  - The first touch through reg of a page that is in the page cache raises
 *    a MINOR fault (kind MINOR, page address); contents written through the
 *    alias meanwhile become visible in reg after CONTINUE, which wakes the
 *    faulting thread.
 *  - COPY onto such a page fails with -EEXIST (the page cache already has
 *    a page at that offset) and copies nothing; CONTINUE then resolves it.
 *  - CONTINUE where the memfd has a hole fails with -EFAULT; over a range
 *    whose first page is cached and second is a hole, uffd_continue()
 *    reports the first page done and -EFAULT for the rest.
 *  - CONTINUE with UFFD_MAP_WP maps the page write-protected: the read that
 *    faulted completes, a later write raises a WP fault, and un-protecting
 *    lets the write through to the page cache (seen through the alias).
 *  - A hole touched through reg is not a minor fault: the kernel fills it
 *    (MINOR alone does not catch missing pages), with no message.
 *
 * The steps are t_minor_workflow() (lib/workflows.c), shared with
 * minor-hugetlb; this test adds that the failed COPY left the page cache
 * as it was.
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/workflows.h"

#define NPAGES 7

int main(void)
{
	uint64_t features = UFFD_F(UFFD_FEAT_MINOR_SHMEM) |
			    UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			    UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM);
	struct t_minor_workflow m = {
		.ps = PAGE, .npages = NPAGES,
		.read_off = 3, .write_off = 8,
		.hole = 2, .cached_then_hole = 3, .wp = 5, .read_hole = 6,
	};
	struct uffd u;
	int memfd;

	t_require(UFFD_FEAT_REG_MINOR_SHMEM);
	t_require(UFFD_FEAT_REG_WP_SHMEM);
	t_open(&u, features, 0);
	m.u = &u;
	m.reg = t_map_memfd(NPAGES * PAGE, &memfd);
	m.alias = t_map_shared(memfd, NPAGES * PAGE);
	m.src = t_map_anon(PAGE);
	t_fill(m.src, PAGE, 99);
	/* Pages 0, 1, 3 and 5 are in the page cache; 2, 4 and 6 are holes. */
	t_fill(m.alias, PAGE, 1);
	t_fill(m.alias + PAGE, PAGE, 2);
	t_fill(m.alias + 3 * PAGE, PAGE, 4);
	t_fill(m.alias + 5 * PAGE, PAGE, 6);
	t_minor_workflow(&m);
	/* The failed COPY onto page 1 left the page cache as it was. */
	CHECK(t_is_filled(m.alias + PAGE, PAGE, 2));

	uffd_close(&u);
	close(memfd);
	return T_EXIT_PASS;
}
