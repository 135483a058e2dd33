/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's sched_setattr(2) ABI, as libuffd uses it.  glibc 2.36 (Debian
 * 12) has no struct sched_attr and no wrapper, and <linux/sched/types.h>
 * clashes with <sched.h>; the layout is fixed ABI (SCHED_ATTR_SIZE_VER1,
 * include/uapi/linux/sched/types.h).
 *
 * Internal: only src/ includes this file.
 */
#ifndef LIBUFFD_ABI_SCHED_H
#define LIBUFFD_ABI_SCHED_H

#include <stdint.h>

struct uffd__sched_attr {
	uint32_t size;			/* sizeof: 56, SCHED_ATTR_SIZE_VER1 */
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	/* SCHED_DEADLINE's; for SCHED_OTHER (Linux 6.12 on) sched_runtime
	 * is the thread's slice, 100 us to 100 ms (0: the default) */
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
	uint32_t sched_util_min;
	uint32_t sched_util_max;
};

#define UFFD__SCHED_SLICE_MIN_NS	100000ULL

#endif
