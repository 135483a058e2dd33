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
 * Skips (with the reason) when hugetlb pages cannot be reserved.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 5

/* Touch a huge page through reg: it must raise a MINOR fault there. */
static void start_minor_fault(struct uffd *u, struct t_access *a, char *page)
{
	struct uffd_event ev;

	t_access_start(a, page + PAGE + 3, false, 0);
	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MINOR);
	CHECK_EQ(ev.fault.addr, (uintptr_t)page);
	CHECK_EQ(ev.fault.write, false);
	CHECK(!t_access_wait(a, 50));
}

int main(void)
{
	uint64_t features = UFFD_F(UFFD_FEAT_MINOR_HUGETLBFS) |
			    UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			    UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM);
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char *reg, *alias, *src;
	uint64_t ioctls;
	size_t done;
	int memfd;

	t_require(UFFD_FEAT_REG_MINOR_HUGETLB);
	t_require(UFFD_FEAT_REG_WP_HUGETLB);
	t_open(&u, features, 0);
	reg = t_map_hugetlb(NPAGES, &memfd);
	alias = t_map_shared(memfd, NPAGES * HPAGE);
	src = t_map_anon(HPAGE);
	t_fill(src, HPAGE, 99);
	/* Pages 0, 1, 2 and 4 are in the page cache; 3 is a hole. */
	t_fill(alias, HPAGE, 1);
	t_fill(alias + HPAGE, HPAGE, 2);
	t_fill(alias + 2 * HPAGE, HPAGE, 3);
	t_fill(alias + 4 * HPAGE, HPAGE, 5);
	CHECK_OK(uffd_register(&u, reg, NPAGES * HPAGE,
			       UFFD_REG_MINOR | UFFD_REG_WP, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_CONTINUE);
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);

	/* Page 0: new contents through the alias, then CONTINUE. */
	start_minor_fault(&u, &a, reg);
	t_fill(alias, HPAGE, 11);
	CHECK_OK(uffd_continue(&u, reg, HPAGE, 0, &done));
	CHECK_EQ(done, HPAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, alias[PAGE + 3]);
	CHECK(t_is_filled(reg, HPAGE, 11));

	/* Page 1: COPY cannot replace a cached page; CONTINUE maps it. */
	start_minor_fault(&u, &a, reg + HPAGE);
	done = 1;
	CHECK_EQ(uffd_copy(&u, reg + HPAGE, src, HPAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_continue(&u, reg + HPAGE, HPAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK(t_is_filled(reg + HPAGE, HPAGE, 2));

	/* Page 3: a hole cannot be continued. */
	done = 1;
	CHECK_EQ(uffd_continue(&u, reg + 3 * HPAGE, HPAGE, 0, &done), -EFAULT);
	CHECK_EQ(done, 0);

	/* Pages 2-3: the cached page is mapped, the hole is the error. */
	done = 0;
	CHECK_EQ(uffd_continue(&u, reg + 2 * HPAGE, 2 * HPAGE, 0, &done),
		 -EFAULT);
	CHECK_EQ(done, HPAGE);
	CHECK(t_is_filled(reg + 2 * HPAGE, HPAGE, 3));	/* no fault: mapped */

	/* Page 4: CONTINUE write-protected. */
	start_minor_fault(&u, &a, reg + 4 * HPAGE);
	CHECK_OK(uffd_continue(&u, reg + 4 * HPAGE, HPAGE, UFFD_MAP_WP, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, alias[4 * HPAGE + PAGE + 3]);
	t_access_start(&a, reg + 4 * HPAGE + 3 * PAGE + 8, true, 'w');
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(reg + 4 * HPAGE));
	CHECK_EQ(ev.fault.write, true);
	CHECK(!t_access_wait(&a, 50));
	CHECK(t_is_filled(alias + 4 * HPAGE, HPAGE, 5));
	CHECK_OK(uffd_writeprotect(&u, reg + 4 * HPAGE, HPAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(alias[4 * HPAGE + 3 * PAGE + 8], 'w');

	/* Page 3 again: a hole read through reg is filled by the kernel. */
	t_access_start(&a, reg + 3 * HPAGE + 1, false, 1);
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	t_expect_no_event(&u, 20);

	uffd_close(&u);
	munmap(reg, NPAGES * HPAGE);
	munmap(alias, NPAGES * HPAGE);
	close(memfd);
	return T_EXIT_PASS;
}
