/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The write-protect workflow on hugetlbfs (2 MiB pages), step by step:
 * populate, protect the first huge page, a worker's write into it blocks
 * and is reported as a WP fault (write flag set, the huge page's address);
 * while it is blocked the handler sees the page as it was before the write;
 * un-protecting the huge page wakes the worker and its write lands.  Writes
 * to the second huge page, registered but never protected, and to the
 * un-protected first one do not fault.
 *
 * Kernel behaviour libuffd relies on: with WP_HUGETLBFS_SHMEM, uffd-wp works
 * on hugetlb PTEs at huge page granularity, and without EXACT_ADDRESS the
 * fault address is the start of the huge page (not of the 4 KiB page
 * written); UFFDIO_WRITEPROTECT with mode 0 removes the protection and
 * wakes the writers blocked on that range.
 *
 * The steps are t_wp_workflow() (lib/workflows.c), shared with the anon
 * and shmem variants.
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/workflows.h"

int main(void)
{
	struct uffd u;
	struct t_wp_workflow w = {
		.u = &u, .ps = HPAGE, .npages = 2, .seed = 7,
		/* Where the worker writes: past the first 4 KiB of the page. */
		.off = 5 * PAGE + 100,
	};
	int fd;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM), 0);
	w.area = t_map_hugetlb(w.npages, &fd);
	t_wp_populate(&w);

	/* Less than a huge page is refused: protection is per huge page. */
	CHECK_EQ(uffd_writeprotect(&u, w.area, PAGE, true, 0), -EINVAL);
	/* Protect the first huge page: it faults, then no longer. */
	t_wp_workflow(&w);
	/* The second one was written around, never over. */
	CHECK(t_is_filled(w.area + w.ps, w.off, w.seed + 1));
	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
