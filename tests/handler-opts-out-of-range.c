/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_handler_new() refuses options out of their stated range with EINVAL
 * instead of mending them quietly (a thread count of 100000 used to start
 * some 22000 threads): threads -3, -1, 100000 and UFFD_HANDLER_MAX_THREADS
 * + 1; a wait that is no UFFD_WAIT_* value (-1, UFFD_WAIT_EPOLL + 1, 99);
 * spin_us UFFD_HANDLER_MAX_SPIN_US + 1 and UINT_MAX; batch -1.  A refused
 * handler leaves the userfaultfd as it was (still a blocking fd: the
 * handler makes it non-blocking only once accepted).  The limits
 * themselves are accepted - threads UFFD_HANDLER_MAX_THREADS, spin_us
 * UFFD_HANDLER_MAX_SPIN_US, every UFFD_WAIT_* value, a batch above 64
 * (read as 64) - and a handler of 2 threads still starts, serves a fault
 * and stops.  The pager takes its fillers' count to the handler: fillers
 * 100000 is refused the same way.
 */
#include <fcntl.h>
#include <limits.h>
#include <uffd/handler.h>
#include <uffd/pager.h>

#include "lib/harness.h"

static struct uffd u;

/*
 * Options made with UFFD_OPTS where they are used: a struct passed or
 * returned by value need not keep its padding zero, and the library
 * refuses a non-zero byte past the fields it knows.
 */
#define OPTS(name, threads_, wait_, spin_us_, batch_)				\
	UFFD_OPTS(uffd_handler_opts, name, .threads = (threads_), .wait = (wait_),	\
		  .spin_us = (spin_us_), .batch = (batch_))
#define REFUSED(what, ...) do { OPTS(o_, __VA_ARGS__); expect_refused(&o_, what); } while (0)
#define ACCEPTED(what, ...) do { OPTS(o_, __VA_ARGS__); expect_accepted(&o_, what); } while (0)

static void expect_refused(const struct uffd_handler_opts *o, const char *what)
{
	struct uffd_handler *h;

	errno = 0;
	h = uffd_handler_new(&u, o);
	if (h)
		FAIL("%s: accepted", what);
	if (errno != EINVAL)
		FAIL("%s: errno %s, want EINVAL", what, strerrorname_np(errno));
	if (fcntl(u.fd, F_GETFL) & O_NONBLOCK)
		FAIL("%s: the refused handler made the fd non-blocking", what);
}

static void expect_accepted(const struct uffd_handler_opts *o, const char *what)
{
	struct uffd_handler *h = uffd_handler_new(&u, o);

	if (!h)
		FAIL("%s: refused: %s", what, strerror(errno));
	uffd_handler_free(h);
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, po, .buffer_bytes = 16 * PAGE, .fillers = 100000);
	OPTS(two, 2, 0, 0, 0);
	struct uffd_handler *h;
	struct t_access a;
	char *area;
	int ret, w;

	/* A blocking fd, so a refused handler's fcntl would show. */
	ret = uffd_open(&u, 0, 0, UFFD_ALLOW_USER_ONLY);
	if (ret)
		FAIL("uffd_open: %s", strerror(-ret));

	REFUSED("threads -3", -3, 0, 0, 0);
	REFUSED("threads -1", -1, 0, 0, 0);
	REFUSED("threads 100000", 100000, 0, 0, 0);
	REFUSED("threads MAX + 1", UFFD_HANDLER_MAX_THREADS + 1, 0, 0, 0);
	REFUSED("wait -1", 0, (enum uffd_wait)-1, 0, 0);
	REFUSED("wait EPOLL + 1", 0, UFFD_WAIT_EPOLL + 1, 0, 0);
	REFUSED("wait 99", 0, (enum uffd_wait)99, 0, 0);
	REFUSED("spin_us MAX + 1", 0, 0, UFFD_HANDLER_MAX_SPIN_US + 1, 0);
	REFUSED("spin_us UINT_MAX", 0, 0, UINT_MAX, 0);
	REFUSED("batch -1", 0, 0, 0, -1);

	ACCEPTED("threads MAX", UFFD_HANDLER_MAX_THREADS, 0, 0, 0);
	ACCEPTED("spin_us MAX", 0, 0, UFFD_HANDLER_MAX_SPIN_US, 0);
	ACCEPTED("batch 1000", 0, 0, 0, 1000);
	for (w = UFFD_WAIT_DEFAULT; w <= UFFD_WAIT_EPOLL; w++)
		ACCEPTED("every UFFD_WAIT_*", 0, (enum uffd_wait)w, 0, 0);

	/* Valid options still make a working handler. */
	area = t_map_anon(PAGE);
	h = uffd_handler_new(&u, &two);
	if (!h)
		FAIL("uffd_handler_new: %s", strerror(errno));
	CHECK(uffd_handler_add(h, area, PAGE, 0, UFFD_REG_MISSING, NULL, NULL));
	CHECK_OK(uffd_handler_start(h));
	t_access_start(&a, area, false, 0);
	if (!t_access_wait(&a, 5000))
		FAIL("the fault was not served");
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);

	/* Through the pager. */
	errno = 0;
	if (uffd_pager_new(&po))
		FAIL("uffd_pager_new accepted fillers 100000");
	if (errno == EOPNOTSUPP)
		SKIP("no userfaultfd write-protect: no pager");
	CHECK_EQ(errno, EINVAL);
	return T_EXIT_PASS;
}
