/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handler's lifetime contract (handler.h, "Lifetime"):
 *  - a callback that returns UFFD_FAULT_DEFERRED and never resolves leaves
 *    its thread blocked; uffd_handler_stop() still returns promptly (it does
 *    not wait for faults), unregisters the region, and the blocked thread
 *    then completes as an ordinary fault: it reads zeros;
 *  - a start after a stop registers the regions again: a fault in the
 *    region reaches its callback again; a deferred fault is resolved from
 *    another thread with uffd_region_copy(), which counts the page in
 *    stats.pages_resolved like any fill;
 *  - a handler freed without ever being started also unregisters its
 *    regions ("stop (and free, started or not) ... unregisters every
 *    region"), so a later access there completes instead of blocking on a
 *    userfaultfd nobody reads.
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"

static int deferred_calls;	/* atomic */
static int served_calls;	/* atomic */

static int defer_forever(struct uffd_fault *f)
{
	(void)f;
	__atomic_fetch_add(&deferred_calls, 1, __ATOMIC_RELAXED);
	return UFFD_FAULT_DEFERRED;
}

static char ff_page[PAGE];	/* set before uffd_handler_start() */

static int fill_ff(struct uffd_fault *f)
{
	__atomic_fetch_add(&served_calls, 1, __ATOMIC_RELAXED);
	return uffd_fault_copy(f, ff_page, PAGE);
}

struct stopper {
	pthread_t thread;
	struct uffd_handler *h;
	int ret;
	int done;		/* atomic */
};

static void *stop_main(void *arg)
{
	struct stopper *st = arg;

	st->ret = uffd_handler_stop(st->h);
	__atomic_store_n(&st->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* uffd_handler_stop() from another thread; fail if it takes over 2 s. */
static void stop_with_deadline(struct uffd_handler *h)
{
	struct stopper st = { .h = h };

	if (pthread_create(&st.thread, NULL, stop_main, &st))
		FAIL("pthread_create");
	if (!t_wait_flag(&st.done, 2000))
		FAIL("uffd_handler_stop() did not return within 2 s");
	pthread_join(st.thread, NULL);
	CHECK_OK(st.ret);
}

static void wait_calls(int *counter, int want)
{
	int waited;

	for (waited = 0; waited < 2000 && __atomic_load_n(counter, __ATOMIC_RELAXED) < want; waited++)
		t_sleep_ms(1);
	CHECK_EQ(__atomic_load_n(counter, __ATOMIC_RELAXED), want);
}

static void deferred_then_stop_and_restart(void)
{
	struct uffd_region_ops ops = { .missing = defer_forever };
	struct uffd_region_ops serve = { .missing = fill_ff };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct uffd_region *r;
	struct t_access a;
	struct uffd u;
	char *area;

	t_open(&u, 0, 0);
	area = t_map_anon(4 * PAGE);
	memset(ff_page, 0xff, PAGE);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	r = uffd_handler_add(h, area, 4 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL);
	CHECK(r);
	CHECK_OK(uffd_handler_start(h));

	/* The callback defers and nobody resolves: the access stays blocked. */
	t_access_start(&a, area + PAGE + 9, false, 1);
	wait_calls(&deferred_calls, 1);
	CHECK(!t_access_wait(&a, 100));

	stop_with_deadline(h);
	/* Unregistered: the blocked thread re-faults as an ordinary fault. */
	if (!t_access_wait(&a, 2000))
		FAIL("blocked access did not complete after stop");
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	CHECK(t_is_zero(area + PAGE, PAGE));
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 1);
	CHECK_EQ(s.pages_resolved, 0);
	CHECK_EQ(s.callback_errors, 0);
	CHECK_EQ(s.unknown_addr, 0);
	CHECK_EQ(__atomic_load_n(&deferred_calls, __ATOMIC_RELAXED), 1);
	/* A second stop succeeds (there is nothing left to join). */
	CHECK_OK(uffd_handler_stop(h));

	/*
	 * Restart: the regions are registered again, so a fault in the old
	 * region reaches the callback again, which defers it; the test then
	 * resolves it from its own thread with uffd_region_copy().
	 */
	CHECK_OK(uffd_handler_start(h));
	t_access_start(&a, area + 2 * PAGE + 1, false, 1);
	wait_calls(&deferred_calls, 2);
	CHECK(!t_access_wait(&a, 100));
	CHECK_OK(uffd_region_copy(r, area + 2 * PAGE, ff_page, PAGE));
	if (!t_access_wait(&a, 2000))
		FAIL("deferred fault not woken by uffd_region_copy()");
	t_access_join(&a);
	CHECK_EQ((unsigned char)a.value, 0xff);
	CHECK(memcmp(area + 2 * PAGE, ff_page, PAGE) == 0);
	/* Copying over a filled page is "someone else resolved it": 0. */
	CHECK_OK(uffd_region_copy(r, area + 2 * PAGE, ff_page, PAGE));
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 2);
	/* uffd_region_*() fills are counted too: one page filled, one copy
	 * that found it already there. */
	CHECK_EQ(s.pages_resolved, 1);
	CHECK_EQ(s.eexist, 1);

	/* The region object still covers the range: re-adding it is refused. */
	errno = 0;
	CHECK(!uffd_handler_add(h, area, 4 * PAGE, 0, UFFD_REG_MISSING, &serve, NULL));
	CHECK_EQ(errno, EINVAL);
	/* Remove + add swaps the callbacks; the new one serves at once. */
	CHECK_OK(uffd_handler_remove(r));
	r = uffd_handler_add(h, area, 4 * PAGE, 0, UFFD_REG_MISSING, &serve, NULL);
	CHECK(r);
	t_access_start(&a, area + 3 * PAGE + 1, false, 0);
	if (!t_access_wait(&a, 2000))
		FAIL("fault after remove + add not served");
	t_access_join(&a);
	CHECK_EQ((unsigned char)a.value, 0xff);
	CHECK_EQ(__atomic_load_n(&served_calls, __ATOMIC_RELAXED), 1);
	CHECK_EQ(__atomic_load_n(&deferred_calls, __ATOMIC_RELAXED), 2);
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 3);

	stop_with_deadline(h);
	uffd_handler_free(h);
	uffd_close(&u);
}

static void free_without_start(void)
{
	struct uffd_handler *h;
	struct t_access a;
	struct uffd u;
	char *area;

	t_open(&u, 0, 0);
	area = t_map_anon(2 * PAGE);
	h = uffd_handler_new(&u, NULL);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, 2 * PAGE, 0, UFFD_REG_MISSING, NULL, NULL));
	/* Never started: stop succeeds (and unregisters the region). */
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);

	/* The userfaultfd is still open: a region free left registered would
	 * block this access until it is closed. */
	t_access_start(&a, area + PAGE, false, 1);
	if (!t_access_wait(&a, 1000)) {
		uffd_close(&u);		/* no handler left: unblocks the access */
		t_access_join(&a);
		FAIL("uffd_handler_free() without start left the region "
		     "registered: the access blocked until the uffd was closed");
	}
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	uffd_close(&u);
}

int main(void)
{
	deferred_then_stop_and_restart();
	free_without_start();
	return T_EXIT_PASS;
}
