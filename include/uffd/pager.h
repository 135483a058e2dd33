/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd pager: map a store (a file, memory, another process) that is
 * larger than RAM into the address space through a bounded buffer that user
 * space fills and evicts.
 *
 * A map is anonymous memory registered for MISSING and WP faults.  The
 * first touch of a page reads it from the store (servicing threads read in
 * the faulting path, no hand-off to a sleeping thread; faults of several
 * threads that come while a read is in flight are read together where the
 * store has batches; a sequential run of faults grows a read-ahead window,
 * then is read ahead in the background, two groups of windows ahead).
 * Pages are mapped write-protected: the first write faults once and marks
 * the page dirty.
 *
 * Eviction is a two-list CLOCK, as the kernel does it, with the accessed
 * bit, which user space cannot see, learnt by taking pages away: past half
 * full a thread deactivates the pages a clock hand reaches (copies each to
 * a private shadow and zaps it from the map: the next touch is a cheap
 * fault that maps it back, no I/O, and counts as a reference); past the
 * high water mark inactive pages nobody touched are evicted, oldest first,
 * dirty ones written back, down to the low water mark.  An inactive page
 * can not be written, so write-back never races with the program.
 * Read-ahead pages are use-once: dropped without a copy when their turn
 * comes.  See uffd_pager_new(3).
 *
 * Errors: a page the store can not read (EIO, or wholly past the store's
 * end) raises SIGBUS in the thread that touched it (UFFDIO_POISON) and
 * calls on_error if set; a short read at the end is zero-filled, as mmap
 * does.  A failed write-back keeps the page resident and dirty, counts it
 * in stats.write_errors and is returned by the next flush or unmap.
 *
 * A map is the program's memory, and it may take pages of it away itself:
 * MADV_DONTNEED, MADV_FREE once reclaim acts on it, mremap with
 * MREMAP_DONTUNMAP, munmap or mremap of part of it.  The pager is not told
 * (it asks for no REMOVE or UNMAP events): it finds such a page gone
 * where it meets it - the next touch, or eviction, a flush, an evict or
 * the unmap copying it out - and forgets it.  What was written to it and
 * not written back is lost, as for anonymous memory (unless the page was
 * on the inactive list already: its copy there is written back), and the
 * next touch reads it from the store as the store is then; a page of
 * which part went is read again whole.  Part of a map unmapped, the rest
 * is served as before, and memory mapped in the hole afterwards is not
 * the map's: the pager leaves it alone, uffd_pager_unmap included (it
 * unmaps what is left of the map).  MADV_REMOVE fails (EINVAL: the map
 * is private memory).
 *
 * In-thread mode (opts.in_thread, an explicit choice; see "In-thread
 * mode" in uffd/handler.h): the thread that touches a page reads it from
 * the store and maps it itself, from a SIGBUS handler, and marks a page
 * dirty at its first write the same way - no hand-off to a servicing
 * thread and no wake-up, which is most of a fault's cost on a VM.
 * Read-ahead in the background, eviction and write-back are as above.
 * What changes for the program:
 *  - A system call that touches a page of the map that is not mapped
 *    (not read yet, or evicted or deactivated since), or writes into one
 *    the program has not written since it was read (still
 *    write-protected), fails with EFAULT instead of waiting - read(2)
 *    into a map, write(2) from one: touch the memory first (a write, for
 *    a buffer the kernel writes into), or keep system-call buffers out of
 *    in-thread maps.
 *  - The fault path runs in the faulting thread's signal handler: the
 *    store's read is called there (and its write when the fault evicts
 *    to make room), and so is on_error for a page it can not read.  They
 *    must not allocate or take a lock the interrupted code may hold; the
 *    file, fd, memory and socket stores are fine, a Redis store is
 *    refused (EOPNOTSUPP: hiredis allocates).  The pager's own lock is
 *    taken there, which is safe because no pager call touches map memory
 *    while it holds it - but a signal handler of the program that touches
 *    a map, run while the same thread is inside a pager call, may
 *    deadlock (it does in the default mode too).  The path allocates
 *    nothing: faults read into buffers mapped with the pager (32 at once;
 *    beyond, through the pages' shadow), and the inactive queue is made
 *    for the whole buffer up front.  It takes up to about 12 KiB of the
 *    faulting thread's stack (when it evicts), besides the signal frame.
 *  - As for the runtime's in-thread mode: a thread that blocks SIGBUS
 *    makes uffd_pager_new() fail with EBUSY, a SIGBUS handler installed
 *    later must chain to libuffd's (else uffd_pager_map() fails with
 *    EBUSY), a fault's SIGBUS for an unreadable page goes to the
 *    program's action, and cancellation waits until a fault is resolved.
 *    fillers and max_fault_events are unused.
 */
#ifndef LIBUFFD_PAGER_H
#define LIBUFFD_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uffd/uffd.h>	/* UFFD_OPTS */
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* One I/O of a batch (uffd_store_ops.read_batch / write_batch). */
struct uffd_store_io {
	void *buf;
	size_t len;
	uint64_t off;
	ssize_t res;		/* out: bytes done, or -errno */
};

/*
 * Where a map's data lives.  read/write return bytes done (a read may be
 * short only at the end of the store) or -errno, and may be called from
 * several threads at once.  The batch variants, when set, run every I/O of
 * the batch concurrently (io_uring) and return when all are done; without
 * them the pager loops over read/write.
 */
struct uffd_store_ops {
	ssize_t (*read)(void *store, void *buf, size_t len, uint64_t off);
	ssize_t (*write)(void *store, const void *buf, size_t len, uint64_t off);
	int64_t (*size)(void *store);		/* bytes, or -errno */
	int     (*flush)(void *store);		/* durable: 0 or -errno */
	int     (*read_batch)(void *store, struct uffd_store_io *io, int n);
	int     (*write_batch)(void *store, struct uffd_store_io *io, int n);
	void    (*close)(void *store);		/* uffd_store_free */
};

struct uffd_store {
	const struct uffd_store_ops *ops;
	void *data;
	const char *kind;	/* "file", "memory", "socket", ... */
};

/* Built-in stores.  NULL with errno on failure. */
#define UFFD_STORE_DIRECT	(1u << 0) /* file: O_DIRECT (no page cache)
					     when the file system allows */
#define UFFD_STORE_URING	(1u << 1) /* file: batches through io_uring
					     (when built with liburing) */
/* Opens path with open_flags (O_RDONLY or O_RDWR, O_CREAT ...). */
struct uffd_store *uffd_store_file(const char *path, int open_flags, unsigned flags);
/* A store over an fd the caller keeps owning. */
struct uffd_store *uffd_store_fd(int fd, unsigned flags);
/* len bytes of memory (zeros), or the caller's buffer when buf != NULL. */
struct uffd_store *uffd_store_memory(void *buf, size_t len);
/* The memory a server process exports over a Unix stream socket
 * (uffd_store_serve). */
struct uffd_store *uffd_store_socket(const char *socket_path);
/*
 * The same with options.  A request the server does not answer fails with
 * -EIO timeout_ms after it was issued (waiting for a free connection
 * included), however many are queued: once one has timed out, requests
 * issued within the next timeout_ms fail at once.
 */
#define UFFD_STORE_SOCKET_MAX_TIMEOUT_MS	3600000	/* an hour */
struct uffd_store_socket_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	int timeout_ms;			/* 0: 5000; 1 to ..._MAX_TIMEOUT_MS */
};
struct uffd_store *uffd_store_socket_open(const char *socket_path,
					  const struct uffd_store_socket_opts *opts);
/* Serve len bytes at buf to uffd_store_socket clients on socket_path until
 * *stop becomes true (checked at least every 100 ms).  0 or -errno. */
int uffd_store_serve(const char *socket_path, void *buf, size_t len,
		     volatile bool *stop);
void uffd_store_free(struct uffd_store *s);

/*
 * A Redis server, or a Redis Cluster, as a store: each page of page_size
 * bytes is the string value of the key "<prefix>:<n>" (n: its index; a key
 * that does not exist reads as zeros), read and written with pipelined
 * GET and SET - a read-ahead window is one round trip.  With
 * UFFD_STORE_REDIS_CLUSTER, host:port is one node of a cluster and each
 * key goes to the node that serves its hash slot (MOVED and ASK are
 * followed).  A request that gets no answer within timeout_ms fails with
 * -EIO (the access that needed the page: SIGBUS): a server that dies or
 * hangs costs at most two timeouts, never a hang.  See uffd_store_redis(3).
 * Declare with UFFD_OPTS(uffd_store_redis_opts, o, .prefix = ..., .size =
 * ...).  NULL with errno: EINVAL (no prefix, no size, a bad field), EIO
 * (no server answers), EOPNOTSUPP (libuffd was built without hiredis).
 */
struct uffd_store_redis_opts {
	size_t sz;			/* set by UFFD_OPTS() */
	const char *host;	/* name or address (NULL: 127.0.0.1) */
	int port;		/* 0: 6379 */
	const char *prefix;	/* the keys' prefix: names the map (required,
				   at most 200 bytes) */
	uint64_t size;		/* bytes the store holds (required) */
	size_t page_size;	/* bytes per value (0: 4096) */
	int timeout_ms;		/* per request (0: 1000) */
	unsigned flags;		/* UFFD_STORE_REDIS_* */
};
#define UFFD_STORE_REDIS_CLUSTER (1u << 0) /* host:port is a cluster node */
struct uffd_store *uffd_store_redis(const struct uffd_store_redis_opts *o);

struct uffd_pager;

struct uffd_pager_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	size_t buffer_bytes;	/* resident pages at most (0: 256 MiB) */
	size_t page_size;	/* default for maps (0: 4 KiB) */
	int fillers;		/* fault-servicing threads (0: 1) */
	int evictors;		/* eviction threads (0: 1) */
	int high_water;		/* % of the buffer that wakes eviction (0: 90) */
	int low_water;		/* % eviction brings it down to (0: 70) */
	size_t read_ahead;	/* largest read-ahead window, bytes (0: 2 MiB;
				   UFFD_PAGER_NO_READ_AHEAD: none) */
	int max_fault_events;	/* messages per read (0: 64) */
	/* A page could not be read (err < 0) or written back.  Called from a
	 * pager thread (in_thread: maybe from the faulting thread's SIGBUS
	 * handler); the access that needed it gets SIGBUS. */
	void (*on_error)(void *addr, size_t len, int err, void *arg);
	void *arg;
	bool in_thread;		/* faults served by the faulting thread (see
				   "In-thread mode" above) */
};
#define UFFD_PAGER_NO_READ_AHEAD ((size_t)-1)

/* NULL with errno (EOPNOTSUPP: no userfaultfd write-protect here, or
 * in_thread without UFFD_FEATURE_SIGBUS; EBUSY: in_thread while a thread
 * blocks SIGBUS or libuffd's SIGBUS action is replaced). */
struct uffd_pager *uffd_pager_new(const struct uffd_pager_opts *o);
/* Unmaps everything (writing dirty pages back), stops every thread. */
int uffd_pager_free(struct uffd_pager *p);

/* uffd_pager_map flags */
#define UFFD_PAGER_PRIVATE	(1u << 0) /* writes are never written back */
#define UFFD_PAGER_OWN_STORE	(1u << 1) /* unmap frees the store */

/*
 * Map len bytes of the store from byte offset off (both multiples of
 * page_size; 0 = the pager's) with prot PROT_READ or
 * PROT_READ|PROT_WRITE.  Returns the address, or NULL with errno (EINVAL
 * unaligned, EACCES write to a read-only store, ENOMEM).
 */
void *uffd_pager_map(struct uffd_pager *p, struct uffd_store *s, uint64_t off,
		     size_t len, int prot, unsigned flags, size_t page_size);
/*
 * uffd_pager_map with its arguments in an options struct that can grow
 * (declared with UFFD_OPTS), and one more: with UFFD_PAGER_FIXED in flags
 * the map goes at addr exactly (a multiple of its page size), replacing
 * whatever the process has mapped there, as mmap's MAP_FIXED does - but
 * never another map of this pager (EEXIST).  uffd_pager_map refuses
 * UFFD_PAGER_FIXED (EINVAL): it has no address to give.
 */
#define UFFD_PAGER_FIXED	(1u << 2)
struct uffd_pager_map_opts {
	size_t sz;			/* set by UFFD_OPTS() */
	uint64_t off;		/* as uffd_pager_map's arguments */
	size_t len;
	int prot;
	unsigned flags;
	size_t page_size;
	void *addr;		/* with UFFD_PAGER_FIXED: where the map goes */
};
void *uffd_pager_map_ex(struct uffd_pager *p, struct uffd_store *s,
			const struct uffd_pager_map_opts *o);
/* Write dirty pages back, forget the map.  0 or the first write error. */
int uffd_pager_unmap(struct uffd_pager *p, void *addr);
/* Write back the dirty pages of [addr, addr+len) (len 0: the whole map)
 * and flush the store; pages stay resident.  0 or -errno. */
int uffd_pager_flush(struct uffd_pager *p, void *addr, size_t len);

struct uffd_pager_range {
	void *addr;
	size_t len;
};
/* Read these ranges in now (the caller waits); pinned pages are never
 * evicted until unmap.  Returns pages read, or -errno. */
#define UFFD_PAGER_PIN		(1u << 0)
long uffd_pager_prefetch(struct uffd_pager *p, const struct uffd_pager_range *r,
			 int n, unsigned flags);
/* Write back and drop [addr, addr+len) from the buffer.  0 or -errno. */
int uffd_pager_evict(struct uffd_pager *p, void *addr, size_t len);

struct uffd_pager_stats {
	uint64_t faults;	/* MISSING faults serviced */
	uint64_t wp_faults;	/* first writes (pages marked dirty) */
	uint64_t hits;		/* faults served without reading the store
				   (reactivated or already filled) */
	uint64_t fills;		/* pages read from the store */
	uint64_t read_ahead;	/* of those, beyond the faulting page */
	uint64_t evictions;	/* pages dropped from the buffer */
	uint64_t deactivations;	/* pages moved to the inactive list */
	uint64_t writebacks;	/* pages written to the store */
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t read_errors;
	uint64_t write_errors;
	uint64_t resident_bytes;	/* now */
	uint64_t resident_peak_bytes;
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};
int uffd_pager_stats(struct uffd_pager *p, struct uffd_pager_stats *s);
/* The effective configuration, defaults filled in, into o (declared with
 * UFFD_OPTS: an older, shorter struct gets what it has room for).  0 or
 * -EINVAL. */
int uffd_pager_config(struct uffd_pager *p, struct uffd_pager_opts *o);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
