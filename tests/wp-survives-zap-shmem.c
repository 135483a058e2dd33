/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write protection on shmem survives MADV_DONTNEED.  Zapping a protected,
 * populated shmem page drops its PTE but not its protection: the next write
 * still raises a WP fault (also when a read mapped the page back first), and
 * after un-protection the write lands on the page's earlier contents, which
 * the zap did not lose (they live in the page cache).  A page of the range
 * that was not protected is written freely after the same zap.
 *
 * Kernel behaviour libuffd relies on: zapping a uffd-wp file PTE leaves a
 * uffd-wp PTE marker behind, which the next fault turns back into a
 * protected PTE.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/workflows.h"

#define NPAGES 4
#define SEED 3

int main(void)
{
	struct t_access a;
	struct uffd u;
	char *area, *view;
	int fd, i;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM), 0);
	area = t_map_memfd(NPAGES * PAGE, &fd);
	view = t_map_shared(fd, NPAGES * PAGE);	/* unregistered */
	for (i = 0; i < NPAGES; i++)
		t_fill(area + i * PAGE, PAGE, SEED + i);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_WP, NULL));
	CHECK_OK(uffd_writeprotect(&u, area + PAGE, 2 * PAGE, true, 0));

	CHECK_OK(madvise(area, NPAGES * PAGE, MADV_DONTNEED));
	t_expect_no_event(&u, 0);

	/* Page 2: written right after the zap. */
	t_wp_write_begin(&u, &a, area + 2 * PAGE, area + 2 * PAGE + 50, 0x61);
	t_wp_write_end(&u, &a, area + 2 * PAGE, PAGE);
	CHECK(t_is_filled(area + 2 * PAGE, 50, SEED + 2));
	CHECK_EQ(view[2 * PAGE + 50], 0x61);

	/* Page 1: read back in first (no fault, old contents), then written. */
	t_access_start(&a, area + PAGE + 60, false, 0);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_expect_no_event(&u, 0);
	CHECK(t_is_filled(area + PAGE, PAGE, SEED + 1));
	t_wp_write_begin(&u, &a, area + PAGE, area + PAGE + 60, 0x62);
	t_wp_write_end(&u, &a, area + PAGE, PAGE);
	CHECK(t_is_filled(area + PAGE, 60, SEED + 1));
	CHECK_EQ(view[PAGE + 60], 0x62);

	/* Page 3 was never protected: the zap did not protect it either. */
	t_access_start(&a, area + 3 * PAGE + 70, true, 0x63);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_expect_no_event(&u, 0);
	CHECK_EQ(view[3 * PAGE + 70], 0x63);
	CHECK(t_is_filled(area + 3 * PAGE, 70, SEED + 3));

	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
