/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: with EVENT_REMAP negotiated, an
 * mremap(MREMAP_MAYMOVE | MREMAP_FIXED) of a registered range queues one
 * REMAP message whose from, to and len are exactly the old address, the
 * new address and the length; the registration moves with the mapping, so
 * a fault at the new address is reported at the new address, present pages
 * travel along without faulting, and a COPY aimed at the old address fails
 * with -ENOENT (the layout changed).
 *
 * The thread calling mremap() blocks until the REMAP message is read, so
 * the mremap runs in a helper thread and the main thread reads the message
 * with a deadline.
 */
#include <sys/mman.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NPAGES 4

int main(void)
{
	struct t_mm_job job;
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char *area, *dest, *src;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMAP), 0);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 7);
	/* Page 0 is present before the move; the rest are missing. */
	t_fill(area, PAGE, 3);
	/* Reserve the destination so MREMAP_FIXED replaces nobody's pages. */
	dest = mmap(NULL, NPAGES * PAGE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(dest != MAP_FAILED);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_MISSING, NULL));

	t_mm_job_start(&job, T_MM_MREMAP, area, NPAGES * PAGE, dest);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_REMAP);
	CHECK_EQ(ev.remap.from, (uintptr_t)area);
	CHECK_EQ(ev.remap.to, (uintptr_t)dest);
	CHECK_EQ(ev.remap.len, NPAGES * PAGE);
	t_mm_job_join(&job);
	CHECK_EQ(job.err, 0);
	CHECK(job.res == dest);
	t_expect_no_event(&u, 50);

	/* The old address is gone: a COPY there finds no registered range. */
	CHECK_EQ(uffd_copy(&u, area + PAGE, src, PAGE, 0, NULL), -ENOENT);

	/* The present page moved with the mapping and does not fault. */
	CHECK(t_is_filled(dest, PAGE, 3));

	/* A missing page at the new address faults at the new address. */
	t_access_start(&a, dest + 2 * PAGE + 5, false, 0);
	t_expect_fault(&u, dest + 2 * PAGE, UFFD_FAULT_MISSING, false);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_copy(&u, dest + 2 * PAGE, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ((unsigned char)a.value, ((unsigned char *)src)[5]);
	CHECK(t_is_filled(dest + 2 * PAGE, PAGE, 7));

	t_expect_no_event(&u, 50);
	uffd_close(&u);
	return T_EXIT_PASS;
}
