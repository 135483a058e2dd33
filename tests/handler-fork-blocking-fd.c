/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_handler_new() accepts a userfaultfd opened blocking ("the fd is
 * switched to non-blocking").  The kernel gives a forked child's
 * userfaultfd the O_NONBLOCK the parent's had when it was created, not the
 * one set later by fcntl, so the handler must make the child's fd
 * non-blocking too: with EVENT_FORK, a child forked under such a handler
 * gets its MISSING fault served (zeros, by the default policy) and exits 0
 * within the deadline; its context is counted (contexts == 2) and the
 * fault is counted once.
 *
 * (Opened with uffd_open() and no UFFD_NONBLOCK on purpose: that is the
 * case under test; t_open() always opens non-blocking.)
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/handler.h>

#include "lib/harness.h"

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 1);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct uffd u;
	int ret, status, waited;
	pid_t pid, got = 0;
	char *p;

	ret = uffd_open(&u, UFFD_F(UFFD_FEAT_EVENT_FORK), 0, 0);
	if (ret == -EOPNOTSUPP || ret == -EPERM)
		SKIP("cannot open a userfaultfd with EVENT_FORK: %s", strerror(-ret));
	CHECK_OK(ret);
	CHECK(!(fcntl(u.fd, F_GETFL) & O_NONBLOCK));
	p = t_map_anon(2 * PAGE);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	CHECK(fcntl(u.fd, F_GETFL) & O_NONBLOCK);
	CHECK(uffd_handler_add(h, p, 2 * PAGE, 0, UFFD_REG_MISSING, NULL, NULL));
	CHECK_OK(uffd_handler_start(h));

	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(p[PAGE + 3] == 0 ? 0 : 3);
	for (waited = 0; waited < 2000; waited++) {
		got = waitpid(pid, &status, WNOHANG);
		if (got == pid)
			break;
		t_sleep_ms(1);
	}
	if (got != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		FAIL("child's fault not served within 2 s (its userfaultfd is "
		     "blocking: the handler cannot read it)");
	}
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.events[0], 1);
	CHECK_EQ(s.contexts, 2);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 1);

	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
