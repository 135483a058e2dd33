/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A change to the memory map (MADV_DONTNEED, munmap, mremap) made from a
 * helper thread.  With the matching event negotiated, the kernel blocks the
 * thread making the change until its message has been read, so a test must
 * not make it from the thread that reads the messages: it starts the job,
 * reads (or lets the handler read) the event, then joins and checks the
 * call's result.
 */
#ifndef LIBUFFD_TEST_MM_JOB_H
#define LIBUFFD_TEST_MM_JOB_H

#include "harness.h"

enum t_mm_op {
	T_MM_DONTNEED,		/* madvise(addr, len, MADV_DONTNEED) */
	T_MM_MUNMAP,		/* munmap(addr, len) */
	T_MM_MREMAP,		/* mremap(addr, len, len, MAYMOVE|FIXED, to) */
	T_MM_MREMAP_DONTUNMAP,	/* the same, | MREMAP_DONTUNMAP */
};

struct t_mm_job {
	pthread_t thread;
	enum t_mm_op op;
	char *addr, *to;
	size_t len;
	int started;		/* atomic: 1 just before the call is made */
	int done;		/* atomic: 1 once the call has returned */
	int ret;		/* 0, or -1 if the call failed */
	int err;		/* errno if it failed, else 0 */
	void *res;		/* mremap: where the mapping is now */
};

void t_mm_job_start(struct t_mm_job *j, enum t_mm_op op, void *addr,
		    size_t len, void *to);
/* Wait up to ms for the call to return; true if it did. */
bool t_mm_job_wait(struct t_mm_job *j, int ms);
void t_mm_job_join(struct t_mm_job *j);

/*
 * Run op on [addr, addr + len) in a helper thread: the one message it
 * queues must be of this type (REMOVE or UNMAP) with exactly that range;
 * then the call must have succeeded, and no other message may follow
 * within 50 ms.
 */
void t_mm_expect_range_event(struct uffd *u, enum t_mm_op op, void *addr,
			     size_t len, enum uffd_event_type type);

#endif
