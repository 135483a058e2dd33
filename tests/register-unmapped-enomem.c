/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_register() of a range where nothing is mapped fails with -ENOMEM,
 * as uffd.h promises ("-ENOMEM: no mapping covers part of the range"), and
 * reports no ioctls; the -EINVAL it is told apart from means bad input or
 * a mode the memory rejects.  Checked on a hole between two mappings,
 * which still register on their own.
 *
 * Kernel 6.18 itself answers UFFDIO_REGISTER on such a range with EINVAL
 * (its vma_find() miss shares the EINVAL path), so this holds only if the
 * library tells the two apart.
 */
#include <sys/mman.h>

#include "lib/harness.h"

int main(void)
{
	struct uffd u;
	uint64_t ioctls;
	char *hole;

	t_open(&u, 0, 0);
	hole = t_map_anon(4 * PAGE);
	CHECK_OK(munmap(hole + PAGE, 2 * PAGE));

	ioctls = 1;
	CHECK_EQ(uffd_register(&u, hole + PAGE, 2 * PAGE, UFFD_REG_MISSING,
			       &ioctls), -ENOMEM);
	CHECK_EQ(ioctls, 0);

	/* The mappings on either side still register. */
	CHECK_OK(uffd_register(&u, hole, PAGE, UFFD_REG_MISSING, NULL));
	CHECK_OK(uffd_register(&u, hole + 3 * PAGE, PAGE, UFFD_REG_MISSING,
			       NULL));
	uffd_close(&u);
	return T_EXIT_PASS;
}
