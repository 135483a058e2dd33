/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * umap() refuses what it can not do with the errno mmap would use: an
 * empty length, a protection other than read/write, a flag it does not
 * know (EINVAL), UMAP_FIXED at an address off the umap page (EINVAL), a
 * bad fd (EBADF), a write map of a read-only fd (EACCES).  An address
 * without UMAP_FIXED is a hint, as for mmap; PROT_WRITE alone gives a
 * readable map.  uunmap() of anything but the start of a map is EINVAL and
 * leaves the map alone.
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define FILE_BYTES	(4 * PAGE)

static void expect_fail(void *addr, size_t len, int prot, int flags, int fd,
			off_t off, int err, const char *what)
{
	void *p;

	errno = 0;
	p = umap(addr, len, prot, flags, fd, off);
	if (p != UMAP_FAILED)
		FAIL("%s: mapped at %p", what, p);
	if (errno != err)
		FAIL("%s: errno %s, want %s", what, strerrorname_np(errno),
		     strerrorname_np(err));
}

int main(void)
{
	static unsigned char file[FILE_BYTES];
	unsigned char *map, *hint;
	int fd, rdonly;

	t_fill(file, FILE_BYTES, 3);
	fd = t_umap_file(file, FILE_BYTES, &rdonly);
	CHECK_EQ(umap_has_write_support(), 1);

	expect_fail(NULL, 0, PROT_READ, UMAP_PRIVATE, fd, 0, EINVAL,
		    "length 0");
	expect_fail(NULL, PAGE, PROT_NONE, UMAP_PRIVATE, fd, 0, EINVAL,
		    "PROT_NONE");
	expect_fail(NULL, PAGE, PROT_READ | PROT_EXEC, UMAP_PRIVATE, fd, 0,
		    EINVAL, "PROT_EXEC");
	expect_fail(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0, EINVAL,
		    "MAP_SHARED");
	expect_fail(NULL, PAGE, PROT_READ, UMAP_PRIVATE | MAP_POPULATE, fd, 0,
		    EINVAL, "MAP_POPULATE");
	hint = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(hint != MAP_FAILED);
	expect_fail((char *)hint + 8, PAGE, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, fd, 0,
		    EINVAL, "UMAP_FIXED off the umap page");
	CHECK_EQ(hint[0], 0);	/* it replaced nothing */
	expect_fail(NULL, PAGE, PROT_READ, UMAP_PRIVATE, -1, 0, EBADF,
		    "fd -1");

	/* The first map creates the pager: skip if this machine has none. */
	map = t_umap_at(hint, FILE_BYTES, PROT_WRITE, UMAP_PRIVATE, fd, 0);
	CHECK(memcmp(map, file, FILE_BYTES) == 0);
	expect_fail(NULL, PAGE, PROT_READ | PROT_WRITE, UMAP_PRIVATE, rdonly,
		    0, EACCES, "write map of a read-only fd");

	errno = 0;
	CHECK_EQ(uunmap(NULL, 0), -1);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK_EQ(uunmap(map + PAGE, PAGE), -1);
	CHECK_EQ(errno, EINVAL);
	map[PAGE] = 0xa5;	/* still mapped, still writable */
	CHECK_EQ(map[PAGE], 0xa5);
	CHECK_EQ(uunmap(map, FILE_BYTES), 0);
	CHECK_EQ(pread(fd, file, 1, PAGE), 1);
	CHECK_EQ(file[0], 0xa5);

	munmap(hint, PAGE);
	close(rdonly);
	close(fd);
	return T_EXIT_PASS;
}
