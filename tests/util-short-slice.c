// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * uffd__thread_short_slice() (src/util/slice.h): the calling thread's
 * slice becomes the kernel's minimum, 100 us, as sched_getattr(2) reads
 * it back; its policy stays SCHED_OTHER and its nice value what it was
 * (here 5, set first).  A thread started before keeps the default slice;
 * one started after inherits the short one (the kernel copies it at
 * clone: a caller must not start threads that should not have it).
 * A thread under another policy (SCHED_BATCH here) is left alone: -EPERM,
 * and its policy kept.  Skips where the kernel has no custom slices
 * (before Linux 6.12).
 */
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/harness.h"
#include "abi/sched.h"
#include "util/slice.h"

/* Under SCHED_BATCH: the call leaves it so.  Its result in *arg. */
static void *batch(void *arg)
{
	struct sched_param sp = { 0 };
	struct uffd__sched_attr a;

	CHECK_OK(sched_setscheduler(0, SCHED_BATCH, &sp));
	*(int *)arg = uffd__thread_short_slice();
	CHECK_EQ(sched_getscheduler(0), SCHED_BATCH);
	memset(&a, 0, sizeof(a));
	CHECK_OK((int)syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0));
	CHECK_EQ(a.sched_policy, (uint32_t)SCHED_BATCH);
	return NULL;
}

static int get_attr(pid_t tid, struct uffd__sched_attr *a)
{
	memset(a, 0, sizeof(*a));
	return syscall(SYS_sched_getattr, tid, a, sizeof(*a), 0) ? -errno : 0;
}

static pthread_barrier_t called;

/* Started before the call: reads its own slice once the call is done. */
static void *earlier(void *arg)
{
	struct uffd__sched_attr a;

	pthread_barrier_wait(&called);
	CHECK_OK(get_attr(0, &a));
	*(uint64_t *)arg = a.sched_runtime;
	return NULL;
}

static void *later(void *arg)
{
	struct uffd__sched_attr a;

	CHECK_OK(get_attr(0, &a));
	*(uint64_t *)arg = a.sched_runtime;
	return NULL;
}

int main(void)
{
	struct uffd__sched_attr before, after;
	uint64_t earlier_slice = 0, later_slice = 0;
	pthread_t t1, t2;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int ret;

	CHECK_OK(setpriority(PRIO_PROCESS, (id_t)tid, 5));
	CHECK_OK(get_attr(0, &before));
	CHECK_OK(pthread_barrier_init(&called, NULL, 2));
	CHECK_OK(pthread_create(&t1, NULL, earlier, &earlier_slice));
	ret = uffd__thread_short_slice();
	pthread_barrier_wait(&called);
	CHECK_OK(pthread_join(t1, NULL));
	if (ret == -EINVAL)
		SKIP("sched_setattr refuses a slice for SCHED_OTHER (a kernel before 6.12)");
	CHECK_OK(ret);
	CHECK_OK(get_attr(0, &after));
	if (after.sched_runtime == before.sched_runtime && before.sched_runtime != UFFD__SCHED_SLICE_MIN_NS)
		SKIP("the kernel ignores sched_runtime for SCHED_OTHER (before 6.12)");
	CHECK_EQ(after.sched_runtime, UFFD__SCHED_SLICE_MIN_NS);
	CHECK_EQ(after.sched_policy, (uint32_t)SCHED_OTHER);
	CHECK_EQ(after.sched_nice, 5);
	CHECK_EQ(getpriority(PRIO_PROCESS, (id_t)tid), 5);

	CHECK_EQ(earlier_slice, before.sched_runtime);
	CHECK(earlier_slice != UFFD__SCHED_SLICE_MIN_NS);
	CHECK_OK(pthread_create(&t2, NULL, later, &later_slice));
	CHECK_OK(pthread_join(t2, NULL));
	CHECK_EQ(later_slice, UFFD__SCHED_SLICE_MIN_NS);
	CHECK_OK(pthread_create(&t2, NULL, batch, &ret));
	CHECK_OK(pthread_join(t2, NULL));
	CHECK_EQ(ret, -EPERM);
	return T_EXIT_PASS;
}
