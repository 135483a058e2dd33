/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: with EVENT_REMOVE negotiated,
 * MADV_DONTNEED on part of a registered, populated anonymous range queues
 * one REMOVE message whose start and end are exactly the advised range; the
 * pages there are dropped, so the next access to each is a fresh MISSING
 * fault, while the pages outside the range keep their contents.
 *
 * The thread calling madvise() blocks until the REMOVE message is read, so
 * the madvise runs in a helper thread and the main thread reads the message
 * with a deadline.
 */
#include <sys/mman.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NPAGES 4

/* Touch one page in a thread: it must fault MISSING there; fill it. */
static void expect_missing_fault(struct uffd *u, char *page, const char *src)
{
	struct t_access a;

	t_access_start(&a, page + 9, false, 0);
	t_expect_fault(u, page, UFFD_FAULT_MISSING, false);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_copy(u, page, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[9]);
}

int main(void)
{
	struct uffd u;
	char *area, *src;
	int i;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 50);
	for (i = 0; i < NPAGES; i++)
		t_fill(area + i * PAGE, PAGE, 10 + i);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_MISSING, NULL));

	/* Drop pages 1 and 2: one REMOVE of exactly that range. */
	t_mm_expect_range_event(&u, T_MM_DONTNEED, area + PAGE, 2 * PAGE,
				UFFD_EV_REMOVE);

	/* Outside the advised range nothing changed (and nothing faults). */
	CHECK(t_is_filled(area, PAGE, 10));
	CHECK(t_is_filled(area + 3 * PAGE, PAGE, 13));

	/* Inside it each page is missing again. */
	expect_missing_fault(&u, area + PAGE, src);
	expect_missing_fault(&u, area + 2 * PAGE, src);
	CHECK(t_is_filled(area + PAGE, PAGE, 50));
	CHECK(t_is_filled(area + 2 * PAGE, PAGE, 50));

	t_expect_no_event(&u, 50);
	uffd_close(&u);
	return T_EXIT_PASS;
}
