/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * With EVENT_FORK the handler follows a fork: the fork (from the main
 * thread) blocks until a servicing thread reads the FORK event; the
 * handler then serves the child's userfaultfd with a copy of the parent's
 * regions (the event callback sees FORK on that copy, same ops and data,
 * same range).  The child reads pages that were missing at fork time and
 * sees the callback's pattern, pages present at fork time keep the
 * parent's contents without faulting, and the child exits 0.  Counters:
 * events[0] == 1, contexts == 2, and once the child has exited the handler
 * notices its userfaultfd's process is gone within 2 s (dead_contexts ==
 * 1).  The parent's own faults are still served afterwards.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

#define NPAGES 8
#define SEED 21

/* Set before uffd_handler_start(). */
static char *area, *pattern;
static int cookie;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int nfork;
static struct uffd_region *fork_region, *parent_region;
static uint64_t fork_start, fork_len;
static void *fork_data;
static int fork_fd;
static struct uffd *fork_uffd;
static int served;		/* atomic: callbacks run */
static int served_child;	/* atomic: callbacks for the child's copy */

static int fill_pattern(struct uffd_fault *f)
{
	size_t off = (char *)f->addr - area;

	__atomic_fetch_add(&served, 1, __ATOMIC_RELAXED);
	if (f->region != parent_region)
		__atomic_fetch_add(&served_child, 1, __ATOMIC_RELAXED);
	return uffd_fault_copy(f, pattern + off, PAGE);
}

static void on_event(struct uffd_region *r, const struct uffd_event *ev)
{
	pthread_mutex_lock(&log_lock);
	if (ev->type == UFFD_EV_FORK) {
		nfork++;
		fork_region = r;
		fork_start = (uintptr_t)uffd_region_addr(r);
		fork_len = uffd_region_len(r);
		fork_data = uffd_region_data(r);
		fork_fd = ev->fork.fd;
		fork_uffd = uffd_region_uffd(r);
	}
	pthread_mutex_unlock(&log_lock);
}

static int child(void)
{
	int i;

	/* Page 0 was present at fork: a private copy, no fault. */
	if (!t_is_filled(area, PAGE, 3))
		return 10;
	for (i = 1; i < NPAGES; i++)
		if (memcmp(area + (size_t)i * PAGE, pattern + (size_t)i * PAGE, PAGE))
			return 10 + i;
	return 0;
}

/* Wait for pid to exit within ms; its exit status, or fail. */
static int wait_child(pid_t pid, int ms)
{
	int status, waited;
	pid_t got = 0;

	for (waited = 0; waited < ms; waited++) {
		got = waitpid(pid, &status, WNOHANG);
		if (got == pid)
			break;
		CHECK(got == 0);
		t_sleep_ms(1);
	}
	if (got != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		FAIL("child did not exit within %d ms", ms);
	}
	if (!WIFEXITED(status))
		FAIL("child killed by signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

int main(void)
{
	struct uffd_region_ops ops = { .missing = fill_pattern, .event = on_event };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct t_access a;
	struct uffd u;
	int waited;
	pid_t pid;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_FORK), 0);
	area = t_map_anon(NPAGES * PAGE);
	pattern = t_map_anon(NPAGES * PAGE);
	t_fill(pattern, NPAGES * PAGE, SEED);
	t_fill(area, PAGE, 3);		/* page 0 present before registering */
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	parent_region = uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING,
					 &ops, &cookie);
	CHECK(parent_region);
	CHECK_OK(uffd_handler_start(h));

	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child());

	CHECK_EQ(wait_child(pid, 3000), 0);
	CHECK_EQ(__atomic_load_n(&served, __ATOMIC_RELAXED), NPAGES - 1);
	CHECK_EQ(__atomic_load_n(&served_child, __ATOMIC_RELAXED), NPAGES - 1);

	pthread_mutex_lock(&log_lock);
	CHECK_EQ(nfork, 1);
	CHECK(fork_region != parent_region);
	CHECK_EQ(fork_start, (uintptr_t)area);
	CHECK_EQ(fork_len, NPAGES * PAGE);
	CHECK(fork_data == &cookie);
	CHECK(fork_uffd != &u);
	CHECK(fork_fd >= 0);
	CHECK_EQ(fork_uffd->fd, fork_fd);
	pthread_mutex_unlock(&log_lock);

	WAIT_STATS(h, s, s.pages_resolved == NPAGES - 1);
	CHECK_EQ(s.events[0], 1);
	CHECK_EQ(s.contexts, 2);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], NPAGES - 1);
	CHECK_EQ(s.pages_resolved, NPAGES - 1);
	CHECK_EQ(s.callback_errors, 0);
	CHECK_EQ(s.unknown_addr, 0);

	/* The child is gone: its context is noticed dead within 2 s. */
	for (waited = 0; waited < 2000; waited += 10) {
		CHECK_OK(uffd_handler_stats(h, &s));
		if (s.dead_contexts)
			break;
		t_sleep_ms(10);
	}
	CHECK_EQ(s.dead_contexts, 1);
	CHECK_EQ(s.contexts, 2);

	/* The parent's own pages are still missing and still served. */
	t_access_start(&a, area + 2 * PAGE + 5, false, 0);
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK(memcmp(area + 2 * PAGE, pattern + 2 * PAGE, PAGE) == 0);
	CHECK_EQ(__atomic_load_n(&served, __ATOMIC_RELAXED), NPAGES);
	CHECK_EQ(__atomic_load_n(&served_child, __ATOMIC_RELAXED), NPAGES - 1);
	WAIT_STATS(h, s, s.pages_resolved == NPAGES);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], NPAGES);
	CHECK_EQ(s.pages_resolved, NPAGES);
	CHECK_EQ(s.dead_contexts, 1);

	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
