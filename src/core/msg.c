/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading and decoding userfaultfd messages.
 *
 * One read(2) returns as many 32-byte messages as fit and are queued, so a
 * batch costs one system call.  With a timeout we poll first; a blocking fd
 * read with no timeout goes straight to read(2), which is the cheapest way
 * to sleep until the kernel queues a fault.  A deadline needs poll(), which
 * the kernel allows only on a non-blocking userfaultfd.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "internal.h"

#define MSG_BATCH_MAX 64	/* messages per read(2); 2 KiB on the stack */

static void decode(const struct uffd_msg *m, struct uffd_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT: {
		uint64_t flags = m->arg.pagefault.flags;

		ev->type = UFFD_EV_FAULT;
		ev->fault.addr = m->arg.pagefault.address;
		ev->fault.write = flags & UFFD_PAGEFAULT_FLAG_WRITE;
		ev->fault.kind = (flags & UFFD_PAGEFAULT_FLAG_WP) ? UFFD_FAULT_WP :
				 (flags & UFFD_PAGEFAULT_FLAG_MINOR) ? UFFD_FAULT_MINOR :
				 UFFD_FAULT_MISSING;
		ev->fault.tid = m->arg.pagefault.feat.ptid;
		break;
	}
	case UFFD_EVENT_FORK:
		ev->type = UFFD_EV_FORK;
		ev->fork.fd = (int)m->arg.fork.ufd;
		break;
	case UFFD_EVENT_REMAP:
		ev->type = UFFD_EV_REMAP;
		ev->remap.from = m->arg.remap.from;
		ev->remap.to = m->arg.remap.to;
		ev->remap.len = m->arg.remap.len;
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		ev->type = m->event == UFFD_EVENT_REMOVE ? UFFD_EV_REMOVE : UFFD_EV_UNMAP;
		ev->range.start = m->arg.remove.start;
		ev->range.end = m->arg.remove.end;
		break;
	default:
		ev->type = UFFD_EV_UNKNOWN;
		ev->unknown.code = m->event;
		break;
	}
}

/* Wait for the fd to become readable; 1 ready, 0 timed out, -errno. */
static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int ret = poll(&pfd, 1, timeout_ms);

	if (ret < 0)
		return -errno;
	if (ret && (pfd.revents & (POLLERR | POLLNVAL)))
		return -EBADF;
	return ret;
}

int uffd_read_events(struct uffd *u, struct uffd_event *ev, int max,
		     int timeout_ms)
{
	struct uffd_msg msgs[MSG_BATCH_MAX];
	ssize_t got;
	int i, n;

	if (!u || !ev || max <= 0)
		return -EINVAL;
	if (max > MSG_BATCH_MAX)
		max = MSG_BATCH_MAX;
	/* The kernel answers poll() on a blocking userfaultfd with POLLERR
	 * (a fault can be woken before it is read), so only a non-blocking
	 * fd can wait with a deadline. */
	if (!(u->how & UFFD_OPENED_NONBLOCK) && timeout_ms >= 0)
		return -EINVAL;
	for (;;) {
		got = read(u->fd, msgs, sizeof(msgs[0]) * max);
		if (got >= 0)
			break;
		if (errno != EAGAIN)
			return -errno;
		/* Non-blocking fd with nothing queued. */
		if (timeout_ms == 0)
			return 0;
		n = wait_readable(u->fd, timeout_ms);
		if (n <= 0)
			return n;
		/* Another reader may have taken it: with a finite timeout we
		 * report "none" rather than wait again past the deadline. */
		if (timeout_ms > 0)
			timeout_ms = 0;
	}
	n = (int)(got / (ssize_t)sizeof(msgs[0]));
	for (i = 0; i < n; i++)
		decode(&msgs[i], &ev[i]);
	return n;
}

const char *uffd_event_name(enum uffd_event_type t)
{
	static const char *const names[] = {
		[UFFD_EV_FAULT] = "fault", [UFFD_EV_FORK] = "fork",
		[UFFD_EV_REMAP] = "remap", [UFFD_EV_REMOVE] = "remove",
		[UFFD_EV_UNMAP] = "unmap", [UFFD_EV_UNKNOWN] = "unknown",
	};

	if ((unsigned)t > UFFD_EV_UNKNOWN) {
		errno = EINVAL;
		return NULL;
	}
	return names[t];
}

const char *uffd_fault_kind_name(enum uffd_fault_kind k)
{
	static const char *const names[] = {
		[UFFD_FAULT_MISSING] = "missing", [UFFD_FAULT_WP] = "wp",
		[UFFD_FAULT_MINOR] = "minor",
	};

	if ((unsigned)k > UFFD_FAULT_MINOR) {
		errno = EINVAL;
		return NULL;
	}
	return names[k];
}
