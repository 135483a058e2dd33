// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode: a thread cancelled while its fault's callback runs is
 * cancelled once the fault is resolved, not inside the callback.  The
 * callback reaches a cancellation point (nanosleep) with the cancel
 * pending; had the thread ended there, the in-thread handler's count of
 * callbacks running would never drop again, and freeing the handler -
 * which waits for the callbacks running - would hang.  Here the access
 * completes (zeros), the thread ends at its next cancellation point
 * (PTHREAD_CANCELED), and the handler is freed.
 */
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <uffd/handler.h>

#include "lib/harness.h"

static int in_callback, cancel_sent, accessed;	/* atomic */

static void nap(void)
{
	struct timespec ms = { 0, 1000000 };

	nanosleep(&ms, NULL);
}

static int zero_after_cancel(struct uffd_fault *f)
{
	__atomic_store_n(&in_callback, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&cancel_sent, __ATOMIC_SEQ_CST))
		nap();
	nap();			/* a cancellation point, the cancel pending */
	return uffd_fault_zero(f, PAGE);
}

static void *toucher(void *arg)
{
	volatile char *p = arg;
	char v = *p;

	__atomic_store_n(&accessed, v == 0 ? 1 : 2, __ATOMIC_SEQ_CST);
	for (;;)
		pthread_testcancel();
	return NULL;
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = zero_after_cancel };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler *h;
	pthread_t t;
	struct uffd u;
	void *ret;
	char *area;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	area = t_map_anon(PAGE);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(-pthread_create(&t, NULL, toucher, area));
	CHECK(t_wait_flag(&in_callback, 5000));
	CHECK_OK(-pthread_cancel(t));
	__atomic_store_n(&cancel_sent, 1, __ATOMIC_SEQ_CST);
	CHECK_OK(-pthread_join(t, &ret));
	CHECK(ret == PTHREAD_CANCELED);
	CHECK_EQ(__atomic_load_n(&accessed, __ATOMIC_SEQ_CST), 1);
	CHECK(t_is_zero(area, PAGE));
	uffd_handler_free(h);	/* waits for the callbacks running: none */
	uffd_close(&u);
	munmap(area, PAGE);
	return T_EXIT_PASS;
}
