/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Accesses that may raise SIGBUS (sigbus.h). */
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#include "sigbus.h"

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

void t_sigbus_catch(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };

	CHECK_OK(sigaction(SIGBUS, &sa, NULL) ? -errno : 0);
}

bool t_access_catching_sigbus(volatile char *p, bool write, char *value,
			      struct t_sigbus *bus)
{
	sigjmp_buf jmp;

	bus->code = 0;
	bus->addr = NULL;
	if (sigsetjmp(jmp, 1)) {
		bus_jmp = NULL;
		bus->code = bus_code;
		bus->addr = bus_addr;
		return true;
	}
	bus_jmp = &jmp;
	if (write)
		*p = *value;
	else
		*value = *p;
	bus_jmp = NULL;
	return false;
}

int t_poison_sigbus_code(void)
{
	return access(MEMORY_FAILURE_SYSCTL, F_OK) == 0 ? BUS_MCEERR_AR :
							  BUS_ADRERR;
}

static void *sigbus_read_main(void *arg)
{
	struct t_sigbus_read *r = arg;

	r->got_sigbus = t_access_catching_sigbus(r->addr, false, &r->value,
						 &r->bus);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void t_sigbus_read_start(struct t_sigbus_read *r, void *addr)
{
	memset(r, 0, sizeof(*r));
	r->addr = addr;
	if (pthread_create(&r->thread, NULL, sigbus_read_main, r))
		FAIL("pthread_create");
}

bool t_sigbus_read_wait(struct t_sigbus_read *r, int ms)
{
	return t_wait_flag(&r->done, ms);
}

void t_sigbus_read_join(struct t_sigbus_read *r)
{
	pthread_join(r->thread, NULL);
}
