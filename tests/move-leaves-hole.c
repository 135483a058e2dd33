/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UFFDIO_MOVE resolves a MISSING fault by moving the source page itself,
 * leaving a hole behind, and uffd_move() reports the kernel's precise
 * reasons when it cannot.
 *
 * Kernel behaviour libuffd relies on:
 *  - a populated private anonymous page moved onto a MISSING-registered
 *    destination wakes the faulting thread, which sees the source bytes;
 *  - the source page is then absent (pagemap and mincore say not present)
 *    and reads back as zeros, a fresh anonymous page again;
 *  - moving from a hole fails with ENOENT, unless ALLOW_SRC_HOLES, when the
 *    whole length counts as done and the destination stays missing;
 *  - moving onto a populated destination fails with EEXIST and leaves both
 *    pages as they were.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NR_DST	4

/* Private anonymous memory that stays in 4 KiB pages (MOVE of a THP differs). */
static void *map_small_pages(size_t len)
{
	void *p = t_map_anon(len);

	if (madvise(p, len, MADV_NOHUGEPAGE))
		FAIL("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	return p;
}

/* Neither pagemap nor mincore sees a page at p. */
static void check_not_present(int pagemap_fd, void *p)
{
	struct uffd_range r;
	struct uffd_scan s = {
		.addr = p, .len = PAGE,
		.category_anyof_mask = UFFD_PAGE_PRESENT | UFFD_PAGE_SWAPPED,
		.return_mask = UFFD_PAGE_PRESENT | UFFD_PAGE_SWAPPED,
	};
	unsigned char vec = 0xff;

	CHECK_EQ(uffd_pagemap_scan(pagemap_fd, &s, &r, 1), 0);
	CHECK_OK(mincore(p, PAGE, &vec) ? -errno : 0);
	CHECK_EQ(vec & 1, 0);
}

static void check_present(int pagemap_fd, void *p)
{
	struct uffd_range r;
	struct uffd_scan s = {
		.addr = p, .len = PAGE,
		.category_anyof_mask = UFFD_PAGE_PRESENT,
		.return_mask = UFFD_PAGE_PRESENT,
	};

	CHECK_EQ(uffd_pagemap_scan(pagemap_fd, &s, &r, 1), 1);
	CHECK_EQ(r.start, (uintptr_t)p);
	CHECK_EQ(r.end, (uintptr_t)p + PAGE);
	CHECK_EQ(r.categories, UFFD_PAGE_PRESENT);
}

int main(void)
{
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	uint64_t ioctls;
	char *dst, *src;
	size_t done;
	int pagemap_fd;

	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	t_open(&u, UFFD_F(UFFD_FEAT_MOVE), 0);
	pagemap_fd = uffd_pagemap_open(0);
	CHECK(pagemap_fd >= 0);
	dst = map_small_pages(NR_DST * PAGE);
	src = map_small_pages(2 * PAGE);
	CHECK_OK(uffd_register(&u, dst, NR_DST * PAGE, UFFD_REG_MISSING, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_MOVE);

	/* A worker blocked on dst page 0 is released by the moved page. */
	t_fill(src, PAGE, 7);
	check_present(pagemap_fd, src);
	t_access_start(&a, dst + 123, false, 0);
	t_read_one(&u, &ev, 2000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)dst);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_move(&u, dst, src, PAGE, 0, &done));
	CHECK_EQ(done, PAGE);
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK(t_is_filled(dst, PAGE, 7));
	CHECK_EQ((unsigned char)a.value, (unsigned char)dst[123]);

	/* The source is a hole now: absent before touching, zeros after. */
	check_not_present(pagemap_fd, src);
	check_present(pagemap_fd, dst);
	CHECK(t_is_zero(src, PAGE));

	/* From a hole: ENOENT exactly, nothing done, dst still missing. */
	check_not_present(pagemap_fd, src + PAGE);
	CHECK_EQ(uffd_move(&u, dst + PAGE, src + PAGE, PAGE, 0, &done), -ENOENT);
	CHECK_EQ(done, 0);
	check_not_present(pagemap_fd, dst + PAGE);

	/* The same with ALLOW_SRC_HOLES: the hole "moves", all of it done. */
	CHECK_OK(uffd_move(&u, dst + PAGE, src + PAGE, PAGE,
			   UFFD_ALLOW_SRC_HOLES, &done));
	CHECK_EQ(done, PAGE);
	check_not_present(pagemap_fd, dst + PAGE);
	check_not_present(pagemap_fd, src + PAGE);
	t_expect_no_event(&u, 0);

	/* Onto a populated destination: EEXIST, both pages untouched. */
	t_fill(src + PAGE, PAGE, 9);
	CHECK_EQ(uffd_move(&u, dst, src + PAGE, PAGE, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(t_is_filled(dst, PAGE, 7));
	CHECK(t_is_filled(src + PAGE, PAGE, 9));
	check_present(pagemap_fd, src + PAGE);

	close(pagemap_fd);
	uffd_close(&u);
	return T_EXIT_PASS;
}
