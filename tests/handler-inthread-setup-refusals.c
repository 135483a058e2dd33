// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * What in-thread mode cannot work with fails at set-up, with the errno
 * uffd/handler.h gives, instead of killing the process at a fault later:
 *
 *   - a userfaultfd without UFFD_FEAT_SIGBUS (its faults would be queued
 *     for a thread nobody runs), or with EVENT_FORK: EINVAL;
 *   - another thread of the process blocking SIGBUS (the kernel would
 *     kill the process at that thread's first fault): EBUSY, and once it
 *     unblocks the signal the same call succeeds;
 *   - a region holding the calling thread's stack (the signal frame of
 *     its faults goes there): EINVAL from uffd_handler_add;
 *   - a SIGBUS handler the program installed over libuffd's: EBUSY from
 *     uffd_handler_add and from a new handler, until libuffd's is back.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

static struct uffd_handler *new_inthread(struct uffd *u)
{
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);

	errno = 0;
	return uffd_handler_new(u, &o);
}

struct stack_case {
	struct uffd_handler *h;
	char *stack;
	size_t len;
	int err;
};

/* On a thread whose stack is the mapping stack_case.stack. */
static void *add_own_stack(void *arg)
{
	struct stack_case *c = arg;

	errno = 0;
	if (uffd_handler_add(c->h, c->stack, c->len, 0, UFFD_REG_WP, NULL, NULL))
		c->err = -1;
	else
		c->err = errno;
	return NULL;
}

static void on_sigbus(int sig)
{
}

int main(void)
{
	struct sigaction mine = { .sa_handler = on_sigbus }, saved;
	struct stack_case sc = { .len = 256 * 1024 };
	struct uffd plain, forky, u;
	struct uffd_handler *h;
	pthread_attr_t attr;
	struct t_sigbus_blocker blocker;
	pthread_t t;
	char *area;

	t_require_in_thread();
	/* No SIGBUS feature; EVENT_FORK. */
	t_open(&plain, 0, UFFD_NONBLOCK);
	CHECK(!new_inthread(&plain));
	CHECK_EQ(errno, EINVAL);
	uffd_close(&plain);
	t_open(&forky, UFFD_F(UFFD_FEAT_SIGBUS) | UFFD_F(UFFD_FEAT_EVENT_FORK), UFFD_NONBLOCK);
	CHECK(!new_inthread(&forky));
	CHECK_EQ(errno, EINVAL);
	uffd_close(&forky);

	/* Another thread blocks SIGBUS. */
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS) | UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), UFFD_NONBLOCK);
	t_sigbus_blocker_start(&blocker);
	CHECK(!new_inthread(&u));
	CHECK_EQ(errno, EBUSY);
	t_sigbus_blocker_unblock(&blocker);
	h = new_inthread(&u);
	CHECK(h);

	/* A region holding the calling thread's stack. */
	sc.h = h;
	sc.stack = t_map_anon(sc.len);
	CHECK(!pthread_attr_init(&attr));
	CHECK(!pthread_attr_setstack(&attr, sc.stack, sc.len));
	CHECK(!pthread_create(&t, &attr, add_own_stack, &sc));
	pthread_join(t, NULL);
	pthread_attr_destroy(&attr);
	CHECK_EQ(sc.err, EINVAL);
	/* The same mapping from another thread is fine. */
	CHECK(uffd_handler_add(h, sc.stack, sc.len, 0, UFFD_REG_WP, NULL, NULL));

	/* The program's SIGBUS handler over libuffd's. */
	area = t_map_anon(PAGE);
	CHECK_OK(sigaction(SIGBUS, &mine, &saved));
	errno = 0;
	CHECK(!uffd_handler_add(h, area, PAGE, 0, UFFD_REG_MISSING, NULL, NULL));
	CHECK_EQ(errno, EBUSY);
	CHECK(!new_inthread(&u));
	CHECK_EQ(errno, EBUSY);
	CHECK_OK(sigaction(SIGBUS, &saved, NULL));
	CHECK(uffd_handler_add(h, area, PAGE, 0, UFFD_REG_MISSING, NULL, NULL));
	CHECK_EQ(*(volatile char *)area, 0);	/* served: libuffd's again */

	uffd_handler_free(h);
	uffd_close(&u);
	t_sigbus_blocker_end(&blocker);
	return T_EXIT_PASS;
}
