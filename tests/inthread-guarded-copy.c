// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The in-thread runtime's guarded copy (internal: uffd__guarded_copy), with
 * which a snapshot's fault copies its page's group in the writing thread
 * while other threads may unmap part of it: a copy that reaches a page
 * that is not there (unmapped, or PROT_NONE) stops there and says how many
 * pages it copied, exactly, instead of killing the process - both from
 * ordinary code and from inside an in-thread fault's callback (a MISSING
 * region whose callback copies from such a source).  A SIGSEGV anywhere
 * else still reaches the program's own handler, installed before, and
 * dropping the last guard reference puts that handler back.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"
#include "runtime/inthread.h"

#define NPAGES 6

static sigjmp_buf jump;
static volatile int segvs;
static char *src;
static size_t cb_copied;

static void program_segv(int sig, siginfo_t *si, void *uc)
{
	segvs++;
	siglongjmp(jump, 1);
}

static size_t copy_into(char *dst, const char *from, size_t n)
{
	void *pages[NPAGES];
	size_t i;

	for (i = 0; i < n; i++)
		pages[i] = dst + i * PAGE;
	return uffd__guarded_copy(pages, from, n, PAGE);
}

/* In a fault's callback: copy 4 pages whose third is gone. */
static int fill(struct uffd_fault *f)
{
	static char scratch[4 * PAGE] __attribute__((aligned(4096)));

	cb_copied = copy_into(scratch, src, 4);
	return uffd_fault_copy(f, scratch, PAGE);
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = fill };
	struct sigaction sa = { .sa_sigaction = program_segv, .sa_flags = SA_SIGINFO }, now;
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler *h;
	char *dst, *area;
	struct uffd u;

	t_require_in_thread();
	CHECK_OK(sigaction(SIGSEGV, &sa, NULL) ? -errno : 0);
	CHECK_OK(uffd__guard_get());
	src = t_map_anon(NPAGES * PAGE);
	dst = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 4);

	/* Everything there: all of it. */
	CHECK_EQ(copy_into(dst, src, NPAGES), NPAGES);
	t_check_bytes("whole copy", dst, src, NPAGES * PAGE);

	/* Page 2 unmapped, then page 1 PROT_NONE: stops before each. */
	memset(dst, 0, NPAGES * PAGE);
	CHECK_OK(munmap(src + 2 * PAGE, PAGE) ? -errno : 0);
	CHECK_EQ(copy_into(dst, src, NPAGES), 2);
	t_check_bytes("before the hole", dst, src, 2 * PAGE);
	CHECK(t_is_zero(dst + 2 * PAGE, (NPAGES - 2) * PAGE));
	/* From now on PROT_NONE there, so nothing else is mapped in the hole. */
	CHECK(mmap(src + 2 * PAGE, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		   -1, 0) == src + 2 * PAGE);
	CHECK_EQ(copy_into(dst, src, NPAGES), 2);
	CHECK_OK(mprotect(src + PAGE, PAGE, PROT_NONE) ? -errno : 0);
	CHECK_EQ(copy_into(dst, src, NPAGES), 1);
	CHECK_OK(mprotect(src + PAGE, PAGE, PROT_READ | PROT_WRITE) ? -errno : 0);
	CHECK_EQ(segvs, 0);

	/* The same inside an in-thread fault's callback. */
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	area = t_map_anon(PAGE);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_EQ(area[5], src[5]);
	CHECK_EQ(cb_copied, 2);
	uffd_handler_free(h);
	uffd_close(&u);

	/* A SIGSEGV of the program's own still reaches its handler. */
	if (!sigsetjmp(jump, 1)) {
		*(volatile char *)(src + 2 * PAGE) = 1;
		FAIL("no SIGSEGV writing to a PROT_NONE page");
	}
	CHECK_EQ(segvs, 1);

	uffd__guard_put();
	CHECK_OK(sigaction(SIGSEGV, NULL, &now) ? -errno : 0);
	CHECK(now.sa_sigaction == program_segv);
	return T_EXIT_PASS;
}
