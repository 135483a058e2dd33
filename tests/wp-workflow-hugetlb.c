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
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define PS HPAGE
#define NPAGES 2
#define SEED 7
/* Where the worker writes: past the first 4 KiB of the huge page. */
#define OFF (5 * PAGE + 100)

/* A worker writes at p; the write must complete without a message. */
static void write_without_fault(struct uffd *u, char *p, char value)
{
	struct t_access a;

	t_access_start(&a, p, true, value);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_expect_no_event(u, 0);
	CHECK_EQ(*p, value);
}

int main(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	uint64_t ioctls;
	char *area;
	int fd, i;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM), 0);
	area = t_map_hugetlb(NPAGES, &fd);
	CHECK_OK(uffd_register(&u, area, NPAGES * PS, UFFD_REG_WP, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);
	for (i = 0; i < NPAGES; i++)
		t_fill(area + i * PS, PS, SEED + i);
	t_expect_no_event(&u, 0);

	/* Less than a huge page is refused: protection is per huge page. */
	CHECK_EQ(uffd_writeprotect(&u, area, PAGE, true, 0), -EINVAL);
	CHECK_OK(uffd_writeprotect(&u, area, PS, true, 0));

	t_access_start(&a, area + OFF, true, 0x77);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
	CHECK_EQ(ev.fault.write, true);
	CHECK_EQ(ev.fault.addr, (uintptr_t)area);
	CHECK(!t_access_wait(&a, 100));
	CHECK(t_is_filled(area, PS, SEED));

	CHECK_OK(uffd_writeprotect(&u, area, PS, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[OFF], 0x77);
	CHECK(t_is_filled(area, OFF, SEED));
	t_expect_no_event(&u, 0);

	write_without_fault(&u, area + PS + OFF, 0x11);
	write_without_fault(&u, area + OFF + 1, 0x22);
	CHECK_EQ(area[OFF], 0x77);
	CHECK(t_is_filled(area + PS, OFF, SEED + 1));
	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
