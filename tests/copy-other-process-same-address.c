/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_copy() into another process's memory from a source at the same
 * address in this one works: with a userfaultfd this process did not open
 * (a client's, handed over as a page server gets it), the destination is
 * in the other process's address space and the source in ours, so the
 * same numbers are no overlap.  A child maps a page at a fixed address,
 * registers it on a userfaultfd of its own, passes the fd over a socket
 * pair and reads the page; this process adopts the fd, maps its own page
 * at that very address, fills it and copies it over: the copy succeeds,
 * all of it, and the child reads exactly these bytes.  (The check that
 * refuses a source overlapping its destination is for a userfaultfd of
 * this process, where the kernel's read of the source would fault on it.)
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/harness.h"
#include "util/sock.h"

/* Free in both processes and application memory for every sanitizer
 * (see T_PS_ADDR in lib/pserve.h). */
#define ADDR ((void *)0x567800000000ull)

static int sv[2];

static int child(void)
{
	char *p;
	struct uffd u;

	/* A parent that fails leaves no child blocked on its fault. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p = mmap(ADDR, PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != ADDR || uffd_open(&u, 0, 0, UFFD_ALLOW_USER_ONLY) ||
	    uffd_register(&u, p, PAGE, UFFD_REG_MISSING, NULL))
		return 2;
	if (uffd__send_with_fd(sv[1], "u", 1, u.fd))
		return 3;
	/* Blocks until the parent has copied the page in. */
	return t_is_filled(p, PAGE, 42) ? 0 : 1;
}

int main(void)
{
	struct uffd u;
	size_t done = 12345;
	char *mine, c;
	pid_t pid;
	int fd;

	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		_exit(child());
	CHECK_EQ(uffd__recv_with_fd(sv[0], &c, 1, &fd, uffd__deadline_ms(5000)), 1);
	CHECK(fd >= 0);
	CHECK_OK(uffd_adopt(&u, fd, 0));
	mine = mmap(ADDR, PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (mine != ADDR)
		SKIP("cannot map a page at %p here", ADDR);
	t_fill(mine, PAGE, 42);
	CHECK_OK(uffd_copy(&u, ADDR, mine, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK_EQ(t_wait_child(pid, 5000), 0);
	uffd_close(&u);
	return 0;
}
