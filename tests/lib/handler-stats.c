/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The runtime tests' shared counter helpers (handler-stats.h). */
#include "handler-stats.h"

uint64_t t_hist_total(const struct uffd_handler_stats *s)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < UFFD_HIST_BUCKETS; i++)
		t += s->hist[i];
	return t;
}
