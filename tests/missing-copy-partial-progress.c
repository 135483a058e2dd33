/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Partial progress of COPY and ZEROPAGE.  Over 4 missing pages of which
 * page 2 is already populated, uffd_copy() and uffd_zeropage() fill pages
 * 0-1, then stop with the precise reason, -EEXIST, and *done == 2 pages;
 * page 2 keeps its old bytes and page 3 stays missing (not present in
 * pagemap, and a read of it faults).  With UFFD_ONESHOT the call returns
 * the kernel's own answer for the same situation: -EAGAIN with *done == 2
 * pages.
 *
 * Kernel behaviour libuffd relies on: a fill ioctl that stops after some
 * pages writes the bytes done into its count field and fails with EAGAIN;
 * re-issued at the first undone page it reports the real error (EEXIST).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 4
#define POPULATED 2	/* the page that is already there */
#define OLD_SEED 9	/* its contents */
#define NEW_SEED 1	/* what the COPY brings */

#define PM_PRESENT (1ULL << 63)

static int pagemap_fd;

static bool page_present(const void *p)
{
	uint64_t entry;
	off_t off = (off_t)((uintptr_t)p / PAGE * sizeof(entry));

	if (pread(pagemap_fd, &entry, sizeof(entry), off) != sizeof(entry))
		FAIL("pread pagemap: %s", strerror(errno));
	return entry & PM_PRESENT;
}

/* A fresh registered area whose page POPULATED holds OLD_SEED bytes. */
static char *setup_area(struct uffd *u)
{
	char *area = t_map_anon(NPAGES * PAGE);

	t_fill(area + POPULATED * PAGE, PAGE, OLD_SEED);
	CHECK_OK(uffd_register(u, area, NPAGES * PAGE, UFFD_REG_MISSING, NULL));
	return area;
}

/* Pages 0-1 filled (checked by the caller), 2 old, 3 still missing. */
static void check_after(struct uffd *u, char *area, const char *src)
{
	struct uffd_event ev;
	struct t_access a;

	CHECK(page_present(area));
	CHECK(page_present(area + PAGE));
	CHECK(page_present(area + POPULATED * PAGE));
	CHECK(t_is_filled(area + POPULATED * PAGE, PAGE, OLD_SEED));
	CHECK(!page_present(area + 3 * PAGE));

	t_access_start(&a, area + 3 * PAGE + 7, false, 0);
	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + 3 * PAGE));
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_copy(u, area + 3 * PAGE, src + 3 * PAGE, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[3 * PAGE + 7]);
}

int main(void)
{
	struct uffd u;
	char *area, *src;
	size_t done;

	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap_fd < 0)
		SKIP("cannot open /proc/self/pagemap: %s", strerror(errno));
	t_open(&u, 0, 0);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, NEW_SEED);

	/* COPY: the library finishes the range and reports why it stopped. */
	area = setup_area(&u);
	done = 0;
	CHECK_EQ(uffd_copy(&u, area, src, NPAGES * PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 2 * PAGE);
	CHECK(memcmp(area, src, 2 * PAGE) == 0);
	check_after(&u, area, src);

	/* COPY, one ioctl: the kernel's bare EAGAIN with the same progress. */
	area = setup_area(&u);
	done = 0;
	CHECK_EQ(uffd_copy(&u, area, src, NPAGES * PAGE, UFFD_ONESHOT, &done),
		 -EAGAIN);
	CHECK_EQ(done, 2 * PAGE);
	CHECK(memcmp(area, src, 2 * PAGE) == 0);
	/* Re-issued at the first undone page: the reason, nothing done. */
	done = 1;
	CHECK_EQ(uffd_copy(&u, area + 2 * PAGE, src + 2 * PAGE, 2 * PAGE,
			   UFFD_ONESHOT, &done), -EEXIST);
	CHECK_EQ(done, 0);
	check_after(&u, area, src);

	/* ZEROPAGE: same contract. */
	area = setup_area(&u);
	done = 0;
	CHECK_EQ(uffd_zeropage(&u, area, NPAGES * PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 2 * PAGE);
	CHECK(t_is_zero(area, 2 * PAGE));
	check_after(&u, area, src);

	area = setup_area(&u);
	done = 0;
	CHECK_EQ(uffd_zeropage(&u, area, NPAGES * PAGE, UFFD_ONESHOT, &done),
		 -EAGAIN);
	CHECK_EQ(done, 2 * PAGE);
	CHECK(t_is_zero(area, 2 * PAGE));
	check_after(&u, area, src);

	t_expect_no_event(&u, 0);
	uffd_close(&u);
	close(pagemap_fd);
	return T_EXIT_PASS;
}
