/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Frames over the page server's socket: see frame_io.h.  Receiving is
 * split in two (take a whole frame, read more) because the server reads
 * its first bytes before it knows whether they are frames at all (a
 * Firecracker peer sends JSON).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame_io.h"
#include "util/sock.h"

/*
 * Frames up to this size are built on the stack.  A client sends its
 * small ones (STATS_REQ, BYE) holding its lock, or from the thread that
 * takes over its userfaultfd if the server dies: neither may wait for the
 * allocator, which a fork of the client holds until its FORK is read.
 */
#define SMALL_FRAME		256

int serve_frame_send(int sock, uint16_t type, const void *payload, uint32_t len, int fd,
		     uint64_t deadline)
{
	uint8_t small[SMALL_FRAME] __attribute__((aligned(8)));
	uint8_t *buf = len <= SMALL_FRAME - SERVE_HDR ? small : malloc(SERVE_HDR + len);
	int ret;

	if (!buf)
		return -ENOMEM;
	if (len)
		memcpy(buf + SERVE_HDR, payload, len);
	uffd__serve_frame_put(buf, type, buf + SERVE_HDR, len);
	ret = fd >= 0 ? uffd__send_with_fd(sock, buf, SERVE_HDR + len, fd) :
			uffd__send_all(sock, buf, SERVE_HDR + len, deadline);
	if (buf != small)
		free(buf);
	return ret;
}

int serve_rx_init(struct serve_rx *rx, size_t cap)
{
	*rx = (struct serve_rx){ .buf = malloc(cap), .cap = cap };
	return rx->buf ? 0 : -ENOMEM;
}

void serve_rx_free(struct serve_rx *rx)
{
	free(rx->buf);
	*rx = (struct serve_rx){ 0 };
}

int serve_rx_take(struct serve_rx *rx, struct serve_frame *f)
{
	int ret;

	if (rx->consumed) {
		memmove(rx->buf, rx->buf + rx->consumed, rx->len - rx->consumed);
		rx->len -= rx->consumed;
		rx->consumed = 0;
	}
	ret = uffd__serve_frame_parse(rx->buf, rx->len, f);
	if (ret <= 0)
		return ret;
	rx->consumed = ret;
	return 1;
}

int serve_rx_more(struct serve_rx *rx, int sock, int wake_fd, uint64_t deadline,
		  bool wait, int *fd)
{
	int n;

	*fd = -1;
	if (rx->len == rx->cap)
		return -EMSGSIZE;
	if (wait) {
		n = uffd__wait_readable(sock, wake_fd, deadline);
		if (n <= 0)
			return n ? n : -ETIMEDOUT;
	}
	/* Without wait: a deadline already past takes what is there. */
	n = uffd__recv_with_fd(sock, rx->buf + rx->len, rx->cap - rx->len, fd,
			       wait ? deadline : 1);
	if (n < 0)
		return n;
	if (n == 0)
		return -ECONNRESET;
	rx->len += n;
	return 0;
}
