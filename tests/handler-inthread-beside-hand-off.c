// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An in-thread handler and a hand-off handler in one process, on adjacent
 * regions, each resolving its own faults its own way:
 *  - region A (in-thread, a SIGBUS userfaultfd): a fault is resolved by
 *    the thread that took it; its callback copies its page from region B,
 *    so a page of B not there yet faults inside A's callback - from the
 *    kernel's UFFDIO_COPY - and waits for B's servicing thread;
 *  - region B (hand-off, started) right after A: a fault is resolved by
 *    B's servicing thread, f->tid the thread that faulted (THREAD_ID).
 * Four threads read their quarter of both, half of them A's page first,
 * half B's.  Every page of A ends up as B's, B's as its source; each of
 * A's pages was resolved by its reader, none of B's by a reader; A read no
 * message.  Then B's handler goes first, and A keeps resolving in-thread
 * (a new region); then A goes, and the SIGBUS action is the default again.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

#define NPAGES 64
#define NAPP 4

static char *area_a, *area_b, *src;
static pid_t resolved_a[NPAGES], resolved_b[NPAGES], faulted_b[NPAGES];

static int copy_from_b(struct uffd_fault *f)
{
	size_t i = ((char *)f->addr - area_a) / PAGE;

	resolved_a[i] = gettid();
	return uffd_fault_copy(f, area_b + i * PAGE, PAGE);
}

static int copy_from_src(struct uffd_fault *f)
{
	size_t i = ((char *)f->addr - area_b) / PAGE;

	resolved_b[i] = gettid();
	faulted_b[i] = f->tid;
	return uffd_fault_copy(f, src + i * PAGE, PAGE);
}

struct reader {
	pthread_t thread;
	int first;
	pid_t tid;
	unsigned long sum;
};

static void *read_quarter(void *arg)
{
	struct reader *rd = arg;
	volatile unsigned char *a = (void *)area_a, *b = (void *)area_b;
	bool a_first = rd->first / (NPAGES / NAPP) % 2;
	int i;

	rd->tid = gettid();
	for (i = rd->first; i < rd->first + NPAGES / NAPP; i++) {
		size_t off = (size_t)i * PAGE + 9;

		if (a_first)
			rd->sum += a[off] + b[off];
		else
			rd->sum += b[off] + a[off];
	}
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, in_thread, .in_thread = true);
	struct uffd_region_ops ops_a = { .missing = copy_from_b };
	struct uffd_region_ops ops_b = { .missing = copy_from_src };
	struct uffd_handler *ha, *hb;
	struct uffd_handler_stats s;
	struct reader rd[NAPP];
	struct sigaction now;
	struct uffd ua, ub;
	char *both, *later;
	int i, p, k;

	t_require_in_thread();
	t_open(&ua, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	t_open(&ub, UFFD_F(UFFD_FEAT_THREAD_ID), UFFD_NONBLOCK);
	both = t_map_anon(2 * NPAGES * PAGE);
	area_a = both;
	area_b = both + NPAGES * PAGE;
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 41);

	CHECK_OK(sigaction(SIGBUS, &(struct sigaction){ .sa_handler = SIG_DFL }, NULL));
	ha = uffd_handler_new(&ua, &in_thread);
	CHECK(ha);
	hb = uffd_handler_new(&ub, NULL);
	CHECK(hb);
	CHECK(uffd_handler_add(ha, area_a, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops_a, NULL));
	CHECK(uffd_handler_add(hb, area_b, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops_b, NULL));
	CHECK_OK(uffd_handler_start(ha));
	CHECK_OK(uffd_handler_start(hb));

	for (i = 0; i < NAPP; i++) {
		rd[i].first = i * NPAGES / NAPP;
		rd[i].sum = 0;
		CHECK_OK(pthread_create(&rd[i].thread, NULL, read_quarter, &rd[i]));
	}
	for (i = 0; i < NAPP; i++)
		CHECK_OK(pthread_join(rd[i].thread, NULL));
	t_check_bytes("region B", area_b, src, NPAGES * PAGE);
	t_check_bytes("region A", area_a, src, NPAGES * PAGE);
	for (i = 0; i < NAPP; i++)
		for (p = rd[i].first; p < rd[i].first + NPAGES / NAPP; p++) {
			if (resolved_a[p] != rd[i].tid)
				FAIL("page %d of A resolved by %d, its reader is %d", p,
				     resolved_a[p], rd[i].tid);
			if (faulted_b[p] != rd[i].tid)
				FAIL("page %d of B faulted by %d, its reader is %d", p,
				     faulted_b[p], rd[i].tid);
			for (k = 0; k < NAPP; k++)
				if (resolved_b[p] == rd[k].tid || resolved_b[p] == gettid())
					FAIL("page %d of B resolved by a reader (%d), not B's "
					     "servicing thread", p, resolved_b[p]);
		}
	CHECK_OK(uffd_handler_stats(ha, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], NPAGES);
	CHECK_EQ(s.pages_resolved, NPAGES);
	CHECK_EQ(s.messages, 0);
	WAIT_STATS(hb, s, s.pages_resolved == NPAGES);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], NPAGES);
	CHECK_EQ(s.pages_resolved, NPAGES);

	/* The hand-off handler goes; the in-thread one goes on. */
	uffd_handler_free(hb);
	uffd_close(&ub);
	later = t_map_anon(NPAGES * PAGE);
	memcpy(later, src, NPAGES * PAGE);
	area_b = later;		/* A's callback copies from here now */
	area_a = t_map_anon(NPAGES * PAGE);
	CHECK(uffd_handler_add(ha, area_a, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops_a, NULL));
	memset(resolved_a, 0, sizeof(resolved_a));
	t_check_bytes("a new region of A", area_a, src, NPAGES * PAGE);
	for (p = 0; p < NPAGES; p++)
		CHECK_EQ(resolved_a[p], gettid());

	uffd_handler_free(ha);
	uffd_close(&ua);
	CHECK_OK(sigaction(SIGBUS, NULL, &now));
	CHECK(!(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_DFL);
	return T_EXIT_PASS;
}
