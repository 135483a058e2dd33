/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the core's files; not part of the public API. */
#ifndef LIBUFFD_CORE_INTERNAL_H
#define LIBUFFD_CORE_INTERNAL_H

#include <errno.h>
#include <stdint.h>
#include <uffd/uffd.h>

#define UFFD_BASE_PAGE	4096ULL

/* -EINVAL unless [addr, addr+len) is non-empty, 4 KiB aligned, no wrap. */
static inline int check_range(uint64_t addr, uint64_t len)
{
	if (!len || (addr | len) & (UFFD_BASE_PAGE - 1) || addr + len < addr)
		return -EINVAL;
	return 0;
}

/* Raw open of a userfaultfd through one path; fd or -errno. */
int core_open_dev(unsigned kernel_flags);
int core_open_syscall(unsigned kernel_flags);
/* UFFDIO_API on fd; returns 0 or -errno, granted and ioctls filled. */
int core_api(int fd, uint64_t features, uint64_t *granted, uint64_t *ioctls);

/*
 * For tests of what a kernel without some features does: the features in
 * mask (UFFD_F() bits; 0: none) are reported absent from now on, so a
 * uffd_open() that requires one fails with -EOPNOTSUPP as it would there
 * and one that only wants it goes without.  Feature probes already cached
 * keep their answer until uffd_probe_reset().
 */
void uffd__hide_features(uint64_t mask);

#endif
