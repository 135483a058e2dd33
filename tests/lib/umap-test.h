/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * For the umap tests (programs linked with libumap's objects): umap(), or
 * skip when this machine has no pager, or fail naming the call; and the
 * file a test maps.
 */
#ifndef LIBUFFD_TEST_UMAP_H
#define LIBUFFD_TEST_UMAP_H

#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "harness.h"

static inline void *t_umap_at(void *addr, uint64_t len, int prot, int flags, int fd,
			      off_t off)
{
	void *p = umap(addr, len, prot, flags, fd, off);

	if (p == UMAP_FAILED && (errno == EOPNOTSUPP || errno == EPERM))
		SKIP("the pager is not available here: %s", strerror(errno));
	if (p == UMAP_FAILED)
		FAIL("umap(addr %p, len %llu, prot %d, flags 0x%x, offset %lld): %s", addr,
		     (unsigned long long)len, prot, flags, (long long)off, strerror(errno));
	return p;
}

static inline void *t_umap(uint64_t len, int prot, int flags, int fd, off_t off)
{
	return t_umap_at(NULL, len, prot, flags, fd, off);
}

/*
 * An unlinked temporary file holding the len bytes at data (NULL: len zero
 * bytes), open for reading and writing; *rdonly, unless NULL, is a second,
 * read-only descriptor of it.
 */
static inline int t_umap_file(const void *data, size_t len, int *rdonly)
{
	char path[] = "/tmp/umap-test-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		FAIL("mkstemp: %s", strerror(errno));
	if (rdonly && (*rdonly = open(path, O_RDONLY)) < 0)
		FAIL("open %s read-only: %s", path, strerror(errno));
	unlink(path);
	if (data)
		CHECK_EQ(pwrite(fd, data, len, 0), (ssize_t)len);
	else
		CHECK_OK(ftruncate(fd, len));
	return fd;
}

#endif
