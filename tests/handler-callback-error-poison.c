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
 * (the faults must come from this process: a forked child without
 * EVENT_FORK would not fault into this userfaultfd at all).
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/handler.h>

#include "lib/harness.h"

#define MEMORY_FAILURE_SYSCTL "/proc/sys/vm/memory_failure_early_kill"

struct probe_access {
	pthread_t thread;
	volatile char *addr;
	int done;		/* atomic: 1 when the attempt finished */
	bool got_sigbus;
	int sig_code;
	void *sig_addr;
	char value;
};

static __thread sigjmp_buf *volatile bus_jmp;
static __thread int bus_code;
static __thread void *bus_addr;
static int calls;		/* atomic */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (!bus_jmp)
		FAIL("unexpected SIGBUS, code %d at %p", si->si_code, si->si_addr);
	bus_code = si->si_code;
	bus_addr = si->si_addr;
	siglongjmp(*bus_jmp, 1);
}

/* Read one byte at p in this thread; true if it raised SIGBUS. */
static bool read_catching_sigbus(volatile char *p, char *value, int *code, void **addr)
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

/* Access addr from a new thread; fail unless it finishes within 2 s. */
static void probe(struct probe_access *a, char *addr)
{
	int waited;

	memset(a, 0, sizeof(*a));
	a->addr = addr;
	if (pthread_create(&a->thread, NULL, probe_main, a))
		FAIL("pthread_create");
	for (waited = 0; waited < 2000 && !__atomic_load_n(&a->done, __ATOMIC_ACQUIRE); waited++)
		t_sleep_ms(1);
	if (!__atomic_load_n(&a->done, __ATOMIC_ACQUIRE))
		FAIL("access at %p still blocked after 2 s", (void *)addr);
	pthread_join(a->thread, NULL);
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
	struct uffd_handler_opts opts = { .threads = 2 };
	struct uffd_handler_stats s;
	struct probe_access a;
	struct uffd_handler *h;
	struct uffd u;
	char *area, value;
	void *addr;
	int code;

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
		CHECK_EQ(a.sig_code, want_code);
		CHECK_EQ((uintptr_t)a.sig_addr, (uintptr_t)(area + 2 * PAGE + 77));
		/* The marker stays: SIGBUS again, with no new fault. */
		CHECK(read_catching_sigbus(area + 3 * PAGE - 1, &value, &code, &addr));
		CHECK_EQ((uintptr_t)addr, (uintptr_t)(area + 3 * PAGE - 1));
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
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	int want_code = access(MEMORY_FAILURE_SYSCTL, F_OK) == 0 ? BUS_MCEERR_AR :
								   BUS_ADRERR;

	CHECK_OK(sigaction(SIGBUS, &sa, NULL) ? -errno : 0);
	run(false, want_code);
	run(true, want_code);
	return T_EXIT_PASS;
}
