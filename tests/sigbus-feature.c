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
#include <signal.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/sigbus.h"

#define NR_PAGES 2

int main(void)
{
	struct t_sigbus bus;
	struct uffd u;
	char *area, *src, value = 0;
	size_t done;
	int pipefd[2];

	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), 0);
	CHECK(u.features & UFFD_F(UFFD_FEAT_SIGBUS));
	t_sigbus_catch();
	area = t_map_anon(NR_PAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 5);
	CHECK_OK(uffd_register(&u, area, NR_PAGES * PAGE, UFFD_REG_MISSING, NULL));

	/* A read raises SIGBUS at once, at the byte touched. */
	CHECK(t_access_catching_sigbus(area + 300, false, &value, &bus));
	CHECK_EQ(bus.code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + 300));
	t_expect_no_event(&u, 100);

	/* So does a write, and it leaves the page missing. */
	value = 'w';
	CHECK(t_access_catching_sigbus(area + PAGE + 1, true, &value, &bus));
	CHECK_EQ(bus.code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + PAGE + 1));
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
	CHECK(!t_access_catching_sigbus(area + 300, false, &value, &bus));
	CHECK_EQ(value, src[300]);
	CHECK(t_is_filled(area, PAGE, 5));

	/* The second page is still missing: SIGBUS again, then COPY works. */
	value = 'w';
	CHECK(t_access_catching_sigbus(area + PAGE + 1, true, &value, &bus));
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + PAGE + 1));
	CHECK_OK(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done));
	CHECK(!t_access_catching_sigbus(area + PAGE + 1, true, &value, &bus));
	CHECK_EQ(area[PAGE + 1], 'w');
	CHECK_EQ(read(pipefd[0], area + PAGE + 8, 3), 3);
	CHECK(memcmp(area + PAGE + 8, "abc", 3) == 0);
	t_expect_no_event(&u, 0);

	close(pipefd[0]);
	close(pipefd[1]);
	uffd_close(&u);
	return T_EXIT_PASS;
}
