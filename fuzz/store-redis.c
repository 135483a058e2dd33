/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the Redis store's data path parsing what a server answers.
 * A fake server on a loopback port answers the store's set-up PING with
 * +PONG, then writes the input whole to every data connection (and shuts
 * it for writing, so a parser that wants more sees the end at once).  The
 * store then does a fixed round of I/O: a batch of page reads, a partial
 * read (GETRANGE), a batch of writes, a partial write (SETRANGE).  Any
 * answer must end as data or -EIO, never a crash, a hang or a read past
 * what arrived.  Cluster redirections are not followed (a single node:
 * MOVED is an error), so the fuzzer cannot make the store connect
 * elsewhere.  Without hiredis the store does not exist: nothing to do.
 */
#include <stdint.h>
#include <stddef.h>

#ifdef HAVE_HIREDIS
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <uffd/pager.h>

#include "fuzz.h"
#include "pager/store_internal.h"

#define PAGE		4096
#define PAGES		8
#define MAX_INPUT	(64u << 10)

static pthread_mutex_t input_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t input[MAX_INPUT];
static size_t input_len;
static int connections;		/* this round's, under input_lock */
static int port;

/* Drain what the client sends until it closes (or 2 s), so closing never
 * resets the connection under the data it has not read yet. */
static void drain(int fd)
{
	char sink[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, 2000) == 1 && recv(fd, sink, sizeof(sink), 0) > 0)
		;
}

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg, first;
	uint8_t *copy = NULL;
	size_t len = 0;

	pthread_mutex_lock(&input_lock);
	first = connections++ == 0;
	if (!first && input_len && (copy = malloc(input_len))) {
		memcpy(copy, input, input_len);
		len = input_len;
	}
	pthread_mutex_unlock(&input_lock);
	if (first) {
		char ping[64];

		/* hiredis sends *1\r\n$4\r\nPING\r\n */
		if (recv(fd, ping, sizeof(ping), 0) > 0)
			send(fd, "+PONG\r\n", 7, MSG_NOSIGNAL);
	} else if (len) {
		send(fd, copy, len, MSG_NOSIGNAL);
	}
	shutdown(fd, SHUT_WR);
	drain(fd);
	close(fd);
	free(copy);
	return NULL;
}

static void *acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			continue;
		if (pthread_create(&t, &attr, serve_conn, (void *)(intptr_t)fd))
			close(fd);
	}
	return NULL;
}

static void start_server(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	pthread_t t;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) ||
	    pthread_create(&t, NULL, acceptor, (void *)(intptr_t)lfd))
		abort();
	port = ntohs(a.sin_port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char pages[PAGES][PAGE];
	struct uffd_store_io io[PAGES];
	struct uffd_store *s;
	int i;

	if (size > MAX_INPUT)
		return 0;
	if (!port)
		start_server();
	pthread_mutex_lock(&input_lock);
	memcpy(input, data, size);
	input_len = size;
	connections = 0;
	pthread_mutex_unlock(&input_lock);

	UFFD_OPTS(uffd_store_redis_opts, o, .host = "127.0.0.1", .port = port,
		  .prefix = "fuzz", .size = PAGES * PAGE, .timeout_ms = 200);
	s = uffd_store_redis(&o);
	if (!s)
		return 0;
	for (i = 0; i < PAGES; i++)
		io[i] = (struct uffd_store_io){ .buf = pages[i], .len = PAGE,
						.off = (uint64_t)i * PAGE };
	s->ops->read_batch(s->data, io, PAGES);
	s->ops->read(s->data, pages[0], 100, 10);
	for (i = 0; i < PAGES; i++)
		memset(pages[i], i, PAGE);
	s->ops->write_batch(s->data, io, PAGES);
	s->ops->write(s->data, pages[1], 300, PAGE + 7);
	uffd_store_free(s);
	return 0;
}

#else

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data;
	(void)size;
	return 0;
}

#endif
