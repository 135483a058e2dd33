// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The price of in-thread mode, as documented in uffd/handler.h: a system
 * call that touches an unresolved page of an in-thread region does not
 * wait for it to be resolved, it fails with EFAULT - the kernel raises no
 * SIGBUS for its own accesses, and queues no message either.  read(2) from
 * a pipe into a missing page fails so, and the page stays missing (no
 * callback ran); the data stays in the pipe.  What the program can do:
 * touch the buffer first (the fault is resolved in its thread), after
 * which the same read(2) succeeds.  The same for a write-protected page:
 * read(2) into it fails until the program's own write has un-protected it.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

static int callbacks;	/* atomic */

static int count_and_zero(struct uffd_fault *f)
{
	__atomic_fetch_add(&callbacks, 1, __ATOMIC_RELAXED);
	return uffd_fault_zero(f, PAGE);
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = count_and_zero };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	char *missing, *wp, buf[8];
	unsigned char vec;
	int pipefd[2];
	struct uffd u;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS) | UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP),
	       UFFD_NONBLOCK);
	missing = t_map_anon(2 * PAGE);
	wp = t_map_anon(PAGE);
	memset(wp, 'w', PAGE);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, missing, 2 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK(uffd_handler_add(h, wp, PAGE, 0, UFFD_REG_WP, NULL, NULL));
	CHECK_OK(uffd_writeprotect(&u, wp, PAGE, true, 0));
	CHECK_OK(uffd_handler_start(h));
	CHECK_OK(pipe2(pipefd, O_NONBLOCK) ? -errno : 0);

	/* Into a missing page: EFAULT, nothing resolved, nothing consumed. */
	CHECK_EQ(write(pipefd[1], "abcdef", 6), 6);
	errno = 0;
	CHECK_EQ(read(pipefd[0], missing + 100, 6), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(__atomic_load_n(&callbacks, __ATOMIC_RELAXED), 0);
	CHECK_OK(mincore(missing, PAGE, &vec) ? -errno : 0);
	CHECK_EQ(vec & 1, 0);

	/* Touched first, the same read succeeds. */
	missing[0] = 0;
	CHECK_EQ(__atomic_load_n(&callbacks, __ATOMIC_RELAXED), 1);
	CHECK_EQ(read(pipefd[0], missing + 100, 6), 6);
	CHECK(!memcmp(missing + 100, "abcdef", 6));

	/* Into a write-protected page: EFAULT until the program writes it. */
	CHECK_EQ(write(pipefd[1], "xyz", 3), 3);
	errno = 0;
	CHECK_EQ(read(pipefd[0], wp + 8, 3), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(wp[8], 'w');
	wp[0] = 'W';		/* resolved in this thread: un-protected */
	CHECK_EQ(read(pipefd[0], wp + 8, 3), 3);
	CHECK(!memcmp(wp, "Wwwwwwwwxyzw", 12));

	/* The other direction too: write(2) from a missing page. */
	errno = 0;
	CHECK_EQ(write(pipefd[1], missing + PAGE, 4), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(__atomic_load_n(&callbacks, __ATOMIC_RELAXED), 1);
	CHECK_EQ(read(pipefd[0], buf, sizeof(buf)), -1);	/* nothing was written */
	CHECK_EQ(errno, EAGAIN);

	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 1);
	CHECK_EQ(s.faults[UFFD_FAULT_WP], 1);
	CHECK_EQ(s.messages, 0);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
