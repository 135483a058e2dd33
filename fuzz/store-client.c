/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the socket store's client parsing what a server sends.  The
 * input is the server's side of a connection - the welcome, then responses
 * and their data - written whole into one end of a socketpair (then shut
 * for writing, so a client that wants more sees the end at once); the
 * client is a store over the other end (uffd__store_socket_over), which
 * then does a fixed round of I/O: reads (one larger than a request may
 * carry, so split by the welcome's max_io), a write, a flush, a read at
 * the end.  Tags run 1, 2, 3... per store, so a seed can answer exactly.
 */
#include <sys/socket.h>
#include <uffd/pager.h>

#include "fuzz.h"
#include "pager/store_internal.h"

#define MAX_INPUT	(128u << 10)	/* fits the socket's buffer */

static uint8_t buf[1536];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uffd_store *s;
	int64_t len;
	int sv[2], one = 1 << 20;

	if (size > MAX_INPUT)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	if (size && send(sv[1], data, size, MSG_NOSIGNAL) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	s = uffd__store_socket_over(sv[0], 1000);
	if (!s) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	len = s->ops->size(s->data);
	s->ops->read(s->data, buf, 512, 0);
	s->ops->read(s->data, buf, sizeof(buf), 512);
	memset(buf, 0xa5, 64);
	s->ops->write(s->data, buf, 64, 8);
	s->ops->flush(s->data);
	if (len > 100)
		s->ops->read(s->data, buf, 100, len - 50);
	uffd_store_free(s);
	close(sv[1]);
	return 0;
}
