/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fork() made while the handler is still setting up the previous fork's
 * child returns, and both children are served.  glibc's fork() holds the
 * allocator's locks (and stdio's and pthread_atfork's) across the system
 * call, and with EVENT_FORK that system call waits until a servicing
 * thread has read its FORK message: a servicing thread that waited for one
 * of those locks - starting a thread allocates (pthread_create() allocates
 * the new thread's TLS vector) - would wait for ever, and so would the
 * fork, every fault of the process and its exit().
 *
 * The first FORK's event callback runs in the only servicing thread before
 * the child's own thread is started.  It has a second thread fork and
 * returns once that fork's FORK message is queued, i.e. once the second
 * fork holds glibc's locks.  Both forks must then return, both children
 * must read the pages missing at fork time through the handler, and the
 * counters must say two forks and three contexts.  A stuck fork is
 * reported, and the test ends with _exit(): exit() would wait for the
 * locks the fork holds.
 */
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 4
#define SEED 33
/* Deadlines of the waits a stuck fork would make endless. */
#define FORK_WAIT_MS 5000
#define CHILD_WAIT_MS 5000

static struct uffd u;
static char *area, *pattern;
static int nforks;		/* atomic: FORK callbacks */
static int second_go;		/* atomic: the first FORK's callback says fork */
static int second_queued;	/* atomic: its FORK message was queued in time */
static int second_forked;	/* atomic: the second fork() returned */
static pid_t second_pid;

/* Fail where a fork may be stuck holding glibc's locks: no exit(). */
#define FAIL_STUCK(...) FAIL_FORK_SAFE(NULL, NULL, __VA_ARGS__)

static int fill_pattern(struct uffd_fault *f)
{
	return uffd_fault_copy(f, pattern + ((char *)f->addr - area), PAGE);
}

/* The first FORK: have the second fork happen now, and wait until the
 * kernel has queued its FORK message (nothing else is pending here). */
static void on_event(struct uffd_region *r, const struct uffd_event *ev)
{
	struct pollfd pfd = { .fd = u.fd, .events = POLLIN };

	(void)r;
	if (ev->type != UFFD_EV_FORK || __atomic_add_fetch(&nforks, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	__atomic_store_n(&second_go, 1, __ATOMIC_RELEASE);
	if (poll(&pfd, 1, FORK_WAIT_MS) == 1 && (pfd.revents & POLLIN))
		__atomic_store_n(&second_queued, 1, __ATOMIC_RELEASE);
}

/* The child reads every page; all but page 0 were missing at fork. */
static int child(void)
{
	int i;

	if (!t_is_filled(area, PAGE, 3))
		return 10;
	for (i = 1; i < NPAGES; i++)
		if (memcmp(area + (size_t)i * PAGE, pattern + (size_t)i * PAGE, PAGE))
			return 10 + i;
	return 0;
}

static void *second_forker(void *arg)
{
	pid_t pid;

	(void)arg;
	if (!t_wait_flag(&second_go, FORK_WAIT_MS))
		FAIL_STUCK("the first FORK's callback did not run within %d ms", FORK_WAIT_MS);
	pid = fork();
	if (pid == 0)
		_exit(child());
	if (pid < 0)
		FAIL_STUCK("fork: %s", strerror(errno));
	second_pid = pid;
	__atomic_store_n(&second_forked, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = fill_pattern, .event = on_event };
	struct uffd_handler_stats st;
	struct uffd_handler *h;
	pthread_t forker;
	pid_t first;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_FORK), 0);
	area = t_map_anon(NPAGES * PAGE);
	pattern = t_map_anon(NPAGES * PAGE);
	t_fill(pattern, NPAGES * PAGE, SEED);
	t_fill(area, PAGE, 3);		/* page 0 present before registering */
	h = uffd_handler_new(&u, NULL);	/* one servicing thread */
	CHECK(h);
	CHECK(uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(uffd_handler_start(h));
	CHECK_EQ(pthread_create(&forker, NULL, second_forker, NULL), 0);

	first = fork();
	if (first == 0)
		_exit(child());
	if (first < 0)
		FAIL_STUCK("fork: %s", strerror(errno));
	if (!t_wait_flag(&second_forked, 2 * FORK_WAIT_MS))
		FAIL_STUCK("the second fork did not return within %d ms: a servicing thread "
			   "waits for a lock the fork holds", 2 * FORK_WAIT_MS);
	pthread_join(forker, NULL);
	if (!__atomic_load_n(&second_queued, __ATOMIC_ACQUIRE))
		FAIL_STUCK("the second fork's FORK message was not queued during the first's callback");
	if (t_wait_child_fork_safe(first, CHILD_WAIT_MS, NULL, NULL))
		FAIL_STUCK("first child read wrong contents");
	if (t_wait_child_fork_safe(second_pid, CHILD_WAIT_MS, NULL, NULL))
		FAIL_STUCK("second child read wrong contents");

	CHECK_OK(uffd_handler_stats(h, &st));
	CHECK_EQ(st.events[0], 2);
	CHECK_EQ(st.contexts, 3);
	CHECK_EQ(st.callback_errors, 0);
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
