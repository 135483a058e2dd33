/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The allocation budget a test sets (failalloc.h): -1, unlimited, unless
 * a test armed it. */
#include "failalloc.h"

static long budget = -1;	/* allocations still allowed; < 0: all */
static long refused;

long uffd__fail_alloc_after(long n)
{
	long was = __atomic_exchange_n(&refused, 0, __ATOMIC_SEQ_CST);

	__atomic_store_n(&budget, n < 0 ? -1 : n, __ATOMIC_SEQ_CST);
	return was;
}

bool uffd__alloc_fails(void)
{
	long b = __atomic_load_n(&budget, __ATOMIC_RELAXED);

	/* Take one from a positive budget; an empty one refuses. */
	while (b > 0 && !__atomic_compare_exchange_n(&budget, &b, b - 1, false,
						     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (b != 0)
		return false;
	__atomic_fetch_add(&refused, 1, __ATOMIC_RELAXED);
	errno = ENOMEM;
	return true;
}
