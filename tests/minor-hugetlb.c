/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: MINOR faults on hugetlbfs, the same
 * workflow as on shmem with 2 MiB pages.  A hugetlbfs memfd is mapped
 * twice: "reg", registered MINOR|WP, and "alias", a plain second mapping
 * through which the test fills the page cache.
 *
 *  - The first touch through reg of a huge page that is in the page cache
 *    raises a MINOR fault at the huge page's address; contents written
 *    through the alias meanwhile are what reg shows after CONTINUE, which
 *    wakes the faulting thread.
 *  - COPY onto such a page fails with -EEXIST and copies nothing.
 *  - CONTINUE over a hole in the file fails with -EFAULT; over a cached
 *    page followed by a hole, one huge page is done and then -EFAULT.
 *  - CONTINUE with UFFD_MAP_WP maps the page write-protected: a later
 *    write raises a WP fault; un-protecting lets it through.
 *  - A hole touched through reg is filled by the kernel with no message.
 *
 * The steps are t_minor_workflow() (lib/workflows.c), shared with
 * minor-shmem.  Skips (with the reason) when hugetlb pages cannot be reserved.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/workflows.h"

#define NPAGES 5

int main(void)
{
	uint64_t features = UFFD_F(UFFD_FEAT_MINOR_HUGETLBFS) |
			    UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			    UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM);
	/* The accesses land past the first 4 KiB of each huge page. */
	struct t_minor_workflow m = {
		.ps = HPAGE, .npages = NPAGES,
		.read_off = PAGE + 3, .write_off = 3 * PAGE + 8,
		.hole = 3, .cached_then_hole = 2, .wp = 4, .read_hole = 3,
	};
	struct uffd u;
	int memfd;

	t_require(UFFD_FEAT_REG_MINOR_HUGETLB);
	t_require(UFFD_FEAT_REG_WP_HUGETLB);
	t_open(&u, features, 0);
	m.u = &u;
	m.reg = t_map_hugetlb(NPAGES, &memfd);
	m.alias = t_map_shared(memfd, NPAGES * HPAGE);
	m.src = t_map_anon(HPAGE);
	t_fill(m.src, HPAGE, 99);
	/* Pages 0, 1, 2 and 4 are in the page cache; 3 is a hole. */
	t_fill(m.alias, HPAGE, 1);
	t_fill(m.alias + HPAGE, HPAGE, 2);
	t_fill(m.alias + 2 * HPAGE, HPAGE, 3);
	t_fill(m.alias + 4 * HPAGE, HPAGE, 5);
	t_minor_workflow(&m);

	uffd_close(&u);
	munmap(m.reg, NPAGES * HPAGE);
	munmap(m.alias, NPAGES * HPAGE);
	close(memfd);
	return T_EXIT_PASS;
}
