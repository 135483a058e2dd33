/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The two COPY modes.  UFFD_MAP_WP maps the copied page write-protected in
 * a MISSING|WP range: the read that faulted resumes, and a later write
 * raises a WP fault (as does the write that faulted, when the MISSING fault
 * was a write: it is reported again as WP) and lands only once the page is
 * un-protected; a COPY without it maps the page writable.  UFFD_DONTWAKE
 * fills the page but leaves the faulting thread asleep (still blocked 100 ms
 * later) until uffd_wake() on the range.
 *
 * Kernel behaviour libuffd relies on: UFFDIO_COPY_MODE_WP sets the uffd-wp
 * bit on the new PTE; UFFDIO_COPY_MODE_DONTWAKE skips wake_userfault() and
 * the fault handler sleeps until UFFDIO_WAKE, not until the page appears.
 */
#include <sys/mman.h>

#include "lib/harness.h"

#define NPAGES 4

int main(void)
{
	struct t_access a;
	struct uffd u;
	char *area, *src;
	size_t done;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 4);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE,
			       UFFD_REG_MISSING | UFFD_REG_WP, NULL));

	/* Page 0: a read fault resolved by COPY|MAP_WP. */
	t_access_start(&a, area + 10, false, 0);
	t_expect_fault(&u, area, UFFD_FAULT_MISSING, false);
	CHECK_OK(uffd_copy(&u, area, src, PAGE, UFFD_MAP_WP, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[10]);
	/* The later write is stopped by the protection. */
	t_access_start(&a, area + 20, true, 0x71);
	t_expect_fault(&u, area, UFFD_FAULT_WP, true);
	CHECK(!t_access_wait(&a, 100));
	CHECK(t_is_filled(area, PAGE, 4));
	CHECK_OK(uffd_writeprotect(&u, area, PAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[20], 0x71);
	t_expect_no_event(&u, 0);

	/* Page 1: a write fault resolved by COPY|MAP_WP comes back as WP. */
	t_access_start(&a, area + PAGE + 30, true, 0x72);
	t_expect_fault(&u, area + PAGE, UFFD_FAULT_MISSING, true);
	CHECK_OK(uffd_copy(&u, area + PAGE, src + PAGE, PAGE, UFFD_MAP_WP,
			   &done));
	CHECK_EQ(done, PAGE);
	t_expect_fault(&u, area + PAGE, UFFD_FAULT_WP, true);
	CHECK(!t_access_wait(&a, 100));
	CHECK(memcmp(area + PAGE, src + PAGE, PAGE) == 0);
	CHECK_OK(uffd_writeprotect(&u, area + PAGE, PAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[PAGE + 30], 0x72);
	t_expect_no_event(&u, 0);

	/* Page 2: a plain COPY maps it writable: the write just lands. */
	t_access_start(&a, area + 2 * PAGE + 40, true, 0x73);
	t_expect_fault(&u, area + 2 * PAGE, UFFD_FAULT_MISSING, true);
	CHECK_OK(uffd_copy(&u, area + 2 * PAGE, src + 2 * PAGE, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[2 * PAGE + 40], 0x73);
	t_expect_no_event(&u, 0);

	/* Page 3: DONTWAKE fills the page but the reader sleeps on. */
	t_access_start(&a, area + 3 * PAGE + 50, false, 0);
	t_expect_fault(&u, area + 3 * PAGE, UFFD_FAULT_MISSING, false);
	CHECK_OK(uffd_copy(&u, area + 3 * PAGE, src + 3 * PAGE, PAGE,
			   UFFD_DONTWAKE, &done));
	CHECK_EQ(done, PAGE);
	CHECK(memcmp(area + 3 * PAGE, src + 3 * PAGE, PAGE) == 0);
	CHECK(!t_access_wait(&a, 100));
	t_expect_no_event(&u, 0);
	CHECK_OK(uffd_wake(&u, area + 3 * PAGE, PAGE));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[3 * PAGE + 50]);
	t_expect_no_event(&u, 0);

	uffd_close(&u);
	return T_EXIT_PASS;
}
