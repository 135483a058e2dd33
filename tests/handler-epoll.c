/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UFFD_WAIT_EPOLL: the handler starts no thread; the caller's own loop
 * polls uffd_handler_fd() (the userfaultfd) and calls
 * uffd_handler_dispatch(), which serves what is queued and returns the
 * number of messages it handled.  With nothing queued dispatch returns 0;
 * a faulting thread stays blocked until the loop dispatches, then reads
 * the callback's bytes.  Dispatch on a handler with threads is -EINVAL.
 */
#include <poll.h>
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"

static char *area, *src;	/* set before the first dispatch */
static int calls;

static int copy_from_source(struct uffd_fault *f)
{
	calls++;		/* dispatch runs in the caller's thread */
	return uffd_fault_copy(f, src + ((char *)f->addr - area), PAGE);
}

/* Poll the handler's fd until readable, at most ms; true if readable. */
static bool wait_readable(struct uffd_handler *h, int ms)
{
	struct pollfd pfd = { .fd = uffd_handler_fd(h), .events = POLLIN };
	int n = poll(&pfd, 1, ms);

	CHECK(n >= 0);
	return n == 1 && (pfd.revents & POLLIN);
}

int main(void)
{
	struct uffd_region_ops ops = { .missing = copy_from_source };
	UFFD_OPTS(uffd_handler_opts, opts, .wait = UFFD_WAIT_EPOLL);
	UFFD_OPTS(uffd_handler_opts, threaded, .threads = 1);
	struct uffd_handler_stats s;
	struct uffd_handler *h, *h2;
	struct t_access a;
	struct uffd u, u2;
	int n, rounds, handled = 0;

	t_open(&u, 0, 0);
	area = t_map_anon(4 * PAGE);
	src = t_map_anon(4 * PAGE);
	t_fill(src, 4 * PAGE, 13);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	CHECK_EQ(uffd_handler_fd(h), u.fd);
	CHECK(uffd_handler_add(h, area, 4 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(uffd_handler_start(h));

	/* Nothing queued. */
	CHECK(!wait_readable(h, 0));
	CHECK_EQ(uffd_handler_dispatch(h), 0);

	t_access_start(&a, area + 3 * PAGE + 11, false, 0);
	/* No thread serves it: it stays blocked until we dispatch. */
	CHECK(wait_readable(h, 2000));
	CHECK(!t_access_wait(&a, 50));
	for (rounds = 0; rounds < 100 && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE);
	     rounds++) {
		if (!wait_readable(h, 20))
			continue;
		n = uffd_handler_dispatch(h);
		CHECK(n >= 0);
		handled += n;
	}
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(handled, 1);
	CHECK_EQ(calls, 1);
	CHECK_EQ((unsigned char)a.value, (unsigned char)src[3 * PAGE + 11]);
	CHECK(memcmp(area + 3 * PAGE, src + 3 * PAGE, PAGE) == 0);
	CHECK_EQ(uffd_handler_dispatch(h), 0);

	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 1);
	CHECK_EQ(s.messages, 1);
	CHECK_EQ(s.reads, 1);
	CHECK_EQ(s.pages_resolved, 1);
	CHECK_EQ(s.contexts, 1);
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);

	/* Dispatch belongs to EPOLL handlers only. */
	t_open(&u2, 0, 0);
	h2 = uffd_handler_new(&u2, &threaded);
	CHECK(h2);
	CHECK_EQ(uffd_handler_dispatch(h2), -EINVAL);
	uffd_handler_free(h2);
	uffd_close(&u2);
	return T_EXIT_PASS;
}
