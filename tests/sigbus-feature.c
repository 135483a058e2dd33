/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * With UFFD_FEAT_SIGBUS a fault in a MISSING-registered range raises
 * SIGBUS at once instead of blocking, and queues no message; once the page
 * is filled with COPY the same access succeeds.
 *
 * Kernel behaviour libuffd relies on: with UFFD_FEATURE_SIGBUS,
 * handle_userfault() answers a MISSING fault with VM_FAULT_SIGBUS: a user
 * access gets SIGBUS (si_code BUS_ADRERR, si_addr the exact address), a
 * kernel access (read(2) into the page) fails with EFAULT, and nothing is
 * queued on the userfaultfd either way.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NR_PAGES 2

static sigjmp_buf *volatile bus_jmp;
static volatile int bus_code;
static void *volatile bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (!bus_jmp)
		FAIL("unexpected SIGBUS, code %d at %p", si->si_code,
		     si->si_addr);
	bus_code = si->si_code;
	bus_addr = si->si_addr;
	siglongjmp(*bus_jmp, 1);
}

/* One access at p; true if it raised SIGBUS (code and address recorded). */
static bool access_catching_sigbus(volatile char *p, bool write, char *value)
{
	sigjmp_buf jmp;

	bus_code = 0;
	bus_addr = NULL;
	if (sigsetjmp(jmp, 1)) {
		bus_jmp = NULL;
		return true;
	}
	bus_jmp = &jmp;
	if (write)
		*p = *value;
	else
		*value = *p;
	bus_jmp = NULL;
	return false;
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	struct uffd u;
	char *area, *src, value = 0;
	size_t done;
	int pipefd[2];

	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), 0);
	CHECK(u.features & UFFD_F(UFFD_FEAT_SIGBUS));
	CHECK_OK(sigaction(SIGBUS, &sa, NULL) ? -errno : 0);
	area = t_map_anon(NR_PAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 5);
	CHECK_OK(uffd_register(&u, area, NR_PAGES * PAGE, UFFD_REG_MISSING, NULL));

	/* A read raises SIGBUS at once, at the byte touched. */
	CHECK(access_catching_sigbus(area + 300, false, &value));
	CHECK_EQ(bus_code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)bus_addr, (uintptr_t)(area + 300));
	t_expect_no_event(&u, 100);

	/* So does a write, and it leaves the page missing. */
	value = 'w';
	CHECK(access_catching_sigbus(area + PAGE + 1, true, &value));
	CHECK_EQ(bus_code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)bus_addr, (uintptr_t)(area + PAGE + 1));
	t_expect_no_event(&u, 0);

	/* A kernel-mode access gets EFAULT, again with nothing queued. */
	CHECK_OK(pipe(pipefd) ? -errno : 0);
	CHECK_EQ(write(pipefd[1], "abc", 3), 3);
	CHECK_EQ(read(pipefd[0], area + PAGE, 3), -1);
	CHECK_EQ(errno, EFAULT);
	t_expect_no_event(&u, 0);

	/* COPY fills the page; the same read now succeeds. */
	CHECK_OK(uffd_copy(&u, area, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(!access_catching_sigbus(area + 300, false, &value));
	CHECK_EQ(value, src[300]);
	CHECK(t_is_filled(area, PAGE, 5));

	/* The second page is still missing: SIGBUS again, then COPY works. */
	value = 'w';
	CHECK(access_catching_sigbus(area + PAGE + 1, true, &value));
	CHECK_EQ((uintptr_t)bus_addr, (uintptr_t)(area + PAGE + 1));
	CHECK_OK(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done));
	CHECK(!access_catching_sigbus(area + PAGE + 1, true, &value));
	CHECK_EQ(area[PAGE + 1], 'w');
	CHECK_EQ(read(pipefd[0], area + PAGE + 8, 3), 3);
	CHECK(memcmp(area + PAGE + 8, "abc", 3) == 0);
	t_expect_no_event(&u, 0);

	close(pipefd[0]);
	close(pipefd[1]);
	uffd_close(&u);
	return T_EXIT_PASS;
}
