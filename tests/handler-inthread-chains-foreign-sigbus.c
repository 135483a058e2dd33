// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode installs a SIGBUS handler for the process, and a SIGBUS
 * that is not libuffd's goes where it would have gone without libuffd.
 * Each case runs in a child process with its own previous action:
 *
 *   siginfo  the program's SA_SIGINFO handler gets a read past the end of
 *            a one-page memfd mapped twice as long (BUS_ADRERR at that
 *            address) and a raise(SIGBUS) (SI_TKILL), while faults in the
 *            in-thread region around them are resolved; freeing the last
 *            in-thread handler puts the program's action back, and a
 *            second handler shares the one installation meanwhile;
 *   plain    a handler without SA_SIGINFO gets the signal number;
 *   default  the process dies of SIGBUS (the default action) at the
 *            foreign fault, its in-thread faults before it resolved.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

static sigjmp_buf jump;
static volatile int got_sig, got_code;
static void *volatile got_addr;

static void siginfo_handler(int sig, siginfo_t *si, void *uc)
{
	got_sig = sig;
	got_code = si->si_code;
	got_addr = si->si_addr;
	siglongjmp(jump, 1);
}

static void plain_handler(int sig)
{
	got_sig = sig;
	siglongjmp(jump, 1);
}

struct inthread {
	struct uffd u;
	struct uffd_handler *h;
	char *area;
};

static void inthread_new(struct inthread *it, size_t pages)
{
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);

	t_open(&it->u, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	it->area = t_map_anon(pages * PAGE);
	it->h = uffd_handler_new(&it->u, &o);
	CHECK(it->h);
	CHECK(uffd_handler_add(it->h, it->area, pages * PAGE, 0, UFFD_REG_MISSING, NULL, NULL));
}

static void inthread_free(struct inthread *it)
{
	uffd_handler_free(it->h);
	uffd_close(&it->u);
}

/* A page past the end of a one-page memfd: its read raises SIGBUS. */
static char *past_eof(void)
{
	int fd = memfd_create("past-eof", MFD_CLOEXEC);
	char *p;

	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, PAGE) ? -errno : 0);
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	close(fd);
	return p + PAGE;
}

/* A read of the in-thread region: zeros, resolved by the default. */
static void expect_resolved(char *p)
{
	CHECK_EQ(*(volatile char *)p, 0);
}

static int case_siginfo(void)
{
	struct sigaction sa = { .sa_sigaction = siginfo_handler, .sa_flags = SA_SIGINFO }, now;
	struct inthread a, b;
	char *hole = past_eof();

	CHECK_OK(sigaction(SIGBUS, &sa, NULL));
	inthread_new(&a, 4);
	inthread_new(&b, 4);
	expect_resolved(a.area);
	if (!sigsetjmp(jump, 1)) {
		(void)*(volatile char *)(hole + 9);
		FAIL("no SIGBUS past the end of the file");
	}
	CHECK_EQ(got_sig, SIGBUS);
	CHECK_EQ(got_code, BUS_ADRERR);
	CHECK(got_addr == hole + 9);
	expect_resolved(b.area + PAGE);
	got_sig = 0;
	if (!sigsetjmp(jump, 1)) {
		raise(SIGBUS);
		FAIL("raise(SIGBUS) returned");
	}
	CHECK_EQ(got_sig, SIGBUS);
	CHECK_EQ(got_code, SI_TKILL);

	/* One installation for both: the first free leaves it, the last
	 * puts the program's action back. */
	inthread_free(&a);
	expect_resolved(b.area + 2 * PAGE);
	CHECK_OK(sigaction(SIGBUS, NULL, &now));
	CHECK(now.sa_sigaction != siginfo_handler);
	inthread_free(&b);
	CHECK_OK(sigaction(SIGBUS, NULL, &now));
	CHECK(now.sa_flags & SA_SIGINFO);
	CHECK(now.sa_sigaction == siginfo_handler);
	return 0;
}

static int case_plain(void)
{
	struct sigaction sa = { .sa_handler = plain_handler };
	struct inthread a;
	char *hole = past_eof();

	CHECK_OK(sigaction(SIGBUS, &sa, NULL));
	inthread_new(&a, 2);
	expect_resolved(a.area);
	if (!sigsetjmp(jump, 1)) {
		(void)*(volatile char *)hole;
		FAIL("no SIGBUS past the end of the file");
	}
	CHECK_EQ(got_sig, SIGBUS);
	expect_resolved(a.area + PAGE);
	inthread_free(&a);
	return 0;
}

static int case_default(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct inthread a;
	char *hole = past_eof();

	/* The default action, even where a sanitizer installed a handler. */
	CHECK_OK(sigaction(SIGBUS, &dfl, NULL));
	inthread_new(&a, 2);
	expect_resolved(a.area);
	expect_resolved(a.area + PAGE);
	(void)*(volatile char *)hole;
	return 3;	/* must not get here */
}

/* Run fn in a child: its exit code, or 128 + the signal that killed it. */
static int in_child(int (*fn)(void))
{
	int status, waited;
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (!pid) {
		struct rlimit none = { 0, 0 };

		setrlimit(RLIMIT_CORE, &none);	/* dying of SIGBUS is expected */
		_exit(fn());
	}
	for (waited = 0; waited < 10000; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		CHECK(r >= 0);
		if (r == pid)
			return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
		t_sleep_ms(1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	FAIL("the child did not finish within 10 s");
}

int main(void)
{
	struct uffd probe;

	t_require_in_thread();
	t_open(&probe, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	uffd_close(&probe);
	CHECK_EQ(in_child(case_siginfo), 0);
	CHECK_EQ(in_child(case_plain), 0);
	CHECK_EQ(in_child(case_default), 128 + SIGBUS);
	return T_EXIT_PASS;
}
