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
 * The faulting threads catch SIGBUS with a sigsetjmp/siglongjmp handler, so
 * the signal details are recorded per thread and the test survives them.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NR_PAGES 4

struct probe_access {
	pthread_t thread;
	volatile char *addr;
	int done;		/* atomic: 1 when the attempt finished */
	bool got_sigbus;
	int sig_code;
	void *sig_addr;
	char value;
};

#define MEMORY_FAILURE_SYSCTL "/proc/sys/vm/memory_failure_early_kill"

static __thread sigjmp_buf *volatile bus_jmp;
static __thread int bus_code;
static __thread void *bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (!bus_jmp)
		FAIL("unexpected SIGBUS, code %d at %p", si->si_code,
		     si->si_addr);
	bus_code = si->si_code;
	bus_addr = si->si_addr;
	siglongjmp(*bus_jmp, 1);
}

/* Read one byte at p in this thread; true if it raised SIGBUS. */
static bool read_catching_sigbus(volatile char *p, char *value, int *code,
				 void **addr)
{
	sigjmp_buf jmp;

	if (sigsetjmp(jmp, 1)) {
		bus_jmp = NULL;
		*code = bus_code;
		*addr = bus_addr;
		return true;
	}
	bus_jmp = &jmp;
	*value = *p;
	bus_jmp = NULL;
	return false;
}

static void *probe_main(void *arg)
{
	struct probe_access *a = arg;

	a->got_sigbus = read_catching_sigbus(a->addr, &a->value, &a->sig_code,
					     &a->sig_addr);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool probe_wait(struct probe_access *a, int ms)
{
	int waited;

	for (waited = 0; waited < ms * 10; waited++) {
		if (__atomic_load_n(&a->done, __ATOMIC_ACQUIRE))
			return true;
		usleep(100);
	}
	return __atomic_load_n(&a->done, __ATOMIC_ACQUIRE);
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	struct probe_access a = { 0 };
	struct uffd_event ev;
	struct uffd u;
	uint64_t ioctls;
	char *area, *src, value;
	void *addr;
	size_t done;
	int code, want_code;

	t_open(&u, UFFD_F(UFFD_FEAT_POISON), 0);
	want_code = access(MEMORY_FAILURE_SYSCTL, F_OK) == 0 ? BUS_MCEERR_AR :
							       BUS_ADRERR;
	CHECK_OK(sigaction(SIGBUS, &sa, NULL) ? -errno : 0);
	area = t_map_anon(NR_PAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 3);
	CHECK_OK(uffd_register(&u, area, NR_PAGES * PAGE, UFFD_REG_MISSING,
			       &ioctls));
	CHECK(ioctls & UFFD_IOCTL_POISON);

	/* A reader blocked on page 1 is woken by the poison into SIGBUS. */
	a.addr = area + PAGE + 77;
	if (pthread_create(&a.thread, NULL, probe_main, &a))
		FAIL("pthread_create");
	t_read_one(&u, &ev, 2000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + PAGE));
	CHECK(!probe_wait(&a, 50));
	CHECK_OK(uffd_poison(&u, area + PAGE, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(probe_wait(&a, 2000));
	pthread_join(a.thread, NULL);
	CHECK(a.got_sigbus);
	CHECK_EQ(a.sig_code, want_code);
	CHECK_EQ((uintptr_t)a.sig_addr, (uintptr_t)(area + PAGE + 77));

	/* Later accesses, elsewhere in the page, raise SIGBUS again. */
	CHECK(read_catching_sigbus(area + 2 * PAGE - 1, &value, &code, &addr));
	CHECK_EQ(code, want_code);
	CHECK_EQ((uintptr_t)addr, (uintptr_t)(area + 2 * PAGE - 1));
	CHECK(read_catching_sigbus(area + PAGE, &value, &code, &addr));
	CHECK_EQ(code, want_code);
	CHECK_EQ((uintptr_t)addr, (uintptr_t)(area + PAGE));

	/* Its neighbour is still missing: COPY fills it and reads work. */
	CHECK_OK(uffd_copy(&u, area + 2 * PAGE, src, PAGE, 0, &done));
	CHECK(!read_catching_sigbus(area + 2 * PAGE + 5, &value, &code, &addr));
	CHECK_EQ(value, src[5]);
	CHECK(t_is_filled(area + 2 * PAGE, PAGE, 3));
	CHECK(read_catching_sigbus(area + PAGE + 5, &value, &code, &addr));

	/*
	 * COPY treats the marker as an empty pte (pte_none_mostly()) and
	 * replaces it: the poisoned page becomes readable again.
	 */
	CHECK_OK(uffd_copy(&u, area + PAGE, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(!read_catching_sigbus(area + PAGE + 9, &value, &code, &addr));
	CHECK_EQ(value, src[9]);
	CHECK(t_is_filled(area + PAGE, PAGE, 3));
	t_expect_no_event(&u, 0);

	uffd_close(&u);
	return T_EXIT_PASS;
}
