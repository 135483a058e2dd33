/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A MISSING callback that fails (returns -EIO) never leaves the access
 * blocked: with UFFD_FEAT_POISON negotiated the runtime poisons the page,
 * so the access raises SIGBUS at the address it touched (and again on a
 * later access, without a new fault); without POISON the runtime maps a
 * zero page and the access reads zeros.  Either way the callback ran once
 * and stats.callback_errors == 1.
 *
 * The accessing thread catches SIGBUS with a sigsetjmp/siglongjmp handler
 * (lib/sigbus.c; the faults must come from this process: a forked child
 * without EVENT_FORK would not fault into this userfaultfd at all).
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/sigbus.h"

static int calls;		/* atomic */

/* Read at addr from a new thread; fail unless it finishes within 2 s. */
static void probe(struct t_sigbus_read *r, char *addr)
{
	t_sigbus_read_start(r, addr);
	if (!t_sigbus_read_wait(r, 2000))
		FAIL("access at %p still blocked after 2 s", (void *)addr);
	t_sigbus_read_join(r);
}

static int fail_io(struct uffd_fault *f)
{
	(void)f;
	__atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	return -EIO;
}

/* One userfaultfd with or without POISON; returns the handler's stats. */
static void run(bool poison, int want_code)
{
	struct uffd_region_ops ops = { .missing = fail_io };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_handler_stats s;
	struct t_sigbus_read a;
	struct uffd_handler *h;
	struct t_sigbus bus;
	struct uffd u;
	char *area, value;

	__atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
	t_open(&u, poison ? UFFD_F(UFFD_FEAT_POISON) : 0, 0);
	CHECK_EQ(!!(u.features & UFFD_F(UFFD_FEAT_POISON)), poison);
	area = t_map_anon(4 * PAGE);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, 4 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(uffd_handler_start(h));

	probe(&a, area + 2 * PAGE + 77);
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), 1);
	if (poison) {
		CHECK(a.got_sigbus);
		CHECK_EQ(a.bus.code, want_code);
		CHECK_EQ((uintptr_t)a.bus.addr, (uintptr_t)(area + 2 * PAGE + 77));
		/* The marker stays: SIGBUS again, with no new fault. */
		CHECK(t_access_catching_sigbus(area + 3 * PAGE - 1, false, &value,
					       &bus));
		CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + 3 * PAGE - 1));
	} else {
		CHECK(!a.got_sigbus);
		CHECK_EQ(a.value, 0);
		CHECK(t_is_zero(area + 2 * PAGE, PAGE));
	}
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.callback_errors, 1);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 1);
	CHECK_EQ(s.messages, 1);
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), 1);

	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	munmap(area, 4 * PAGE);
}

int main(void)
{
	int want_code = t_poison_sigbus_code();

	t_sigbus_catch();
	run(false, want_code);
	run(true, want_code);
	return T_EXIT_PASS;
}
