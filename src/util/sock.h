/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stream sockets for the services that talk to another process or host
 * (migration, the page server, the socket store): send and receive whole
 * buffers against a deadline, pass a file descriptor, name a Unix socket.
 *
 * Every wait is bounded by an absolute CLOCK_MONOTONIC deadline (0: none),
 * so a peer that stops answering costs at most the time the caller chose,
 * however many calls it takes; the fd may be blocking or not (the calls
 * poll before each transfer).  Sends use MSG_NOSIGNAL: a vanished peer is
 * -EPIPE, never SIGPIPE.
 */
#ifndef LIBUFFD_UTIL_SOCK_H
#define LIBUFFD_UTIL_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <sys/un.h>

/* The deadline timeout_ms from now (timeout_ms < 0: none, 0 returned). */
uint64_t uffd__deadline_ms(int timeout_ms);

/* Send all of iov (which it consumes): 0, -ETIMEDOUT, -EPIPE, -errno. */
int uffd__sendv_all(int fd, struct iovec *iov, int iovcnt, uint64_t deadline);
int uffd__send_all(int fd, const void *buf, size_t len, uint64_t deadline);
/* Receive exactly len bytes: 0, -ECONNRESET (the peer closed, even midway),
 * -ETIMEDOUT, -errno. */
int uffd__recv_all(int fd, void *buf, size_t len, uint64_t deadline);
/* Wait until fd is readable: 1, 0 on timeout, -errno.  wake_fd (-1: none)
 * readable too ends the wait with -EINTR, for a stop request. */
int uffd__wait_readable(int fd, int wake_fd, uint64_t deadline);

/*
 * Send len bytes (len > 0) with a descriptor attached (SCM_RIGHTS) in one
 * sendmsg; receive them: *fd_out gets the descriptor (-1 if none came;
 * close-on-exec).  The receive takes what one message brings, at most len
 * bytes: returns the count, 0 if the peer closed, or -errno.
 */
int uffd__send_with_fd(int sock, const void *buf, size_t len, int fd);
int uffd__recv_with_fd(int sock, void *buf, size_t len, int *fd_out, uint64_t deadline);

/* Fill a Unix socket address: 0, -EINVAL (empty), -ENAMETOOLONG. */
int uffd__unix_addr(struct sockaddr_un *addr, const char *path);

#endif
