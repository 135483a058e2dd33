/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See ownread.h: our own memory read with process_vm_readv(2). */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "ownread.h"
#include "pagecopy.h"

static int refused;	/* atomic: process_vm_readv is not allowed here */

size_t uffd__read_own(const struct iovec *iov, int n, const void *src, size_t len)
{
	struct iovec remote = { (void *)src, len };
	const char *p = src;
	ssize_t got;
	int i;

	if (!__atomic_load_n(&refused, __ATOMIC_RELAXED)) {
		do
			got = process_vm_readv(getpid(), iov, n, &remote, 1, 0);
		while (got < 0 && errno == EINTR);
		if (got >= 0 || (errno != ENOSYS && errno != EPERM))
			return got < 0 ? 0 : (size_t)got;
		__atomic_store_n(&refused, 1, __ATOMIC_RELAXED);
	}
	for (i = 0; i < n; i++) {
		copy_protected_page(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	return len;
}
