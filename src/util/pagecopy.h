/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copying a page that another thread is about to write, where the ordering
 * comes from the kernel: a write-protected page is copied, then
 * un-protected, and only then does the faulting thread's write land.
 * ThreadSanitizer cannot see that ordering (it records the blocked store
 * before the CPU performs it), so the copy is done by uninstrumented code
 * that no sanitizer interceptor sees either.
 */
#ifndef LIBUFFD_UTIL_PAGECOPY_H
#define LIBUFFD_UTIL_PAGECOPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 1 when built with ThreadSanitizer (gcc says so; clang has
 * __has_feature), else 0. */
#if defined(__SANITIZE_THREAD__)
#define UFFD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UFFD_TSAN 1
#endif
#endif
#ifndef UFFD_TSAN
#define UFFD_TSAN 0
#endif

__attribute__((no_sanitize("thread"), noinline))
static void copy_protected_page(void *dst, const void *src, size_t len)
{
	/* volatile: keeps the compiler from turning this back into memcpy */
	const volatile uint64_t *s = src;
	uint64_t *d = dst;
	size_t i;

	for (i = 0; i < len / sizeof(*d); i++)
		d[i] = s[i];
}

/* A page another thread may be writing, copied: memcpy, or the copy above
 * where ThreadSanitizer would take the kernel-ordered race for a bug. */
static inline void copy_live_page(void *dst, const void *src, size_t len)
{
	if (UFFD_TSAN)
		copy_protected_page(dst, src, len);
	else
		memcpy(dst, src, len);
}

#endif
