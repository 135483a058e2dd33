/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whole-buffer socket I/O with a deadline, and descriptor passing: see
 * sock.h.  Each transfer is preceded by a poll bounded by what is left of
 * the deadline, so the total wait never exceeds it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "sock.h"

uint64_t uffd__deadline_ms(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : mono_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Milliseconds to the deadline, rounded up; -1 for none, 0 if passed. */
static int left_ms(uint64_t deadline)
{
	uint64_t now;

	if (!deadline)
		return -1;
	now = mono_ns();
	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000);
}

static int wait_for(int fd, short events, int wake_fd, uint64_t deadline)
{
	struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = wake_fd, .events = POLLIN } };
	int n;

	for (;;) {
		n = poll(p, wake_fd >= 0 ? 2 : 1, left_ms(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (wake_fd >= 0 && p[1].revents)
			return -EINTR;
		return 1;
	}
}

int uffd__wait_readable(int fd, int wake_fd, uint64_t deadline)
{
	return wait_for(fd, POLLIN, wake_fd, deadline);
}

int uffd__sendv_all(int fd, struct iovec *iov, int iovcnt, uint64_t deadline)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iovcnt };
	ssize_t n;
	int ret;

	while (msg.msg_iovlen > 0) {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			ret = wait_for(fd, POLLOUT, -1, deadline);
			if (ret <= 0)
				return ret ? ret : -ETIMEDOUT;
			continue;
		}
		while (msg.msg_iovlen > 0 && (size_t)n >= msg.msg_iov->iov_len) {
			n -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen > 0) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= n;
		}
	}
	return 0;
}

int uffd__send_all(int fd, const void *buf, size_t len, uint64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return uffd__sendv_all(fd, &iov, 1, deadline);
}

int uffd__recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
	size_t done = 0;
	ssize_t n;
	int ret;

	while (done < len) {
		n = recv(fd, (char *)buf + done, len - done, MSG_DONTWAIT);
		if (n > 0) {
			done += n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		ret = wait_for(fd, POLLIN, -1, deadline);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
	return 0;
}

int uffd__send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	if (!len)
		return -EINVAL;
	memset(&control, 0, sizeof(control));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The descriptor went with the first byte; the rest is plain data. */
	if ((size_t)n < len)
		return uffd__send_all(sock, (const char *)buf + n, len - n, 0);
	return 0;
}

int uffd__recv_with_fd(int sock, void *buf, size_t len, int *fd_out, uint64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;
	int ret;

	*fd_out = -1;
	for (;;) {
		n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		ret = wait_for(sock, POLLIN, -1, deadline);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
	}
	/* Keep the first descriptor; close any extra a hostile peer sent. */
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		int nfds, i, fds[4];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (nfds > 4)
			nfds = 4;
		memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
		for (i = 0; i < nfds; i++) {
			if (*fd_out < 0)
				*fd_out = fds[i];
			else
				close(fds[i]);
		}
	}
	return (int)n;
}

int uffd__unix_addr(struct sockaddr_un *addr, const char *path)
{
	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	strcpy(addr->sun_path, path);
	return 0;
}
