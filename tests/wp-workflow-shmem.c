/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The write-protect workflow on shmem (a memfd mapped shared), step by step:
 * populate, protect, a worker's write blocks and is reported as a WP fault
 * (write flag set, the page's address); while it is blocked the handler sees
 * the page as it was before the write; un-protecting the page wakes the
 * worker and its write lands.  Writes to a page of the range that was never
 * protected, or that was un-protected, do not fault; a page still protected
 * still does.
 *
 * Kernel behaviour libuffd relies on: with WP_HUGETLBFS_SHMEM, uffd-wp works
 * on shmem PTEs as on anonymous ones; UFFDIO_WRITEPROTECT with mode 0
 * removes the protection and wakes the writers blocked on that range.
 *
 * The steps are t_wp_workflow() (lib/workflows.c), shared with the anon
 * and hugetlb variants.
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/workflows.h"

int main(void)
{
	struct uffd u;
	struct t_wp_workflow w = {
		.u = &u, .ps = PAGE, .npages = 4, .seed = 7,
		.off = 100,	/* where in the page the worker writes */
	};
	int fd;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM), 0);
	w.area = t_map_memfd(w.npages * w.ps, &fd);
	t_wp_populate(&w);
	/* Protect all but the last page; page 2 faults, then no longer. */
	t_wp_workflow(&w);

	/* Page 1 is still protected and faults on its own. */
	t_wp_write_with_fault(&w, 1, 0x33);
	CHECK(t_is_filled(w.area, w.ps, w.seed));
	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
