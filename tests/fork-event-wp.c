/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: with EVENT_FORK negotiated (it needs
 * CAP_SYS_PTRACE), fork() of a process with write-protected, populated
 * anonymous memory queues one FORK message carrying a new userfaultfd
 * (installed in the reader's fd table) that covers the child's copy of the
 * registration, uffd-wp bits included.  Adopted with uffd_adopt(), that fd
 * receives the child's WP fault (page address, WP kind, write flag) and
 * un-protecting through it wakes the child, whose write then lands.  The
 * parent's fd sees nothing of the child, and the parent's own pages stay
 * protected and unchanged.
 *
 * fork() blocks in the parent until the FORK message is read, so a manager
 * thread reads it while the main thread forks.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 4
#define SEED 90
#define CHILD_BYTE 0x5a

struct manager {
	pthread_t thread;
	struct uffd *u;
	struct uffd_event ev;
	int n;
};

static void *manager_main(void *arg)
{
	struct manager *m = arg;

	m->n = uffd_read_events(m->u, &m->ev, 1, 5000);
	return NULL;
}

/* The child: its write to protected page 1 must wait for the new fd. */
static int child_main(char *area)
{
	volatile char *p = area + PAGE;
	char expect[PAGE];
	int i;

	for (i = 0; i < NPAGES; i++)
		if (!t_is_filled(area + i * PAGE, PAGE, SEED + i))
			return 2;
	*p = CHILD_BYTE;
	if (*p != CHILD_BYTE)
		return 3;
	t_fill(expect, PAGE, SEED + 1);
	if (memcmp(area + PAGE + 1, expect + 1, PAGE - 1))
		return 4;
	return 0;
}

int main(void)
{
	uint64_t features = UFFD_F(UFFD_FEAT_EVENT_FORK) |
			    UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP);
	struct manager m = { 0 };
	struct uffd_event ev;
	struct uffd u, cu;
	struct t_access a;
	char names[128];
	char *area;
	pid_t pid;
	int i, ret, status;

	t_require(UFFD_FEAT_REG_WP_ANON);
	ret = uffd_open(&u, features, 0, UFFD_NONBLOCK);
	if (ret == -EOPNOTSUPP)
		SKIP("kernel lacks %s",
		     uffd_describe_missing(u.missing, names, sizeof(names)));
	if (ret == -EPERM)
		SKIP("EVENT_FORK needs CAP_SYS_PTRACE");
	CHECK_OK(ret);

	area = t_map_anon(NPAGES * PAGE);
	for (i = 0; i < NPAGES; i++)
		t_fill(area + i * PAGE, PAGE, SEED + i);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_WP, NULL));
	CHECK_OK(uffd_writeprotect(&u, area, NPAGES * PAGE, true, 0));

	m.u = &u;
	if (pthread_create(&m.thread, NULL, manager_main, &m))
		FAIL("pthread_create");
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child_main(area));
	pthread_join(m.thread, NULL);
	if (m.n != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		FAIL("manager read %d (%s), want one FORK message", m.n,
		     t_errname(m.n));
	}
	CHECK_EQ(m.ev.type, UFFD_EV_FORK);
	CHECK(m.ev.fork.fd >= 0);
	CHECK(m.ev.fork.fd != u.fd);
	CHECK_OK(uffd_adopt(&cu, m.ev.fork.fd, u.features));
	CHECK_EQ(cu.fd, m.ev.fork.fd);
	/* The new fd inherits O_NONBLOCK, so it can be read with a deadline. */
	CHECK(cu.how & UFFD_OPENED_NONBLOCK);

	/* The child's write to its protected page arrives on the new fd. */
	t_expect_fault(&cu, area + PAGE, UFFD_FAULT_WP, true);
	CHECK_EQ(waitpid(pid, &status, WNOHANG), 0);	/* still blocked */
	t_expect_no_event(&u, 20);

	CHECK_OK(uffd_writeprotect(&cu, area + PAGE, PAGE, false, 0));
	CHECK_EQ(t_wait_child(pid, 5000), 0);
	t_expect_no_event(&cu, 20);
	uffd_close(&cu);

	/* The parent's copy is untouched and still protected. */
	for (i = 0; i < NPAGES; i++)
		CHECK(t_is_filled(area + i * PAGE, PAGE, SEED + i));
	t_access_start(&a, area + PAGE, true, 1);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + PAGE));
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_writeprotect(&u, area + PAGE, PAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[PAGE], 1);
	t_expect_no_event(&u, 20);
	uffd_close(&u);
	return T_EXIT_PASS;
}
