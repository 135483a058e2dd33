/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What UFFD_FEAT_WP_UNPOPULATED changes on anonymous memory.  With it,
 * protecting a never-touched range protects it for real: a write to one of
 * its pages raises a WP fault (not MISSING: the range is registered WP only)
 * and lands after un-protection; a read first does not fault and does not
 * lift the protection (the write after it still faults).  Without it (a
 * second userfaultfd that did not ask for the feature), protecting a
 * never-touched range protects nothing: the write completes at once and no
 * message arrives.
 *
 * Kernel behaviour libuffd relies on: with WP_UNPOPULATED, UFFDIO_WRITEPROTECT
 * installs uffd-wp markers in empty anonymous PTEs; without it, it skips
 * them.
 */
#include <sys/mman.h>

#include "lib/harness.h"
#include "lib/workflows.h"

#define NPAGES 4

/* A worker's write at p must fault WP at page, then land once un-protected. */
static void write_faults(struct uffd *u, char *page, char *p, char value)
{
	struct t_access a;

	t_wp_write_begin(u, &a, page, p, value);
	CHECK(t_is_zero(page, PAGE));
	t_wp_write_end(u, &a, page, PAGE);
}

int main(void)
{
	struct uffd with, without;
	struct uffd_event ev;
	struct t_access a;
	char *area, *plain;

	t_open(&with, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		      UFFD_F(UFFD_FEAT_WP_UNPOPULATED), 0);
	CHECK(with.features & UFFD_F(UFFD_FEAT_WP_UNPOPULATED));
	area = t_map_anon(NPAGES * PAGE);
	CHECK_OK(uffd_register(&with, area, NPAGES * PAGE, UFFD_REG_WP, NULL));
	CHECK_OK(uffd_writeprotect(&with, area, NPAGES * PAGE, true, 0));

	write_faults(&with, area + PAGE, area + PAGE + 10, 0x41);
	CHECK(t_is_zero(area + PAGE + 11, PAGE - 11));

	/* A read maps the page readable only: the write after it faults. */
	t_access_start(&a, area + 3 * PAGE + 5, false, 0x7f);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	t_expect_no_event(&with, 0);
	write_faults(&with, area + 3 * PAGE, area + 3 * PAGE + 5, 0x42);

	/* Without the feature nothing was protected. */
	t_open(&without, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	CHECK(!(without.features & UFFD_F(UFFD_FEAT_WP_UNPOPULATED)));
	plain = t_map_anon(NPAGES * PAGE);
	CHECK_OK(uffd_register(&without, plain, NPAGES * PAGE, UFFD_REG_WP,
			       NULL));
	CHECK_OK(uffd_writeprotect(&without, plain, NPAGES * PAGE, true, 0));
	t_access_start(&a, plain + PAGE + 10, true, 0x43);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(plain[PAGE + 10], 0x43);
	t_expect_no_event(&without, 100);
	t_expect_no_event(&with, 0);

	/* Once populated, protection there works without the feature too. */
	CHECK_OK(uffd_writeprotect(&without, plain + PAGE, PAGE, true, 0));
	t_access_start(&a, plain + PAGE + 20, true, 0x44);
	t_read_one(&without, &ev, 5000);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(plain + PAGE));
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_writeprotect(&without, plain + PAGE, PAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(plain[PAGE + 20], 0x44);
	CHECK_EQ(plain[PAGE + 10], 0x43);

	uffd_close(&without);
	uffd_close(&with);
	return T_EXIT_PASS;
}
