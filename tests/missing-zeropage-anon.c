/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_zeropage() resolves a MISSING read fault on private anonymous memory
 * with a page of zeros: it reports the whole length done, the faulting
 * thread resumes and reads 0, and only the page asked for is filled (its
 * neighbour still faults).
 *
 * Kernel behaviour libuffd relies on: UFFDIO_ZEROPAGE on a missing anon
 * page maps the zero page and wakes the thread waiting on it.
 */
#include <sys/mman.h>

#include "lib/harness.h"

int main(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	uint64_t ioctls;
	char *area;
	size_t done;

	t_open(&u, 0, 0);
	area = t_map_anon(4 * PAGE);
	CHECK_OK(uffd_register(&u, area, 4 * PAGE, UFFD_REG_MISSING, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_ZEROPAGE);

	t_access_start(&a, area + 2 * PAGE + 123, false, 0x5a);
	t_expect_fault(&u, area + 2 * PAGE, UFFD_FAULT_MISSING, false);
	CHECK(!t_access_wait(&a, 50));

	done = 1;
	CHECK_OK(uffd_zeropage(&u, area + 2 * PAGE, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	CHECK(t_is_zero(area + 2 * PAGE, PAGE));

	/* Only that page was filled: a zeropage there again is EEXIST ... */
	done = 1;
	CHECK_EQ(uffd_zeropage(&u, area + 2 * PAGE, PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);

	/* ... and the page after it still faults. */
	t_access_start(&a, area + 3 * PAGE, false, 0x5a);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + 3 * PAGE));
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_zeropage(&u, area + 3 * PAGE, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	t_expect_no_event(&u, 0);
	uffd_close(&u);
	return T_EXIT_PASS;
}
