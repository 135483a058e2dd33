// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The services' socket helpers (src/util/sock.h): a receive from a silent
 * peer ends with -ETIMEDOUT at its deadline, one whose peer closes midway
 * with -ECONNRESET, a send to a closed peer with -EPIPE (no SIGPIPE); a
 * descriptor passed with data arrives usable, and a message without one
 * gives -1.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/harness.h"
#include "util/clock.h"
#include "util/sock.h"

int main(void)
{
	char buf[64], got[64];
	int sv[2], pipefd[2], fd = -2;
	uint64_t t0;

	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	/* silent peer: the deadline ends the wait */
	t0 = mono_ns();
	CHECK_EQ(uffd__recv_all(sv[0], buf, sizeof(buf), uffd__deadline_ms(50)), -ETIMEDOUT);
	CHECK(mono_ns() - t0 >= 50 * 1000000ull);
	/* partial, then the peer closes: ECONNRESET, not a short success */
	CHECK_OK(uffd__send_all(sv[1], "abc", 3, 0));
	close(sv[1]);
	CHECK_EQ(uffd__recv_all(sv[0], buf, sizeof(buf), uffd__deadline_ms(1000)), -ECONNRESET);
	/* sending to a closed peer: EPIPE, and the process survives */
	CHECK_EQ(uffd__send_all(sv[0], "x", 1, uffd__deadline_ms(1000)), -EPIPE);
	close(sv[0]);

	/* a descriptor travels with its data */
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_OK(pipe(pipefd));
	memset(buf, 'q', sizeof(buf));
	CHECK_OK(uffd__send_with_fd(sv[0], buf, sizeof(buf), pipefd[1]));
	CHECK_EQ(uffd__recv_with_fd(sv[1], got, sizeof(got), &fd, uffd__deadline_ms(1000)),
		 sizeof(got));
	CHECK(fd >= 0);
	CHECK(memcmp(buf, got, sizeof(buf)) == 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(write(fd, "z", 1), 1);
	CHECK_EQ(read(pipefd[0], got, 1), 1);
	CHECK_EQ(got[0], 'z');
	close(fd);
	/* plain data: no descriptor */
	CHECK_OK(uffd__send_all(sv[0], "hello", 5, 0));
	CHECK_EQ(uffd__recv_with_fd(sv[1], got, 5, &fd, uffd__deadline_ms(1000)), 5);
	CHECK_EQ(fd, -1);
	/* the peer went away: 0 */
	close(sv[0]);
	CHECK_EQ(uffd__recv_with_fd(sv[1], got, 5, &fd, uffd__deadline_ms(1000)), 0);
	close(sv[1]);
	close(pipefd[0]);
	close(pipefd[1]);
	return T_EXIT_PASS;
}
