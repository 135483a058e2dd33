/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on, and the errors uffd_copy() promises
 * for it:
 *
 *  - COPY into a registered range that has since been unmapped fails with
 *    -ENOENT, and so does COPY into an address that was mapped again
 *    without registering it (no event feature here, so munmap never
 *    blocks).  Nothing is copied (*done == 0).
 *  - COPY while a non-cooperative event is queued and unread fails with
 *    -EAGAIN and copies nothing: the kernel raises mmap_changing for the
 *    userfaultfd from the moment MADV_DONTNEED queues its REMOVE message
 *    until that message is read and madvise() returns.  Afterwards the same
 *    COPY succeeds.
 */
#include <sys/mman.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NPAGES 4

static void copy_after_unmap(const char *src)
{
	struct uffd u;
	char *area, *again;
	size_t done;

	t_open(&u, 0, 0);
	area = t_map_anon(NPAGES * PAGE);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_MISSING, NULL));
	/* Sanity: the range takes a COPY while it is mapped. */
	CHECK_OK(uffd_copy(&u, area, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);

	CHECK_EQ(munmap(area + PAGE, 2 * PAGE), 0);
	done = 1;
	CHECK_EQ(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done), -ENOENT);
	CHECK_EQ(done, 0);
	/* A range straddling the hole fails on its first page too. */
	done = 1;
	CHECK_EQ(uffd_copy(&u, area + 2 * PAGE, src, 2 * PAGE, 0, &done),
		 -ENOENT);
	CHECK_EQ(done, 0);

	/* Mapped again, but not registered: still -ENOENT. */
	again = mmap(area + PAGE, 2 * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(again == area + PAGE);
	done = 1;
	CHECK_EQ(uffd_copy(&u, again, src, PAGE, 0, &done), -ENOENT);
	CHECK_EQ(done, 0);
	CHECK(t_is_zero(again, 2 * PAGE));

	/* The registered page left behind still takes a COPY. */
	CHECK_OK(uffd_copy(&u, area + 3 * PAGE, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_is_filled(area + 3 * PAGE, PAGE, 4));
	t_expect_no_event(&u, 20);
	uffd_close(&u);
	munmap(area, NPAGES * PAGE);
}

static void copy_while_event_pending(const char *src)
{
	struct t_mm_job job;
	struct uffd_event ev;
	struct uffd u;
	char *area;
	size_t done;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	area = t_map_anon(NPAGES * PAGE);
	t_fill(area, PAGE, 8);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_MISSING, NULL));

	/* The helper's madvise blocks until its REMOVE message is read. */
	t_mm_job_start(&job, T_MM_DONTNEED, area, PAGE, NULL);
	while (!__atomic_load_n(&job.started, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	t_sleep_ms(200);

	done = 1;
	CHECK_EQ(uffd_copy(&u, area + 2 * PAGE, src, PAGE, 0, &done), -EAGAIN);
	CHECK_EQ(done, 0);
	/* ONESHOT or not, the answer is the same: nothing was done. */
	CHECK_EQ(uffd_copy(&u, area + 2 * PAGE, src, PAGE, UFFD_ONESHOT, &done),
		 -EAGAIN);
	CHECK_EQ(done, 0);

	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_REMOVE);
	CHECK_EQ(ev.range.start, (uintptr_t)area);
	CHECK_EQ(ev.range.end, (uintptr_t)(area + PAGE));
	/* Once madvise has returned the event is complete. */
	t_mm_job_join(&job);
	CHECK_EQ(job.ret, 0);
	CHECK_EQ(job.err, 0);

	CHECK_OK(uffd_copy(&u, area + 2 * PAGE, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_is_filled(area + 2 * PAGE, PAGE, 4));
	t_expect_no_event(&u, 20);
	uffd_close(&u);
}

int main(void)
{
	char *src = t_map_anon(2 * PAGE);

	t_fill(src, 2 * PAGE, 4);
	copy_after_unmap(src);
	copy_while_event_pending(src);
	return T_EXIT_PASS;
}
