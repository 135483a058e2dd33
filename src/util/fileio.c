/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whole reads and writes at an offset (see fileio.h). */
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fileio.h"

ssize_t uffd__pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

int uffd__pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
	ssize_t n;

	while (iovcnt > 0) {
		n = pwritev(fd, iov, iovcnt, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;	/* no progress and no error: give up */
		off += n;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

int uffd__pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return uffd__pwritev_full(fd, &iov, 1, off);
}
