/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: with EVENT_UNMAP negotiated, munmap()
 * of part of a registered range queues one UNMAP message whose start and
 * end are exactly the unmapped range.  Afterwards a COPY into the unmapped
 * part fails with -ENOENT, and the parts left on either side are still
 * registered (a missing page there still faults).
 *
 * The thread calling munmap() blocks until the UNMAP message is read, so
 * the munmap runs in a helper thread and the main thread reads the message
 * with a deadline.
 */
#include <sys/mman.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NPAGES 4

int main(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char *area, *src;
	size_t done;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_UNMAP), 0);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 21);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_MISSING, NULL));

	/* Unmap pages 1 and 2: one UNMAP of exactly that range. */
	t_mm_expect_range_event(&u, T_MM_MUNMAP, area + PAGE, 2 * PAGE,
				UFFD_EV_UNMAP);

	/* Nothing is mapped there any more. */
	done = 1;
	CHECK_EQ(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done), -ENOENT);
	CHECK_EQ(done, 0);

	/* Both remaining pieces are still registered. */
	t_access_start(&a, area + 3 * PAGE, true, 77);
	t_expect_fault(&u, area + 3 * PAGE, UFFD_FAULT_MISSING, true);
	CHECK_OK(uffd_copy(&u, area + 3 * PAGE, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[3 * PAGE], 77);
	CHECK(memcmp(area + 3 * PAGE + 1, src + 1, PAGE - 1) == 0);

	t_access_start(&a, area, false, 0);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.addr, (uintptr_t)area);
	CHECK_OK(uffd_zeropage(&u, area, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);

	t_expect_no_event(&u, 50);
	uffd_close(&u);
	return T_EXIT_PASS;
}
