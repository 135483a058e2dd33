/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The write-protect workflow on private anonymous memory, step by step:
 * populate, protect, a worker's write blocks and is reported as a WP fault
 * (write flag set, the page's address); while it is blocked the handler sees
 * the page as it was before the write; un-protecting the page wakes the
 * worker and its write lands.  Writes to a page of the range that was never
 * protected, or that was un-protected, do not fault; a page still protected
 * still does.
 *
 * Kernel behaviour libuffd relies on: UFFDIO_WRITEPROTECT with mode 0
 * removes the protection and wakes the writers blocked on that range.
 */
#include <sys/mman.h>

#include "lib/harness.h"

#define PS PAGE
#define NPAGES 4
#define SEED 7
#define OFF 100		/* where in the page the worker writes */

/* A worker writes at p; the write must complete without a message. */
static void write_without_fault(struct uffd *u, char *p, char value)
{
	struct t_access a;

	t_access_start(&a, p, true, value);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_expect_no_event(u, 0);
	CHECK_EQ(*p, value);
}

/* A worker writes at page+OFF: WP fault, blocked until un-protected. */
static void write_with_fault(struct uffd *u, char *area, char *page, char value)
{
	struct uffd_event ev;
	struct t_access a;

	t_access_start(&a, page + OFF, true, value);
	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
	CHECK_EQ(ev.fault.write, true);
	CHECK_EQ(ev.fault.addr, (uintptr_t)page);
	CHECK(!t_access_wait(&a, 100));
	/* The handler sees the contents from before the write. */
	CHECK(t_is_filled(page, PS, SEED + (unsigned)((page - area) / PS)));

	CHECK_OK(uffd_writeprotect(u, page, PS, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(page[OFF], value);
	CHECK(t_is_filled(page, OFF, SEED + (unsigned)((page - area) / PS)));
	t_expect_no_event(u, 0);
}

int main(void)
{
	struct uffd u;
	uint64_t ioctls;
	char *area;
	int i;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	area = t_map_anon(NPAGES * PS);
	CHECK_OK(uffd_register(&u, area, NPAGES * PS, UFFD_REG_WP, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);
	/* Registered but not protected: writes populate without faults. */
	for (i = 0; i < NPAGES; i++)
		t_fill(area + i * PS, PS, SEED + i);
	t_expect_no_event(&u, 0);

	/* Protect all but the last page. */
	CHECK_OK(uffd_writeprotect(&u, area, (NPAGES - 1) * PS, true, 0));
	write_with_fault(&u, area, area + 2 * PS, 0x77);

	/* The last page was never protected; page 2 no longer is. */
	write_without_fault(&u, area + (NPAGES - 1) * PS + OFF, 0x11);
	write_without_fault(&u, area + 2 * PS + OFF + 1, 0x22);
	CHECK_EQ(area[2 * PS + OFF], 0x77);

	/* Page 1 is still protected and faults on its own. */
	write_with_fault(&u, area, area + PS, 0x33);
	CHECK(t_is_filled(area, PS, SEED));
	uffd_close(&u);
	return T_EXIT_PASS;
}
