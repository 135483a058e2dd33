/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef LIBUFFD_UTIL_SLICE_H
#define LIBUFFD_UTIL_SLICE_H

/*
 * Ask the scheduler for the shortest slice for the calling thread, which
 * stays SCHED_OTHER at its nice value: for a thread on a latency path
 * that sleeps most of the time (see slice.c).  Best effort: 0, -EPERM
 * for a thread under another policy (left alone), or the kernel's -errno
 * (nothing changed then).
 */
int uffd__thread_short_slice(void);

#endif
