/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A COPY onto a page that is already mapped fails with -EEXIST, reports
 * nothing done (*done == 0) and leaves the page as it was, whether the page
 * was filled by an earlier COPY or by a plain write before registration.
 * The same holds with UFFD_ONESHOT: nothing was done, so there is no
 * partial progress to report as -EAGAIN.
 *
 * Kernel behaviour libuffd relies on: UFFDIO_COPY on a present PTE writes
 * -EEXIST into uffdio_copy.copy and does not overwrite the page.
 */
#include <sys/mman.h>

#include "lib/harness.h"

int main(void)
{
	struct uffd u;
	char *area, *src;
	size_t done;

	t_open(&u, 0, 0);
	area = t_map_anon(2 * PAGE);
	src = t_map_anon(2 * PAGE);
	t_fill(src, PAGE, 1);
	t_fill(src + PAGE, PAGE, 2);

	/* Page 1 is populated before registration, by an ordinary write. */
	t_fill(area + PAGE, PAGE, 3);
	CHECK_OK(uffd_register(&u, area, 2 * PAGE, UFFD_REG_MISSING, NULL));

	/* Page 0 is populated by a first COPY (no fault pending: allowed). */
	CHECK_OK(uffd_copy(&u, area, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_is_filled(area, PAGE, 1));

	done = 12345;
	CHECK_EQ(uffd_copy(&u, area, src + PAGE, PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(t_is_filled(area, PAGE, 1));

	done = 12345;
	CHECK_EQ(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(t_is_filled(area + PAGE, PAGE, 3));

	/* Both pages at once: the first is EEXIST, so nothing at all. */
	done = 12345;
	CHECK_EQ(uffd_copy(&u, area, src, 2 * PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	done = 12345;
	CHECK_EQ(uffd_copy(&u, area, src, 2 * PAGE, UFFD_ONESHOT, &done),
		 -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(t_is_filled(area, PAGE, 1));
	CHECK(t_is_filled(area + PAGE, PAGE, 3));

	/* A NULL done is allowed and the error is the same. */
	CHECK_EQ(uffd_copy(&u, area, src, PAGE, 0, NULL), -EEXIST);
	CHECK(t_is_filled(area, PAGE, 1));
	t_expect_no_event(&u, 0);
	uffd_close(&u);
	return T_EXIT_PASS;
}
