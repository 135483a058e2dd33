/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * For the umap tests (programs linked with libumap's objects): umap(), or
 * skip when this machine has no pager, or fail naming the call.
 */
#ifndef LIBUFFD_TEST_UMAP_H
#define LIBUFFD_TEST_UMAP_H

#include <umap/umap.h>

#include "harness.h"

static inline void *t_umap(uint64_t len, int prot, int flags, int fd, off_t off)
{
	void *p = umap(NULL, len, prot, flags, fd, off);

	if (p == UMAP_FAILED && (errno == EOPNOTSUPP || errno == EPERM))
		SKIP("the pager is not available here: %s", strerror(errno));
	if (p == UMAP_FAILED)
		FAIL("umap(len %llu, prot %d, flags 0x%x, offset %lld): %s",
		     (unsigned long long)len, prot, flags, (long long)off, strerror(errno));
	return p;
}

#endif
