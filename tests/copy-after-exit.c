/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: a userfaultfd outlives the process
 * whose memory it covers.  A child opens one, registers a region and hands
 * the fd to its parent over a Unix socket (SCM_RIGHTS).  While the child
 * lives, the parent serves its fault with COPY (the child checks the bytes
 * it reads).  Once the child has exited and been reaped, COPY and ZEROPAGE
 * through that fd fail with -ESRCH (old kernels said -ENOSPC; this kernel
 * must give the modern value) and copy nothing.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 4
#define SEED 61

static int send_fd(int sock, int fd, void *region)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &region, sizeof(region) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == sizeof(region) ? 0 : -1;
}

static int recv_fd(int sock, void **region)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { region, sizeof(*region) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != sizeof(*region))
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* The child: register, hand over the fd, read one faulting byte, exit. */
static int child_main(int sock)
{
	unsigned char expect[PAGE];
	struct uffd u;
	volatile unsigned char *area;
	char go;

	if (uffd_open(&u, 0, 0, UFFD_NONBLOCK))
		return 2;
	area = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 3;
	if (uffd_register(&u, (void *)area, NPAGES * PAGE, UFFD_REG_MISSING, NULL))
		return 4;
	if (send_fd(sock, u.fd, (void *)area))
		return 5;
	uffd_close(&u);
	/* Wait for the parent to be ready, then fault on page 1. */
	if (read(sock, &go, 1) != 1)
		return 6;
	t_fill(expect, PAGE, SEED);
	if (area[PAGE + 17] != expect[17])
		return 7;
	return 0;
}

int main(void)
{
	struct uffd u;
	char *src, *region;
	void *child_area;
	int sv[2], fd;
	size_t done;
	pid_t pid;

	t_require(UFFD_FEAT_REG_MISSING_ANON);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, SEED);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		FAIL("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		_exit(child_main(sv[1]));
	}
	close(sv[1]);
	fd = recv_fd(sv[0], &child_area);
	if (fd < 0) {
		kill(pid, SIGKILL);
		FAIL("child sent no userfaultfd (exit %d)", t_wait_child(pid, 2000));
	}
	region = child_area;
	CHECK_OK(uffd_adopt(&u, fd, 0));
	CHECK(u.how & UFFD_OPENED_NONBLOCK);

	/* While the child lives its fault comes to us and COPY serves it. */
	CHECK_EQ(write(sv[0], "g", 1), 1);
	t_expect_fault(&u, region + PAGE, UFFD_FAULT_MISSING, false);
	CHECK_OK(uffd_copy(&u, region + PAGE, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK_EQ(t_wait_child(pid, 5000), 0);

	/* The child's address space is gone. */
	done = 1;
	CHECK_EQ(uffd_copy(&u, region + 2 * PAGE, src, PAGE, 0, &done), -ESRCH);
	CHECK_EQ(done, 0);
	done = 1;
	CHECK_EQ(uffd_zeropage(&u, region + 3 * PAGE, PAGE, 0, &done), -ESRCH);
	CHECK_EQ(done, 0);
	t_expect_no_event(&u, 20);
	uffd_close(&u);
	close(sv[0]);
	return T_EXIT_PASS;
}
