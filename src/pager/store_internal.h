/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the file store (store.c) shares with its io_uring batches
 * (store_uring.c): the store itself, the rule that picks the descriptor an
 * I/O goes through, and the synchronous I/O the batches fall back to; the
 * socket store's entry points for its fuzz targets; and which store the
 * pager must not read from a signal handler.
 */
#ifndef LIBUFFD_PAGER_STORE_INTERNAL_H
#define LIBUFFD_PAGER_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uffd/pager.h>

struct store_rings;

/*
 * A file (or block device).  With UFFD_STORE_DIRECT it is open twice:
 * dfd with O_DIRECT, for every I/O whose offset, length and buffer meet
 * the file's direct-I/O alignment, and fd without, for the others (O_DIRECT
 * would fail them with EINVAL).  The kernel keeps the two coherent: a
 * direct I/O writes back and drops the cached pages of its range first.
 */
struct file_store {
	struct uffd_store store;	/* store.data points back here */
	int fd;				/* buffered */
	int dfd;			/* O_DIRECT, or -1 */
	bool own_fd, own_dfd;		/* closed by uffd_store_free */
	uint32_t dio_off_align;		/* offset and length multiple */
	uint32_t dio_mem_align;		/* buffer address multiple */
	struct store_rings *rings;	/* io_uring batches, or NULL */
};

/* The descriptor for this I/O: dfd when it meets the alignment, else fd. */
int file_store_fd_for(const struct file_store *fs, const void *buf, size_t len,
		      uint64_t off);

/*
 * All of one I/O, synchronously, retrying short transfers and EINTR, and
 * retrying through the buffered fd when O_DIRECT refuses it (EINVAL).
 * Bytes done (a read is short only at the end of the file) or -errno.
 */
ssize_t file_store_io(struct file_store *fs, void *buf, size_t len,
		      uint64_t off, bool write);

/*
 * The socket store's two ends over one connected fd, for fuzzing the
 * protocol without a listening socket: a store whose only connection is fd
 * (the handshake done on it; it never connects again; the store owns fd
 * from success on), and a server of len bytes at buf for one client on fd,
 * until it closes or breaks the protocol (0, or -EINVAL for bad arguments).
 */
struct uffd_store *uffd__store_socket_over(int fd, int timeout_ms);
int uffd__store_serve_conn(int fd, void *buf, size_t len);

/* Whether s is a Redis store, whose reads allocate (hiredis): an
 * in-thread pager does not map it (its faults read in a signal handler). */
bool uffd__store_is_redis(const struct uffd_store *s);

#ifdef HAVE_LIBURING
/* A pool of rings, one per concurrent batch; the first is made now, so a
 * kernel without io_uring is found at open.  NULL with errno. */
struct store_rings *store_rings_new(void);
void store_rings_free(struct store_rings *rings);

/* uffd_store_ops.read_batch / write_batch of a file store. */
int file_store_read_batch(void *store, struct uffd_store_io *io, int n);
int file_store_write_batch(void *store, struct uffd_store_io *io, int n);
#endif

#endif
