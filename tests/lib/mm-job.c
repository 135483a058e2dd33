/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory-map changes made from a helper thread (mm-job.h). */
#include <sys/mman.h>

#include "mm-job.h"

static void *mm_job_main(void *arg)
{
	struct t_mm_job *j = arg;

	__atomic_store_n(&j->started, 1, __ATOMIC_RELEASE);
	switch (j->op) {
	case T_MM_DONTNEED:
		j->ret = madvise(j->addr, j->len, MADV_DONTNEED);
		break;
	case T_MM_MUNMAP:
		j->ret = munmap(j->addr, j->len);
		break;
	case T_MM_MREMAP:
		j->res = mremap(j->addr, j->len, j->len,
				MREMAP_MAYMOVE | MREMAP_FIXED, j->to);
		j->ret = j->res == MAP_FAILED ? -1 : 0;
		break;
	case T_MM_MREMAP_DONTUNMAP:
		j->res = mremap(j->addr, j->len, j->len,
				MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, j->to);
		j->ret = j->res == MAP_FAILED ? -1 : 0;
		break;
	}
	j->err = j->ret ? errno : 0;
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void t_mm_job_start(struct t_mm_job *j, enum t_mm_op op, void *addr,
		    size_t len, void *to)
{
	memset(j, 0, sizeof(*j));
	j->op = op;
	j->addr = addr;
	j->len = len;
	j->to = to;
	if (pthread_create(&j->thread, NULL, mm_job_main, j))
		FAIL("pthread_create");
}

bool t_mm_job_wait(struct t_mm_job *j, int ms)
{
	return t_wait_flag(&j->done, ms);
}

void t_mm_job_join(struct t_mm_job *j)
{
	pthread_join(j->thread, NULL);
}

void t_mm_expect_range_event(struct uffd *u, enum t_mm_op op, void *addr,
			     size_t len, enum uffd_event_type type)
{
	struct t_mm_job job;
	struct uffd_event ev;

	t_mm_job_start(&job, op, addr, len, NULL);
	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, type);
	CHECK_EQ(ev.range.start, (uintptr_t)addr);
	CHECK_EQ(ev.range.end, (uintptr_t)addr + len);
	t_mm_job_join(&job);
	CHECK_EQ(job.ret, 0);
	CHECK_EQ(job.err, 0);
	t_expect_no_event(u, 50);
}
