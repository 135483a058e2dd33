/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whole reads and writes at an offset: pread(2) and pwrite(2) again until
 * all of it is done, through EINTR.  The image format, the page server's
 * raw sources and its working sets all read and write this way, the image
 * writer's scattered chunks through pwritev(2).
 */
#ifndef LIBUFFD_UTIL_FILEIO_H
#define LIBUFFD_UTIL_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Bytes read: len, fewer at the end of the file; or -errno. */
ssize_t uffd__pread_full(int fd, void *buf, size_t len, uint64_t off);
/* All of it, or -errno (-EIO for a write that makes no progress). */
int uffd__pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* The same for iov (which it consumes). */
int uffd__pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t off);

#endif
