// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Alternate signal stacks and in-thread mode (uffd/handler.h): libuffd's
 * SIGBUS handler does not ask for the alternate stack, so a thread whose
 * alternate stack is as small as the kernel allows still has its faults
 * resolved, on its own stack; and a fault taken inside a signal handler
 * that runs on an alternate stack (SA_ONSTACK) is resolved there, nested
 * in that handler.  The region's pages hold what the callback copied.
 */
#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 8
#define BIG_ALTSTACK (256 * 1024)

static char *area, *src;
static volatile int usr1_sum = -1;

static int fill(struct uffd_fault *f)
{
	return uffd_fault_copy(f, src + ((char *)f->addr - area), PAGE);
}

static void *small_altstack_thread(void *arg)
{
	long min = getauxval(AT_MINSIGSTKSZ);
	stack_t ss = { .ss_size = min > MINSIGSTKSZ ? (size_t)min : MINSIGSTKSZ };
	int i, sum = 0;

	ss.ss_sp = t_map_anon(ss.ss_size + PAGE);
	CHECK_OK(sigaltstack(&ss, NULL) ? -errno : 0);
	for (i = 0; i < NPAGES / 2; i++)
		sum += ((volatile char *)area)[i * PAGE];
	return (void *)(long)sum;
}

static void on_usr1(int sig)
{
	int i, sum = 0;

	for (i = NPAGES / 2; i < NPAGES; i++)
		sum += ((volatile char *)area)[i * PAGE];
	usr1_sum = sum;
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = fill };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
	stack_t big = { .ss_size = BIG_ALTSTACK };
	struct uffd_handler *h;
	pthread_t t;
	void *ret;
	struct uffd u;
	int i, want = 0;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 3);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(uffd_handler_start(h));

	/* Faults of a thread with a minimal alternate stack. */
	CHECK(!pthread_create(&t, NULL, small_altstack_thread, NULL));
	pthread_join(t, &ret);
	for (i = 0; i < NPAGES / 2; i++)
		want += src[i * PAGE];
	CHECK_EQ((long)ret, want);

	/* Faults inside a handler running on the alternate stack. */
	big.ss_sp = t_map_anon(BIG_ALTSTACK);
	CHECK_OK(sigaltstack(&big, NULL) ? -errno : 0);
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL) ? -errno : 0);
	CHECK_OK(raise(SIGUSR1) ? -errno : 0);
	for (want = 0, i = NPAGES / 2; i < NPAGES; i++)
		want += src[i * PAGE];
	CHECK_EQ(usr1_sum, want);
	t_check_bytes("region", area, src, NPAGES * PAGE);

	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
