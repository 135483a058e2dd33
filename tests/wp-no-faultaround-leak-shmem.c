/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A read fault in a write-protected shmem range does not map its neighbours
 * writable.  The pages of a memfd are in the page cache (written through a
 * second, unregistered mapping) but not mapped in the registered one, which
 * is protected as a whole; a read of one page in the middle must leave
 * every page of the range protected: a write to each of them still raises
 * a WP fault at its own address, and lands once that page is un-protected.
 * Checked twice: on a fresh mapping that never mapped the pages, and after
 * MADV_DONTNEED zapped pages that had been mapped.
 *
 * Kernel behaviour libuffd relies on: fault-around (filemap_map_pages
 * mapping up to fault_around_bytes of cached pages on a read fault) is
 * disabled on uffd-wp VMAs, and protecting an empty shmem PTE installs a
 * uffd-wp marker, so no cached page gets mapped without its protection.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 16
#define READ_PAGE 8	/* the read lands in the middle of the range */
#define SEED 11
#define WRITE_OFF 33	/* where in each page the writes go */

static void read_middle(struct uffd *u, char *area)
{
	struct t_access a;

	t_access_start(&a, area + READ_PAGE * PAGE + 9, false, 0);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_expect_no_event(u, 0);
	CHECK(t_is_filled(area + READ_PAGE * PAGE, PAGE, SEED + READ_PAGE));
}

/* Every page, neighbours first, must fault on write while protected. */
static void write_each_faults(struct uffd *u, char *area, char *view,
			      char value)
{
	struct uffd_event ev;
	struct t_access a;
	int i;

	for (i = 0; i < NPAGES; i++) {
		int pg = (READ_PAGE + 1 + i) % NPAGES;	/* READ_PAGE last */
		char *page = area + pg * PAGE;
		char old = view[pg * PAGE + WRITE_OFF];

		t_access_start(&a, page + WRITE_OFF, true, value);
		t_read_one(u, &ev, 5000);
		CHECK_EQ(ev.type, UFFD_EV_FAULT);
		CHECK_EQ(ev.fault.kind, UFFD_FAULT_WP);
		CHECK_EQ(ev.fault.write, true);
		CHECK_EQ(ev.fault.addr, (uintptr_t)page);
		CHECK(!t_access_wait(&a, 10));
		CHECK_EQ(page[WRITE_OFF], old);
		CHECK_OK(uffd_writeprotect(u, page, PAGE, false, 0));
		CHECK(t_access_wait(&a, 5000));
		t_access_join(&a);
		CHECK_EQ(view[pg * PAGE + WRITE_OFF], value);
		CHECK(t_is_filled(page, WRITE_OFF, SEED + pg));
		/* Restore the pattern for the next pass. */
		view[pg * PAGE + WRITE_OFF] = old;
	}
	t_expect_no_event(u, 0);
}

int main(void)
{
	struct uffd u;
	char *area, *view;
	int fd, i;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM), 0);
	view = t_map_memfd(NPAGES * PAGE, &fd);
	for (i = 0; i < NPAGES; i++)
		t_fill(view + i * PAGE, PAGE, SEED + i);

	/* A fresh mapping: the pages are cached but were never mapped here. */
	area = t_map_shared(fd, NPAGES * PAGE);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE, UFFD_REG_WP, NULL));
	CHECK_OK(uffd_writeprotect(&u, area, NPAGES * PAGE, true, 0));
	read_middle(&u, area);
	write_each_faults(&u, area, view, 0x5c);

	/* Mapped (and writable) pages, protected, then zapped. */
	for (i = 0; i < NPAGES; i++)
		CHECK(t_is_filled(area + i * PAGE, PAGE, SEED + i));
	CHECK_OK(uffd_writeprotect(&u, area, NPAGES * PAGE, true, 0));
	CHECK_OK(madvise(area, NPAGES * PAGE, MADV_DONTNEED));
	read_middle(&u, area);
	write_each_faults(&u, area, view, 0x5d);

	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
