// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode, a MISSING callback that fails (-EIO): with
 * UFFD_FEAT_POISON the page is poisoned and the access that faulted gets
 * SIGBUS at once, at the address it touched (BUS_ADRERR, the program's
 * handler, installed before libuffd's), and so does a later access.  On a
 * kernel without memory-failure support the poisoned page's SIGBUS is a
 * BUS_ADRERR at a registered address, which the in-thread handler takes
 * for a fault: the callback runs again and fails again - it used to
 * poison (EEXIST), count the page resolved and let the access run into
 * the marker again, forever.  Without POISON the runtime maps a zero page,
 * as in the other modes, and the access reads zeros.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/sigbus.h"

static int calls;		/* atomic */

static int fail_io(struct uffd_fault *f)
{
	(void)f;
	__atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	return -EIO;
}

static void run(bool poison)
{
	static const struct uffd_region_ops ops = { .missing = fail_io };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct t_sigbus bus;
	int later_calls = t_poison_sigbus_code() == BUS_ADRERR ? 2 : 1, pipefd[2];
	struct uffd u;
	char *area, value = 1;

	__atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS) | (poison ? UFFD_F(UFFD_FEAT_POISON) : 0),
	       UFFD_NONBLOCK);
	area = t_map_anon(4 * PAGE);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, 4 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));

	if (!poison) {
		CHECK(!t_access_catching_sigbus(area + PAGE + 5, false, &value, &bus));
		CHECK_EQ(value, 0);
		CHECK(t_is_zero(area + PAGE, PAGE));
		CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), 1);
		goto out;
	}
	CHECK(t_access_catching_sigbus(area + 2 * PAGE + 77, false, &value, &bus));
	CHECK_EQ(bus.code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + 2 * PAGE + 77));
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), 1);
	/* Poisoned: the kernel refuses it to a system call too. */
	CHECK_OK(pipe(pipefd) ? -errno : 0);
	CHECK_EQ(write(pipefd[1], "x", 1), 1);
	errno = 0;
	CHECK_EQ(read(pipefd[0], area + 2 * PAGE, 1), -1);
	CHECK_EQ(errno, EFAULT);
	close(pipefd[0]);
	close(pipefd[1]);
	/* A later access: SIGBUS again, at its own address. */
	CHECK(t_access_catching_sigbus(area + 3 * PAGE - 1, true, &value, &bus));
	CHECK_EQ(bus.code, t_poison_sigbus_code());
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + 3 * PAGE - 1));
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), later_calls);
	/* The pages around it are untouched. */
	CHECK(t_access_catching_sigbus(area + 3 * PAGE, false, &value, &bus));
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(area + 3 * PAGE));
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), later_calls + 1);
out:
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.callback_errors, __atomic_load_n(&calls, __ATOMIC_RELAXED));
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], __atomic_load_n(&calls, __ATOMIC_RELAXED));
	CHECK_EQ(s.messages, 0);
	uffd_handler_free(h);
	uffd_close(&u);
	munmap(area, 4 * PAGE);
}

int main(void)
{
	t_require_in_thread();
	t_require(UFFD_FEAT_POISON);
	t_sigbus_catch();	/* before libuffd's handler: chained to */
	run(false);
	run(true);
	return T_EXIT_PASS;
}
