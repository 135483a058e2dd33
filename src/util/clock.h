/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library's clocks (monotonic for durations and deadlines, the wall
 * clock for timestamps), and "wait until done, with a deadline". */
#ifndef LIBUFFD_UTIL_CLOCK_H
#define LIBUFFD_UTIL_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Wall-clock time, for timestamps people read (an image's instant). */
static inline uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * Wait on cond (with lock) until *done is set: timeout_ms -1 forever, 0
 * not at all, > 0 at most that long.  0 when done, -ETIMEDOUT otherwise.
 */
int wait_done(pthread_mutex_t *lock, pthread_cond_t *cond, const int *done,
	      int timeout_ms);

#endif
