/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Frames (proto.h) over the page server's Unix socket, for both ends of
 * the handshake: a frame is built whole and sent in one call, with a
 * descriptor attached (SCM_RIGHTS) or not, and received bytes gather in a
 * buffer of at most one maximal frame from which each frame is taken once
 * it is whole.  A descriptor that arrives with the bytes is the caller's:
 * what it belongs to is the caller's protocol, not this file's.
 */
#ifndef LIBUFFD_SERVE_FRAME_IO_H
#define LIBUFFD_SERVE_FRAME_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Send a frame of type with len bytes of payload, fd attached (-1: none;
 * one sendmsg then, with no deadline): 0, or -errno. */
int serve_frame_send(int sock, uint16_t type, const void *payload, uint32_t len, int fd,
		     uint64_t deadline);

struct serve_rx {
	uint8_t *buf;
	size_t len, cap;
	size_t consumed;	/* the frame last taken, dropped by the next take */
};

/* A buffer of cap bytes: 0, or -ENOMEM. */
int serve_rx_init(struct serve_rx *rx, size_t cap);
void serve_rx_free(struct serve_rx *rx);

/*
 * Drop the frame taken last and take the next one, if whole, into f (its
 * payload points into the buffer: valid until the next take): 1, 0 when
 * more bytes are needed, or uffd__serve_frame_parse()'s error.
 */
int serve_rx_take(struct serve_rx *rx, struct serve_frame *f);

/*
 * Receive more bytes, and a descriptor into *fd (-1 if none came): with
 * wait, until deadline or until wake_fd (-1: none) is readable (-EINTR);
 * without, only what is there now (-ETIMEDOUT if nothing).  0, or
 * -EMSGSIZE (the buffer is full), -ECONNRESET (the peer closed), -errno.
 */
int serve_rx_more(struct serve_rx *rx, int sock, int wake_fd, uint64_t deadline,
		  bool wait, int *fd);

#endif
