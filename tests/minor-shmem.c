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
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 7

/* Touch a page through reg: it must raise a MINOR fault there. */
static void start_minor_fault(struct uffd *u, struct t_access *a, char *page,
			      bool write, char value)
{
	struct uffd_event ev;

	t_access_start(a, page + 3, write, value);
	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MINOR);
	CHECK_EQ(ev.fault.addr, (uintptr_t)page);
	CHECK_EQ(ev.fault.write, write);
	CHECK(!t_access_wait(a, 50));
}

int main(void)
{
	uint64_t features = UFFD_F(UFFD_FEAT_MINOR_SHMEM) |
			    UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			    UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM);
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char *reg, *alias, *src;
	uint64_t ioctls;
	size_t done;
	int memfd;

	t_require(UFFD_FEAT_REG_MINOR_SHMEM);
	t_require(UFFD_FEAT_REG_WP_SHMEM);
	t_open(&u, features, 0);
	reg = t_map_memfd(NPAGES * PAGE, &memfd);
	alias = t_map_shared(memfd, NPAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 99);
	/* Pages 0, 1, 3 and 5 are in the page cache; 2, 4 and 6 are holes. */
	t_fill(alias, PAGE, 1);
	t_fill(alias + PAGE, PAGE, 2);
	t_fill(alias + 3 * PAGE, PAGE, 4);
	t_fill(alias + 5 * PAGE, PAGE, 6);
	CHECK_OK(uffd_register(&u, reg, NPAGES * PAGE,
			       UFFD_REG_MINOR | UFFD_REG_WP, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_CONTINUE);
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);

	/* Page 0: new contents through the alias, then CONTINUE. */
	start_minor_fault(&u, &a, reg, false, 0);
	t_fill(alias, PAGE, 11);
	CHECK_OK(uffd_continue(&u, reg, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, alias[3]);
	CHECK(t_is_filled(reg, PAGE, 11));

	/* Page 1: COPY cannot replace a cached page; CONTINUE maps it. */
	start_minor_fault(&u, &a, reg + PAGE, false, 0);
	done = 1;
	CHECK_EQ(uffd_copy(&u, reg + PAGE, src, PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_continue(&u, reg + PAGE, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK(t_is_filled(reg + PAGE, PAGE, 2));
	CHECK(t_is_filled(alias + PAGE, PAGE, 2));

	/* Page 2: a hole in the memfd cannot be continued. */
	done = 1;
	CHECK_EQ(uffd_continue(&u, reg + 2 * PAGE, PAGE, 0, &done), -EFAULT);
	CHECK_EQ(done, 0);

	/* Pages 3-4: the cached page is mapped, the hole is the error. */
	done = 0;
	CHECK_EQ(uffd_continue(&u, reg + 3 * PAGE, 2 * PAGE, 0, &done), -EFAULT);
	CHECK_EQ(done, PAGE);
	CHECK(t_is_filled(reg + 3 * PAGE, PAGE, 4));	/* no fault: mapped */

	/* Page 5: CONTINUE write-protected. */
	start_minor_fault(&u, &a, reg + 5 * PAGE, false, 0);
	CHECK_OK(uffd_continue(&u, reg + 5 * PAGE, PAGE, UFFD_MAP_WP, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, alias[5 * PAGE + 3]);
	t_access_start(&a, reg + 5 * PAGE + 8, true, 'w');
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(reg + 5 * PAGE));
	CHECK_EQ(ev.fault.write, true);
	CHECK(!t_access_wait(&a, 50));
	CHECK(t_is_filled(alias + 5 * PAGE, PAGE, 6));
	CHECK_OK(uffd_writeprotect(&u, reg + 5 * PAGE, PAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(alias[5 * PAGE + 8], 'w');

	/* Page 6: a hole read through reg is filled by the kernel. */
	t_access_start(&a, reg + 6 * PAGE + 1, false, 1);
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	t_expect_no_event(&u, 20);

	uffd_close(&u);
	close(memfd);
	return T_EXIT_PASS;
}
