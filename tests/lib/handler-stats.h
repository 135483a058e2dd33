/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the runtime (uffd/handler.h) tests share: reading and waiting for
 * the handler's counters.  A fault's pages_resolved/eexist/latency
 * counters are added after the fill that woke its thread, so a test that
 * has seen its access complete may still read the old values: WAIT_STATS
 * polls (1 s at most) until its condition holds, then the test asserts.  A
 * macro, so the condition is any expression over the stats just read.
 */
#ifndef LIBUFFD_TEST_HANDLER_STATS_H
#define LIBUFFD_TEST_HANDLER_STATS_H

#include <uffd/handler.h>

#include "harness.h"

#define WAIT_STATS(h, s, cond) do {					\
	int _w;								\
	for (_w = 0; _w < 1000; _w++) {					\
		CHECK_OK(uffd_handler_stats((h), &(s)));		\
		if (cond)						\
			break;						\
		t_sleep_ms(1);						\
	}								\
} while (0)

/* Latency samples recorded: the sum of the histogram's buckets. */
uint64_t t_hist_total(const struct uffd_handler_stats *s);

#endif
