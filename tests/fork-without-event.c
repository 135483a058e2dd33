/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel behaviour libuffd relies on: without EVENT_FORK a forked child's
 * copy of a registered range is not registered at all.  At fork the kernel
 * resets the child's VMA (no userfaultfd context, VM_UFFD_MISSING and
 * VM_UFFD_WP cleared) before copying the page tables, and it drops each
 * PTE's uffd-wp bit when the destination VMA is not uffd-wp, so:
 *
 *  - the child's writes to pages write-protected in the parent complete
 *    (ordinary copy-on-write) with no message on the parent's fd;
 *  - the child's access to a MISSING-registered hole is filled with zeros
 *    by the kernel, again with no message.
 *
 * The dropped bits are also seen directly: pagemap bit 57 (PM_UFFD_WP) is
 * set on the parent's protected pages and clear on the child's copies.
 *
 * The parent's registration is untouched: its pages are unchanged, still
 * write-protected, and its hole still raises a MISSING fault.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 4
#define SEED 30
#define PM_PRESENT	(1ULL << 63)
#define PM_UFFD_WP	(1ULL << 57)

/* This process's pagemap entry for addr (0 if it cannot be read). */
static uint64_t pagemap_entry(void *addr)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry),
		  (off_t)((uintptr_t)addr / PAGE * sizeof(entry))) != sizeof(entry))
		entry = 0;
	close(fd);
	return entry;
}

/* Pages 0-1 populated and protected, pages 2-3 holes. */
static int child_main(char *area)
{
	volatile char *p = area;
	char expect[PAGE];

	/* Present (copied at fork), but without the uffd-wp bit. */
	if ((pagemap_entry(area) & (PM_PRESENT | PM_UFFD_WP)) != PM_PRESENT ||
	    (pagemap_entry(area + PAGE) & (PM_PRESENT | PM_UFFD_WP)) != PM_PRESENT)
		return 7;
	p[0] = 'c';
	p[PAGE + 100] = 'd';
	if (p[0] != 'c' || p[PAGE + 100] != 'd')
		return 2;
	t_fill(expect, PAGE, SEED);
	if (memcmp(area + 1, expect + 1, PAGE - 1))
		return 3;
	if (p[2 * PAGE + 5] != 0)
		return 4;
	p[3 * PAGE] = 'e';
	if (p[3 * PAGE] != 'e' || !t_is_zero(area + 3 * PAGE + 1, PAGE - 1))
		return 5;
	if (!t_is_zero(area + 2 * PAGE, PAGE))
		return 6;
	return 0;
}

int main(void)
{
	struct t_access a;
	struct uffd u;
	char *area, *src;
	pid_t pid;

	t_require(UFFD_FEAT_REG_WP_ANON);
	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	CHECK(!(u.features & UFFD_F(UFFD_FEAT_EVENT_FORK)));
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 77);
	t_fill(area, PAGE, SEED);
	t_fill(area + PAGE, PAGE, SEED + 1);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE,
			       UFFD_REG_MISSING | UFFD_REG_WP, NULL));
	CHECK_OK(uffd_writeprotect(&u, area, 2 * PAGE, true, 0));
	CHECK_EQ(pagemap_entry(area) & (PM_PRESENT | PM_UFFD_WP),
		 PM_PRESENT | PM_UFFD_WP);
	CHECK_EQ(pagemap_entry(area + PAGE) & (PM_PRESENT | PM_UFFD_WP),
		 PM_PRESENT | PM_UFFD_WP);

	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child_main(area));
	/* A child that does not exit in time is stuck in a fault of its own. */
	CHECK_EQ(t_wait_child(pid, 2000), 0);
	t_expect_no_event(&u, 20);

	/* The parent's pages are its own, unchanged and still marked. */
	CHECK_EQ(pagemap_entry(area) & PM_UFFD_WP, PM_UFFD_WP);
	CHECK(t_is_filled(area, PAGE, SEED));
	CHECK(t_is_filled(area + PAGE, PAGE, SEED + 1));

	/* Still write-protected in the parent. */
	t_access_start(&a, area + 10, true, 'p');
	t_expect_fault(&u, area, UFFD_FAULT_WP, true);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_writeprotect(&u, area, PAGE, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(area[10], 'p');

	/* Still a MISSING hole in the parent. */
	t_access_start(&a, area + 2 * PAGE + 5, false, 0);
	t_expect_fault(&u, area + 2 * PAGE, UFFD_FAULT_MISSING, false);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_copy(&u, area + 2 * PAGE, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[5]);

	t_expect_no_event(&u, 20);
	uffd_close(&u);
	return T_EXIT_PASS;
}
