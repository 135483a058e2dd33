/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: a MISSING fault on private anonymous
 * memory is resolved by UFFDIO_COPY with exactly the bytes copied, and the
 * faulting thread resumes; the fault message carries the page address, the
 * MISSING kind and the read/write flag.
 */
#include <sys/mman.h>

#include "lib/harness.h"

int main(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	uint64_t ioctls;
	char *area, *src;
	size_t done;

	t_open(&u, 0, 0);
	area = t_map_anon(4 * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 1);
	CHECK_OK(uffd_register(&u, area, 4 * PAGE, UFFD_REG_MISSING, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_COPY);
	CHECK(ioctls & UFFD_IOCTL_ZEROPAGE);
	CHECK(ioctls & UFFD_IOCTL_WAKE);

	t_access_start(&a, area + PAGE + 100, false, 0);
	t_expect_fault(&u, area + PAGE, UFFD_FAULT_MISSING, false);
	CHECK(!t_access_wait(&a, 50));

	CHECK_OK(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ((unsigned char)a.value, ((unsigned char *)src)[100]);
	CHECK(t_is_filled(area + PAGE, PAGE, 1));

	/* A write fault is flagged as a write. */
	t_access_start(&a, area + 3 * PAGE, true, 42);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + 3 * PAGE));
	CHECK_EQ(ev.fault.write, true);
	CHECK_OK(uffd_copy(&u, area + 3 * PAGE, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[3 * PAGE], 42);
	CHECK(t_is_filled(area + 3 * PAGE + 1, PAGE - 1, 1) ||
	      memcmp(area + 3 * PAGE + 1, src + 1, PAGE - 1) == 0);
	uffd_close(&u);
	return T_EXIT_PASS;
}
