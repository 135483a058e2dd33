/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* wait_done(): a condition variable wait with an optional deadline. */
#include <errno.h>

#include "clock.h"

int wait_done(pthread_mutex_t *lock, pthread_cond_t *cond, const int *done,
	      int timeout_ms)
{
	struct timespec deadline;
	int ret = 0;

	/* Condition variables time out against CLOCK_REALTIME by default. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	if (timeout_ms > 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(lock);
	while (!__atomic_load_n(done, __ATOMIC_ACQUIRE) && !ret) {
		if (timeout_ms < 0)
			pthread_cond_wait(cond, lock);
		else if (timeout_ms == 0 ||
			 pthread_cond_timedwait(cond, lock, &deadline) == ETIMEDOUT)
			ret = -ETIMEDOUT;
	}
	pthread_mutex_unlock(lock);
	return ret;
}
