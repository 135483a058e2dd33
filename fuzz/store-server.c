/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the socket store's server parsing what a client sends.  The
 * input is the client's side of a connection - hello, then requests and
 * their data - written into one end of a socketpair, the server serving 64
 * KiB of memory on the other end (uffd__store_serve_conn, in a thread)
 * until the input ends; its answers are read and dropped as they come, so
 * neither side ever waits on a full socket.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "pager/store_internal.h"

#define MEM_LEN		(64u << 10)

struct server_arg {
	int fd;
	uint8_t *mem;
};

static void *server_main(void *p)
{
	struct server_arg *a = p;

	if (uffd__store_serve_conn(a->fd, a->mem, MEM_LEN))
		abort();
	shutdown(a->fd, SHUT_RDWR);	/* the client sees the end */
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *mem;
	struct server_arg a;
	struct pollfd pfd;
	char sink[65536];
	size_t sent = 0;
	pthread_t t;
	int sv[2];
	ssize_t n;

	if (!mem) {
		mem = mmap(NULL, MEM_LEN, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			abort();
	}
	memset(mem, 0x5a, MEM_LEN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	a = (struct server_arg){ .fd = sv[1], .mem = mem };
	if (pthread_create(&t, NULL, server_main, &a))
		abort();
	/* write the input while draining the answers; then read to the end */
	for (;;) {
		pfd = (struct pollfd){ .fd = sv[0], .events = POLLIN |
						(sent < size ? POLLOUT : 0) };
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)	/* libFuzzer's timers */
				continue;
			abort();
		}
		if (pfd.revents & POLLIN) {
			n = recv(sv[0], sink, sizeof(sink), MSG_DONTWAIT);
			if (n == 0)
				break;		/* the server is done */
			if (n < 0 && errno != EAGAIN)
				break;
		}
		if (sent < size && (pfd.revents & POLLOUT)) {
			n = send(sv[0], data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				sent += n;
			else if (n < 0 && errno != EAGAIN)
				sent = size;	/* the server hung up */
			if (sent == size)
				shutdown(sv[0], SHUT_WR);
		} else if (sent == size && !(pfd.revents & POLLIN)) {
			break;	/* POLLHUP or POLLERR without data */
		}
	}
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
