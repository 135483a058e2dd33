/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_handler_stop() leaves no writer blocked on write-protect: a WP fault
 * the service deferred and never resolved completes once the handler stops
 * (the kernel's UNREGISTER wakes MISSING waiters but not WP ones, so the
 * runtime wakes the range itself), and the write lands on the old contents.
 */
#include <sys/mman.h>
#include <uffd/handler.h>

#include "lib/harness.h"

static int wp_calls;

static int never_resolve(struct uffd_fault *f)
{
	__atomic_fetch_add(&wp_calls, 1, __ATOMIC_RELAXED);
	return UFFD_FAULT_DEFERRED;
}

int main(void)
{
	static const struct uffd_region_ops ops = { .wp = never_resolve };
	struct uffd_handler *h;
	struct t_access a;
	struct uffd u;
	char *area;
	int i;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	area = t_map_anon(2 * PAGE);
	t_fill(area, 2 * PAGE, 3);
	h = uffd_handler_new(&u, NULL);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, 2 * PAGE, 0, UFFD_REG_WP, &ops, NULL));
	CHECK_OK(uffd_writeprotect(&u, area, 2 * PAGE, true, 0));
	CHECK_OK(uffd_handler_start(h));

	t_access_start(&a, area + PAGE + 7, true, 0x5c);
	for (i = 0; i < 5000 && !__atomic_load_n(&wp_calls, __ATOMIC_RELAXED); i++)
		t_sleep_ms(1);
	CHECK_EQ(__atomic_load_n(&wp_calls, __ATOMIC_RELAXED), 1);
	CHECK(!t_access_wait(&a, 100));		/* deferred: still blocked */

	CHECK_OK(uffd_handler_stop(h));
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(area[PAGE + 7], 0x5c);
	area[PAGE + 7] = t_is_filled(area, PAGE, 3) ? 0 : 1;	/* page 0 intact */
	CHECK_EQ(area[PAGE + 7], 0);
	/* Unregistered: the other page is writable without a fault. */
	area[0] = 1;
	CHECK_EQ(__atomic_load_n(&wp_calls, __ATOMIC_RELAXED), 1);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
