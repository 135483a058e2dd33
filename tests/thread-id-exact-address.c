/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: the two fault-message features are
 * independent and exact.  With THREAD_ID the fault's tid is the gettid()
 * of the faulting thread, without it 0; with EXACT_ADDRESS the fault
 * address is the byte that was accessed, without it that address rounded
 * down to its page.  All four combinations are checked, for a read and a
 * write at an unaligned offset.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 4
#define OFFSET 0x123

struct faulter {
	pthread_t thread;
	volatile char *addr;
	bool write;
	char value;
	pid_t tid;		/* atomic: the thread's gettid() */
	int done;		/* atomic */
};

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;

	__atomic_store_n(&f->tid, gettid(), __ATOMIC_RELEASE);
	if (f->write)
		*f->addr = f->value;
	else
		f->value = *f->addr;
	__atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void check_one(struct uffd *u, char *area, int page, bool write,
		      const char *src)
{
	bool want_tid = u->features & UFFD_F(UFFD_FEAT_THREAD_ID);
	bool want_exact = u->features & UFFD_F(UFFD_FEAT_EXACT_ADDRESS);
	struct faulter f = { .addr = area + page * PAGE + OFFSET,
			     .write = write, .value = 'x' };
	struct uffd_event ev;

	if (pthread_create(&f.thread, NULL, faulter_main, &f))
		FAIL("pthread_create");
	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.write, write);
	CHECK_EQ(ev.fault.addr, want_exact ? (uintptr_t)f.addr :
		 (uintptr_t)(area + page * PAGE));
	CHECK(__atomic_load_n(&f.tid, __ATOMIC_ACQUIRE) > 0);
	CHECK(__atomic_load_n(&f.tid, __ATOMIC_ACQUIRE) != gettid());
	CHECK_EQ(ev.fault.tid, want_tid ? f.tid : 0);

	CHECK_OK(uffd_copy(u, area + page * PAGE, src, PAGE, 0, NULL));
	CHECK(t_wait_flag(&f.done, 5000));
	pthread_join(f.thread, NULL);
	if (write)
		CHECK_EQ(area[page * PAGE + OFFSET], 'x');
	else
		CHECK_EQ(f.value, src[OFFSET]);
}

int main(void)
{
	static const uint64_t combos[] = {
		0,
		UFFD_F(UFFD_FEAT_THREAD_ID),
		UFFD_F(UFFD_FEAT_EXACT_ADDRESS),
		UFFD_F(UFFD_FEAT_THREAD_ID) | UFFD_F(UFFD_FEAT_EXACT_ADDRESS),
	};
	char *area, *src;
	struct uffd u;
	unsigned i;

	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 5);
	for (i = 0; i < sizeof(combos) / sizeof(combos[0]); i++) {
		t_open(&u, combos[i], 0);
		CHECK_EQ(u.features & (UFFD_F(UFFD_FEAT_THREAD_ID) |
				       UFFD_F(UFFD_FEAT_EXACT_ADDRESS)), combos[i]);
		area = t_map_anon(NPAGES * PAGE);
		CHECK_OK(uffd_register(&u, area, NPAGES * PAGE,
				       UFFD_REG_MISSING, NULL));
		check_one(&u, area, 1, false, src);
		check_one(&u, area, 3, true, src);
		t_expect_no_event(&u, 20);
		uffd_close(&u);
		munmap(area, NPAGES * PAGE);
	}
	return T_EXIT_PASS;
}
