/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "checker-pause.h"
#include "harness.h"

struct pauser {
	pthread_t thread;
	struct uffd_checker *c;
	int done;		/* atomic */
};

static void *pause_main(void *arg)
{
	struct pauser *p = arg;

	uffd_checker_pause(p->c);
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void t_checker_pause_within(struct uffd_checker *c, int ms)
{
	struct pauser p = { .c = c };

	CHECK_OK(pthread_create(&p.thread, NULL, pause_main, &p));
	if (!t_wait_flag(&p.done, ms))
		FAIL("a writer did not park within %d ms: blocked on a protected page", ms);
	pthread_join(p.thread, NULL);
}
