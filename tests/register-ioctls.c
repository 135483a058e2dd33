/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ioctls mask uffd_register() returns says exactly which resolve calls
 * a range allows, per memory type and mode:
 *   anon MISSING|WP:  WAKE COPY ZEROPAGE MOVE WRITEPROTECT POISON
 *                     (no CONTINUE: that is for MINOR ranges only)
 *   anon MISSING:     the same without WRITEPROTECT
 *   shmem MINOR:      WAKE COPY ZEROPAGE MOVE CONTINUE POISON
 *   hugetlb MISSING:  WAKE COPY POISON (no ZEROPAGE, no MOVE)
 * And once a range is unregistered, COPY into it fails with -ENOENT and
 * nothing done, and its faults no longer reach the userfaultfd.
 *
 * Kernel behaviour libuffd relies on: UFFDIO_REGISTER reports the range
 * ioctls (UFFD_API_RANGE_IOCTLS, or the _BASIC set on hugetlb) minus
 * WRITEPROTECT without WP mode and minus CONTINUE without MINOR mode;
 * UFFDIO_COPY outside a registered VMA is -ENOENT.
 * The hugetlb part maps with MAP_NORESERVE (no reserved pages needed) and
 * is left out, with a note, only if that mmap fails.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define ANON_MISSING_IOCTLS						\
	(UFFD_IOCTL_WAKE | UFFD_IOCTL_COPY | UFFD_IOCTL_ZEROPAGE |	\
	 UFFD_IOCTL_MOVE | UFFD_IOCTL_POISON)
#define SHMEM_MINOR_IOCTLS (ANON_MISSING_IOCTLS | UFFD_IOCTL_CONTINUE)
#define HUGETLB_MISSING_IOCTLS						\
	(UFFD_IOCTL_WAKE | UFFD_IOCTL_COPY | UFFD_IOCTL_POISON)

/* Register, check the mask exactly (printed in hex when it differs). */
static void check_mask(struct uffd *u, void *p, size_t len, unsigned modes,
		       uint64_t want, const char *what)
{
	uint64_t ioctls = 0;
	int ret = uffd_register(u, p, len, modes, &ioctls);

	if (ret)
		FAIL("register %s: %s", what, t_errname(ret));
	if (ioctls != want)
		FAIL("register %s: ioctls %#" PRIx64 ", want %#" PRIx64
		     " (missing %#" PRIx64 ", extra %#" PRIx64 ")", what,
		     ioctls, want, want & ~ioctls, ioctls & ~want);
}

static void check_hugetlb(struct uffd *u)
{
	char *huge = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB |
			  MAP_NORESERVE, -1, 0);

	if (huge == MAP_FAILED) {
		fprintf(stderr, "note: hugetlb part left out: mmap: %s\n",
			strerror(errno));
		return;
	}
	check_mask(u, huge, HPAGE, UFFD_REG_MISSING, HUGETLB_MISSING_IOCTLS,
		   "hugetlb MISSING");
	CHECK_OK(uffd_unregister(u, huge, HPAGE));
	check_mask(u, huge, HPAGE, UFFD_REG_MISSING | UFFD_REG_WP,
		   HUGETLB_MISSING_IOCTLS | UFFD_IOCTL_WRITEPROTECT,
		   "hugetlb MISSING|WP");
	CHECK_OK(uffd_unregister(u, huge, HPAGE));
	munmap(huge, HPAGE);
}

int main(void)
{
	struct t_access a;
	struct uffd u;
	char *anon, *shm, *src;
	size_t done;
	int fd;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_MINOR_SHMEM), 0);
	anon = t_map_anon(4 * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 5);

	check_mask(&u, anon, 2 * PAGE, UFFD_REG_MISSING | UFFD_REG_WP,
		   ANON_MISSING_IOCTLS | UFFD_IOCTL_WRITEPROTECT,
		   "anon MISSING|WP");
	check_mask(&u, anon + 2 * PAGE, 2 * PAGE, UFFD_REG_MISSING,
		   ANON_MISSING_IOCTLS, "anon MISSING");

	shm = t_map_memfd(2 * PAGE, &fd);
	check_mask(&u, shm, 2 * PAGE, UFFD_REG_MINOR, SHMEM_MINOR_IOCTLS,
		   "shmem MINOR");

	check_hugetlb(&u);

	/* Unregistered: COPY has no registered VMA to fill. */
	CHECK_OK(uffd_unregister(&u, anon, 4 * PAGE));
	done = 1;
	CHECK_EQ(uffd_copy(&u, anon, src, PAGE, 0, &done), -ENOENT);
	CHECK_EQ(done, 0);
	done = 1;
	CHECK_EQ(uffd_copy(&u, anon + 3 * PAGE, src, PAGE, 0, &done), -ENOENT);
	CHECK_EQ(done, 0);
	/* ... and a fault there is the kernel's: a zero page, no message. */
	t_access_start(&a, anon + 5, false, 0x33);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	t_expect_no_event(&u, 0);
	CHECK(t_is_zero(anon, 4 * PAGE));

	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
