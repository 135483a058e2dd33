/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A short slice for a thread on a latency path.
 *
 * EEVDF (Linux 6.6 on) lets a thread that wakes run at once only if its
 * virtual deadline is earlier than the running thread's; otherwise it
 * waits until that thread's slice is used up.  Here the default slice came
 * to about a millisecond: a migration's page request whose answering
 * thread woke on a CPU busy with a thread of another program waited 1-3.5
 * ms (perf sched timehist), much of the requests' p99.  A
 * thread can ask for a shorter slice of its own (sched_setattr's
 * sched_runtime for SCHED_OTHER, Linux 6.12 on, no privilege needed): its
 * deadlines come sooner, so it preempts when it wakes.  It gets no more
 * CPU than before over time - its nice value decides that - only sooner.
 * Older kernels ignore the field or refuse it; either way nothing else
 * changes.  A thread the program runs under another policy (real-time,
 * batch, idle: libuffd's threads inherit their creator's) keeps it.
 */
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>

#include "abi/sched.h"
#include "slice.h"

int uffd__thread_short_slice(void)
{
	struct uffd__sched_attr a = {
		.size = sizeof(a),
		.sched_policy = SCHED_OTHER,
		.sched_runtime = UFFD__SCHED_SLICE_MIN_NS,
	};
	int nice;

	if (sched_getscheduler(0) != SCHED_OTHER)
		return -EPERM;		/* not ours to change */
	errno = 0;
	nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	if (nice == -1 && errno)
		return -errno;
	a.sched_nice = nice;
	return syscall(SYS_sched_setattr, 0, &a, 0) ? -errno : 0;
}
