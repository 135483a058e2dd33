/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading this process's own memory where another thread may unmap it
 * meanwhile: the background writers of a snapshot or a checkpoint read
 * the program's pages while the program runs, and the kernel reports an
 * munmap (EVENT_UNMAP) only once the memory has gone.  A plain copy of a
 * page gone kills the process with SIGSEGV; process_vm_readv(2) on our
 * own pid answers EFAULT instead, and the caller learns how much was
 * still there.
 */
#ifndef LIBUFFD_UTIL_OWNREAD_H
#define LIBUFFD_UTIL_OWNREAD_H

#include <stddef.h>
#include <sys/uio.h>

/*
 * Read [src, src + len) of this process into the buffers of iov (n of
 * them, lengths adding up to len).  Returns the bytes read: fewer than
 * len means the rest is unmapped (or unreadable).  Where the system call
 * is refused (a seccomp filter: ENOSYS, EPERM), from then on the pages
 * are copied directly (util/pagecopy.h), unmapped or not: no worse than
 * a plain copy.
 */
size_t uffd__read_own(const struct iovec *iov, int n, const void *src, size_t len);

#endif
