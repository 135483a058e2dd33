/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Allocations a test can make fail.  The pager's error paths for a failed
 * malloc or mmap are code like any other, and only a test that makes them
 * run can show they leave nothing behind; the runtime's handler is made
 * through them too, so a test can show what a page server says when a
 * client's handler can not be made.  uffd__fail_alloc_after(n) lets the
 * next n allocations made through these wrappers succeed and every one
 * after fail (ENOMEM), until it is called again; n < 0 lets them all
 * through, which is how the library always runs.  The price is one relaxed
 * load per allocation, and nothing on a fault's path allocates.
 */
#ifndef LIBUFFD_UTIL_FAILALLOC_H
#define LIBUFFD_UTIL_FAILALLOC_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "util/mmalloc.h"

/* Arm (n >= 0) or disarm (n < 0); returns how many allocations the
 * previous arming refused. */
long uffd__fail_alloc_after(long n);
/* Counts one allocation: true (errno ENOMEM) if it is to fail. */
bool uffd__alloc_fails(void);

static inline void *fa_malloc(size_t size)
{
	return uffd__alloc_fails() ? NULL : malloc(size);
}

static inline void *fa_calloc(size_t n, size_t size)
{
	return uffd__alloc_fails() ? NULL : calloc(n, size);
}

static inline void *fa_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return uffd__alloc_fails() ? MAP_FAILED : mmap(addr, len, prot, flags, fd, off);
}

static inline void *fa_mm_zalloc(size_t size)
{
	return uffd__alloc_fails() ? NULL : mm_zalloc(size);
}

#endif
