/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stores a pager reads pages from and writes them back to: a file (or
 * block device), an fd the caller owns, and memory.  The socket store is
 * in store_socket.c, the file store's io_uring batches in store_uring.c.
 *
 * The file store's one idea is for UFFD_STORE_DIRECT: O_DIRECT refuses an
 * I/O whose offset, length or buffer is not aligned to what the device
 * wants, so the file is open twice, with and without O_DIRECT, and each
 * I/O goes through the descriptor that can take it.  The pager's page-sized
 * I/Os of page-aligned memory all go direct; an odd one (the tail of a
 * file, a caller's unaligned buffer) goes through the page cache, and the
 * kernel keeps the two views coherent.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"

/*
 * Direct-I/O alignment when the kernel does not report it (statx
 * STATX_DIOALIGN is 6.1+): a page satisfies every logical block size up to
 * 4 KiB, and an I/O that still fails is retried through the page cache.
 */
#define DIO_ALIGN_FALLBACK 4096u

/* Mode of a file the store creates: it holds a program's memory. */
#define STORE_FILE_MODE 0600

int file_store_fd_for(const struct file_store *fs, const void *buf, size_t len,
		      uint64_t off)
{
	if (fs->dfd < 0 || off % fs->dio_off_align || len % fs->dio_off_align ||
	    (uintptr_t)buf % fs->dio_mem_align)
		return fs->fd;
	return fs->dfd;
}

ssize_t file_store_io(struct file_store *fs, void *buf, size_t len,
		      uint64_t off, bool write)
{
	bool buffered = false;
	size_t done = 0;
	ssize_t n;
	char *p;
	int fd;

	if (len > SSIZE_MAX || off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	while (done < len) {
		p = (char *)buf + done;
		fd = buffered ? fs->fd : file_store_fd_for(fs, p, len - done, off + done);
		if (write)
			n = pwrite(fd, p, len - done, off + done);
		else
			n = pread(fd, p, len - done, off + done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EINVAL && fd == fs->dfd && !buffered) {
				buffered = true;	/* alignment guessed wrong */
				continue;
			}
			return -errno;
		}
		if (n == 0) {
			if (write)
				return -EIO;	/* no progress and no error */
			break;			/* the end of the file */
		}
		done += n;
	}
	return done;
}

static ssize_t file_read(void *store, void *buf, size_t len, uint64_t off)
{
	return file_store_io(store, buf, len, off, false);
}

static ssize_t file_write(void *store, const void *buf, size_t len, uint64_t off)
{
	return file_store_io(store, (void *)buf, len, off, true);
}

static int64_t file_size(void *store)
{
	struct file_store *fs = store;
	uint64_t bytes;
	struct stat st;

	if (fstat(fs->fd, &st))
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fs->fd, BLKGETSIZE64, &bytes))
			return -errno;
		return bytes;
	}
	return st.st_size;
}

static int file_flush(void *store)
{
	struct file_store *fs = store;

	while (fdatasync(fs->fd))
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void file_close(void *store)
{
	struct file_store *fs = store;

#ifdef HAVE_LIBURING
	store_rings_free(fs->rings);
#endif
	if (fs->own_dfd)
		close(fs->dfd);
	if (fs->own_fd)
		close(fs->fd);
	free(fs);
}

static const struct uffd_store_ops file_ops = {
	.read = file_read,
	.write = file_write,
	.size = file_size,
	.flush = file_flush,
	.close = file_close,
};

#ifdef HAVE_LIBURING
static const struct uffd_store_ops file_uring_ops = {
	.read = file_read,
	.write = file_write,
	.size = file_size,
	.flush = file_flush,
	.read_batch = file_store_read_batch,
	.write_batch = file_store_write_batch,
	.close = file_close,
};
#endif

/*
 * The same open file again, through /proc (so it is the same inode even if
 * the path was renamed), with or without O_DIRECT.  fd or -1 with errno.
 */
static int reopen(int fd, int fl, bool direct)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fl &= O_ACCMODE | O_DSYNC | O_SYNC | O_NOATIME;
	return open(path, fl | O_CLOEXEC | (direct ? O_DIRECT : 0));
}

/*
 * The file system's direct-I/O alignment, into fs.  False when it says
 * this file can not do direct I/O at all.
 */
static bool get_dio_alignment(struct file_store *fs)
{
	fs->dio_off_align = DIO_ALIGN_FALLBACK;
	fs->dio_mem_align = DIO_ALIGN_FALLBACK;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fs->dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) ||
	    !(stx.stx_mask & STATX_DIOALIGN))
		return true;
	if (!stx.stx_dio_offset_align || !stx.stx_dio_mem_align)
		return false;
	fs->dio_off_align = stx.stx_dio_offset_align;
	fs->dio_mem_align = stx.stx_dio_mem_align;
#endif
	return true;
}

/*
 * Set up the direct descriptor: a caller's fd already open with O_DIRECT
 * becomes dfd and gets a buffered twin; otherwise UFFD_STORE_DIRECT opens a
 * direct twin, and a file system that refuses O_DIRECT (EINVAL) leaves the
 * store buffered.  0 or -errno.
 */
static int setup_direct(struct file_store *fs, unsigned flags)
{
	int fl = fcntl(fs->fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if (fl & O_DIRECT) {
		fs->dfd = fs->fd;
		fs->own_dfd = fs->own_fd;
		fs->own_fd = false;
		fs->fd = reopen(fs->dfd, fl, false);
		if (fs->fd < 0)
			return -errno;
		fs->own_fd = true;
	} else if (flags & UFFD_STORE_DIRECT) {
		fs->dfd = reopen(fs->fd, fl, true);
		if (fs->dfd < 0)
			return errno == EINVAL ? 0 : -errno;
		fs->own_dfd = true;
	} else {
		return 0;
	}
	if (!get_dio_alignment(fs) && fs->own_dfd) {
		close(fs->dfd);
		fs->dfd = -1;
		fs->own_dfd = false;
	}
	return 0;
}

/* A file store over fd (closed by uffd_store_free when own_fd). */
static struct uffd_store *file_store_new(int fd, bool own_fd, unsigned flags)
{
	struct file_store *fs;
	int err;

	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		if (own_fd)
			close(fd);
		errno = ENOMEM;
		return NULL;
	}
	fs->fd = fd;
	fs->own_fd = own_fd;
	fs->dfd = -1;
	fs->store.ops = &file_ops;
	fs->store.data = fs;
	fs->store.kind = "file";
	err = setup_direct(fs, flags);
	if (err) {
		file_close(fs);
		errno = -err;
		return NULL;
	}
#ifdef HAVE_LIBURING
	/* No io_uring in this kernel (or not allowed): the pager loops. */
	if (flags & UFFD_STORE_URING) {
		fs->rings = store_rings_new();
		if (fs->rings)
			fs->store.ops = &file_uring_ops;
	}
#endif
	return &fs->store;
}

#define FILE_STORE_FLAGS (UFFD_STORE_DIRECT | UFFD_STORE_URING)

struct uffd_store *uffd_store_file(const char *path, int open_flags, unsigned flags)
{
	int fd;

	if (!path || (flags & ~FILE_STORE_FLAGS)) {
		errno = EINVAL;
		return NULL;
	}
	/* O_DIRECT asked for here means what UFFD_STORE_DIRECT does. */
	if (open_flags & O_DIRECT)
		flags |= UFFD_STORE_DIRECT;
	fd = open(path, (open_flags & ~O_DIRECT) | O_CLOEXEC, STORE_FILE_MODE);
	if (fd < 0)
		return NULL;
	return file_store_new(fd, true, flags);
}

struct uffd_store *uffd_store_fd(int fd, unsigned flags)
{
	if (fd < 0 || (flags & ~FILE_STORE_FLAGS)) {
		errno = fd < 0 ? EBADF : EINVAL;
		return NULL;
	}
	return file_store_new(fd, false, flags);
}

/*
 * The memory store: len bytes of the caller's, or of fresh zeros (an
 * anonymous mapping, so pages nobody wrote cost nothing).  Reads past the
 * end are short; a write must lie wholly inside.
 */
struct memory_store {
	struct uffd_store store;
	char *buf;
	size_t len;
	bool own_buf;
};

static ssize_t memory_read(void *store, void *buf, size_t len, uint64_t off)
{
	struct memory_store *ms = store;

	if (len > SSIZE_MAX)
		return -EINVAL;
	if (off >= ms->len)
		return 0;
	if (len > ms->len - off)
		len = ms->len - off;
	memcpy(buf, ms->buf + off, len);
	return len;
}

static ssize_t memory_write(void *store, const void *buf, size_t len, uint64_t off)
{
	struct memory_store *ms = store;

	if (len > SSIZE_MAX || off > ms->len || len > ms->len - off)
		return -EINVAL;
	memcpy(ms->buf + off, buf, len);
	return len;
}

static int64_t memory_size(void *store)
{
	struct memory_store *ms = store;

	return ms->len;
}

static int memory_flush(void *store)
{
	return 0;
}

static void memory_close(void *store)
{
	struct memory_store *ms = store;

	if (ms->own_buf)
		munmap(ms->buf, ms->len);
	free(ms);
}

static const struct uffd_store_ops memory_ops = {
	.read = memory_read,
	.write = memory_write,
	.size = memory_size,
	.flush = memory_flush,
	.close = memory_close,
};

struct uffd_store *uffd_store_memory(void *buf, size_t len)
{
	struct memory_store *ms;

	if (!len || len > INT64_MAX) {
		errno = EINVAL;
		return NULL;
	}
	ms = calloc(1, sizeof(*ms));
	if (!ms)
		return NULL;
	ms->buf = buf;
	ms->len = len;
	if (!buf) {
		ms->buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (ms->buf == MAP_FAILED) {
			free(ms);
			return NULL;
		}
		ms->own_buf = true;
	}
	ms->store.ops = &memory_ops;
	ms->store.data = ms;
	ms->store.kind = "memory";
	return &ms->store;
}

void uffd_store_free(struct uffd_store *s)
{
	if (s && s->ops && s->ops->close)
		s->ops->close(s->data);
}
