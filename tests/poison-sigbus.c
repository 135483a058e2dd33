/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_poison() resolves a MISSING fault with a poison marker: the blocked
 * access is woken and raises SIGBUS at the address it touched, and every
 * later access to that page raises SIGBUS again, while its neighbours stay
 * missing.  COPY over the poisoned page replaces the marker.
 *
 * Kernel behaviour libuffd relies on: UFFDIO_POISON installs a marker that
 * the fault path reports as a memory error: SIGBUS with si_addr the exact
 * faulting address, and the marker persists.  The si_code depends on the
 * kernel's configuration: BUS_MCEERR_AR with CONFIG_MEMORY_FAILURE (which
 * also creates /proc/sys/vm/memory_failure_early_kill), else the generic
 * BUS_ADRERR (x86 do_sigbus() only sends the MCE code for memory failure).
 *
 * The faulting threads catch SIGBUS with a sigsetjmp/siglongjmp handler
 * (lib/sigbus.c), so the signal details are recorded per thread and the
 * test survives them.
 */
#include "lib/harness.h"
#include "lib/sigbus.h"

#define NR_PAGES 4

int main(void)
{
	struct t_sigbus_read r;
	struct uffd_event ev;
	struct t_sigbus bus;
	struct uffd u;
	uint64_t ioctls;
	char *area, *src, value;
	size_t done;
	int want_code;

	t_open(&u, UFFD_F(UFFD_FEAT_POISON), 0);
	want_code = t_poison_sigbus_code();
	t_sigbus_catch();
	area = t_map_anon(NR_PAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 3);
	CHECK_OK(uffd_register(&u, area, NR_PAGES * PAGE, UFFD_REG_MISSING,
			       &ioctls));
	CHECK(ioctls & UFFD_IOCTL_POISON);

	/* A reader blocked on page 1 is woken by the poison into SIGBUS. */
	t_sigbus_read_start(&r, area + PAGE + 77);
	t_read_one(&u, &ev, 2000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + PAGE));
	CHECK(!t_sigbus_read_wait(&r, 50));
	CHECK_OK(uffd_poison(&u, area + PAGE, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_sigbus_read_wait(&r, 2000));
	t_sigbus_read_join(&r);
	CHECK(r.got_sigbus);
	CHECK_EQ(r.bus.code, want_code);
	CHECK_EQ((uintptr_t)r.bus.addr, (uintptr_t)(area + PAGE + 77));

	/* Later accesses, elsewhere in the page, raise SIGBUS again. */
	CHECK(t_access_catching_sigbus(area + 2 * PAGE - 1, false, &value, &bus));
	CHECK_EQ(bus.code, want_code);
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + 2 * PAGE - 1));
	CHECK(t_access_catching_sigbus(area + PAGE, false, &value, &bus));
	CHECK_EQ(bus.code, want_code);
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + PAGE));

	/* Its neighbour is still missing: COPY fills it and reads work. */
	CHECK_OK(uffd_copy(&u, area + 2 * PAGE, src, PAGE, 0, &done));
	CHECK(!t_access_catching_sigbus(area + 2 * PAGE + 5, false, &value, &bus));
	CHECK_EQ(value, src[5]);
	CHECK(t_is_filled(area + 2 * PAGE, PAGE, 3));
	CHECK(t_access_catching_sigbus(area + PAGE + 5, false, &value, &bus));

	/*
	 * COPY treats the marker as an empty pte (pte_none_mostly()) and
	 * replaces it: the poisoned page becomes readable again.
	 */
	CHECK_OK(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(!t_access_catching_sigbus(area + PAGE + 9, false, &value, &bus));
	CHECK_EQ(value, src[9]);
	CHECK(t_is_filled(area + PAGE, PAGE, 3));
	t_expect_no_event(&u, 0);

	uffd_close(&u);
	return T_EXIT_PASS;
}
