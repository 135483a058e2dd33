/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_copy() accepts a source that is not page-aligned, as UFFDIO_COPY
 * does: only the destination and the length must be page-aligned (the
 * kernel copies from src with copy_from_user, at any address).  A handler
 * that receives page data after a header in a network buffer copies it
 * straight from there.  The bytes copied are exactly those at src.  (MOVE
 * moves whole pages and does need an aligned source: see bad-input.c.)
 *
 * Kernel behaviour libuffd relies on: UFFDIO_COPY validates dst and len
 * alignment and that [src, src+len) does not wrap, nothing more about src.
 */
#include <sys/mman.h>

#include "lib/harness.h"

#define HEADER 24	/* bytes before the page data in the source buffer */

int main(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char *area, *buf;
	size_t done;

	t_open(&u, 0, 0);
	area = t_map_anon(2 * PAGE);
	buf = t_map_anon(3 * PAGE);
	t_fill(buf + HEADER, 2 * PAGE, 6);
	CHECK_OK(uffd_register(&u, area, 2 * PAGE, UFFD_REG_MISSING, NULL));

	t_access_start(&a, area + PAGE + 99, false, 0);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + PAGE));
	done = 0;
	CHECK_OK(uffd_copy(&u, area, buf + HEADER, 2 * PAGE, 0, &done));
	CHECK_EQ(done, 2 * PAGE);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK(t_is_filled(area, 2 * PAGE, 6));
	CHECK_EQ(a.value, buf[HEADER + PAGE + 99]);

	/* A wrapping source is still refused. */
	done = 1;
	CHECK_EQ(uffd_copy(&u, area, (void *)(uintptr_t)(UINT64_MAX - 8), PAGE,
			   0, &done), -EINVAL);
	CHECK_EQ(done, 0);

	t_expect_no_event(&u, 0);
	uffd_close(&u);
	return T_EXIT_PASS;
}
