/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd page server: lazy restore of other processes' memory over a Unix
 * socket - the non-cooperative side of userfaultfd, as Firecracker's "UFFD
 * handler" and CRIU's lazy-pages daemon use it.
 *
 * A client maps its regions, registers them on a userfaultfd and hands the
 * fd to the server with SCM_RIGHTS; from then on the server resolves the
 * client's MISSING faults from an image (or chain: uffd-image(5)) or from a
 * raw memory file, follows the client's fork, mremap, madvise and munmap
 * through the kernel's FORK/REMAP/REMOVE/UNMAP events, and, unless told to
 * serve on demand only, fills the rest of the memory in the background
 * until every page is in - then it lets go of the client.
 *
 * Two handshakes on one socket, told apart by the first byte:
 *  - libuffd's own (uffd_serve_attach()): versioned frames with a CRC32C;
 *    the server describes what it serves, the client says where it mapped
 *    it, and the server answers "accepted" or why not;
 *  - Firecracker's, byte for byte as Firecracker sends it: one sendmsg of
 *    a JSON array of {base_host_virt_addr, size, offset, page_size,
 *    page_size_kib} with the fd attached; the peer's pid and uid come from
 *    SO_PEERCRED, and no answer is sent (Firecracker reads none).
 *
 * Every client has its own thread and state; the image's page cache is
 * the only thing clients share, and no lock is taken on the fault path, so
 * a slow, stuck or dead client never delays another.  With a shared page
 * cache (shared_cache) the server also keeps the source's pages once in
 * memory and clients map them instead of getting copies.  A client whose
 * regions overlap, are unaligned, too large, outside the source or not its
 * memory, or whose JSON is truncated or malformed, is refused on that
 * connection alone.  Only the server's own user, root and the uids it is
 * given may connect (SO_PEERCRED, and the socket file's mode).
 *
 * Working sets (the REAP idea): with record, the pages the first client
 * touches, in the order it touched them, are written with their contents
 * to a working-set file next to the image when it detaches or exits; with
 * prefetch, each client gets that set in one sequential read, installed
 * with DONTWAKE copies and one wake - its own faults are always served
 * first - and then the rest in the background.
 *
 * The server dying: the client side keeps its own reference to the
 * userfaultfd (and to each forked child's, which the server passes on with
 * the fork) and a pidfd of the server, and if the server dies before the
 * restore is complete a thread in the client serves the remaining pages -
 * the children's first - itself from the same image (read-only; it must be
 * able to open it) or, where it cannot, poisons them, so the program gets
 * SIGBUS instead of a fault that never completes or a zero page it was
 * never given.  Nobody lets go of a process's memory before it is whole:
 * once its userfaultfd is closed the kernel hands a never-filled page out
 * as a zero page.
 */
#ifndef LIBUFFD_SERVE_H
#define LIBUFFD_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uffd/uffd.h>	/* UFFD_OPTS */

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define UFFD_SERVE_PROTO_VERSION 2
/* The most regions one client may describe (as many as an image has). */
#define UFFD_SERVE_MAX_REGIONS 4096

/* ---- the server -------------------------------------------------------- */

struct uffd_serve;

struct uffd_serve_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	const char *socket_path;	/* listen here (created; removed at free) */
	const char *image;		/* serve this image or chain ... */
	const char *mem_file;		/* ... or this raw memory file (one of
					   the two) */
	const char *ws_path;		/* working-set file (NULL: the source's
					   path + ".ws") */
	bool record;			/* record the first client's working set */
	bool prefetch;			/* prefetch the recorded working set */
	bool demand_only;		/* no background fill: pages arrive when
					   touched (or prefetched), the server
					   serves a client until it goes away */
	const uid_t *allow_uids;	/* who may connect besides the server's
					   own effective uid and root */
	int nallow_uids;
	unsigned socket_mode;		/* 0: 0600, or 0666 when allow_uids
					   names another uid */
	int max_clients;		/* at once; 0: 256 */
	int handshake_ms;		/* a handshake's deadline; 0: 5000 */
	/* One line about each connection (accepted, refused and why, done,
	 * gone) and about the working-set file; called from the server's
	 * threads, concurrently.  NULL: quiet. */
	void (*log)(void *arg, const char *line);
	void *log_arg;
	/* One page cache for all clients (protocol version 2): the source's
	 * pages go into a memory file once - sealed, read-only to clients -
	 * and a client maps its regions privately from it: a page arrives
	 * by mapping the cache's page (UFFDIO_CONTINUE), not by copying it,
	 * and a write makes it the client's own.  Clients of version 1,
	 * those that decline it (UFFD_SERVE_PRIVATE), those whose kernel
	 * lacks MINOR faults on shmem, and Firecracker's are served by copy
	 * as before.  Costs up to the source's size in memory once (shmem),
	 * for as long as the server runs.  One difference a program can
	 * see: its regions are a private file mapping, not anonymous
	 * memory, so a page given back with madvise(MADV_DONTNEED) reads
	 * zero while the restore goes on but, once it is complete, the
	 * cache's page again (the image's, or zero where the cache never got
	 * it) - as with MAP_PRIVATE of a memory file.  A program that counts
	 * on DONTNEED zeroing its memory attaches with UFFD_SERVE_PRIVATE. */
	bool shared_cache;
};

/*
 * Open the source (and the working set, with prefetch), listen on
 * socket_path and serve from threads of the server's own until
 * uffd_serve_free().  NULL with errno: EINVAL (bad options: no socket,
 * neither or both sources, record with prefetch), EADDRINUSE (a server is
 * listening there), the source's open error (uffd_image_chain_open(),
 * open(2); EINVAL for a memory file that is not a regular file), or
 * EBADMSG/ESTALE for a working-set file that is corrupt or belongs to
 * another source.
 */
struct uffd_serve *uffd_serve_new(const struct uffd_serve_opts *o);

struct uffd_serve_stats {
	uint64_t clients;		/* connections now (in the handshake or
					   being served) */
	uint64_t accepted;		/* handshakes accepted, in all */
	uint64_t refused;		/* connections refused (any reason) */
	uint64_t done;			/* clients restored completely */
	uint64_t gone;			/* clients that exited or detached first */
	uint64_t faults;		/* pages served on demand */
	uint64_t prefetched;		/* working-set pages installed */
	uint64_t filled;		/* pages installed by background fill */
	uint64_t zero;			/* of those, zero pages (holes, removed) */
	uint64_t errors;		/* pages that could not be read: poisoned */
	uint64_t events[4];		/* fork, remap, remove, unmap */
	uint64_t ws_pages;		/* pages in the working set loaded */
	uint64_t recorded;		/* pages written by record (0: none yet) */
	uint64_t cached;		/* pages in the shared cache (each once) */
	uint64_t reserved_[7];		/* later fields take these: the size
					   never changes (see uffd.h) */
};
/* Totals so far, clients that ended included.  0 or -EINVAL. */
int uffd_serve_stats(struct uffd_serve *s, struct uffd_serve_stats *st);

/*
 * Stop listening (the socket file is removed), end handshakes in progress,
 * let go of every client once its memory is safe without the server, and
 * join every thread.  A Firecracker client (no fallback) is finished first:
 * every page it still misses is filled and its regions are unregistered,
 * so it neither waits forever nor reads a zero page it was never given.
 * A libuffd client's forked children are finished the same way; the client
 * itself serves the rest from its fallback (as if the server had died).
 * So a stop takes as long as those fills (about a second per GiB here).
 * A recording in progress is written.
 */
void uffd_serve_free(struct uffd_serve *s);

/* ---- the client side ---------------------------------------------------- */

struct uffd_serve_client;

/* uffd_serve_attach_opts.flags */
#define UFFD_SERVE_ANYWHERE	(1u << 0) /* map where the kernel chooses, not
					     at the image's addresses */
#define UFFD_SERVE_NO_FALLBACK	(1u << 1) /* if the server dies, poison the
					     missing pages (SIGBUS) instead of
					     reading the source here */
#define UFFD_SERVE_PRIVATE	(1u << 2) /* decline a shared page cache:
					     private anonymous memory, every
					     page copied */

struct uffd_serve_attach_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	const char *socket_path;	/* the server's socket */
	unsigned flags;			/* UFFD_SERVE_* */
	int timeout_ms;			/* connect and handshake; 0: 5000 */
	const char *fallback_path;	/* what to serve from if the server dies
					   (NULL: the path the server names) */
};

/*
 * Connect, learn the regions the server serves, map them (private
 * anonymous memory, at their recorded addresses with MAP_FIXED_NOREPLACE
 * unless UFFD_SERVE_ANYWHERE), open a userfaultfd (EVENT_REMOVE, REMAP and
 * UNMAP required; FORK and POISON when this process may have them),
 * register the regions, hand the fd over and return once the server has
 * accepted: the memory then arrives on first touch.  NULL with errno:
 * EINVAL (bad options), ETIMEDOUT, ECONNREFUSED/ENOENT (no server),
 * EEXIST (something is mapped at the recorded addresses), EOPNOTSUPP
 * (no userfaultfd with the events here), or the error the server refused
 * with (EACCES: this uid is not allowed; EPROTONOSUPPORT: no common
 * protocol version; EBUSY: too many clients; ...).
 */
struct uffd_serve_client *uffd_serve_attach(const struct uffd_serve_attach_opts *o);

/* The regions (-EINVAL for a NULL c), where they are mapped and how long
 * they are (NULL with errno EINVAL, and 0, for a region that does not
 * exist). */
int uffd_serve_client_regions(const struct uffd_serve_client *c);
void *uffd_serve_client_addr(const struct uffd_serve_client *c, int region);
size_t uffd_serve_client_len(const struct uffd_serve_client *c, int region);

/*
 * Wait until every page is in - the server says so, or this process
 * finished the restore itself after the server died.  0, -ETIMEDOUT
 * (timeout_ms >= 0 passed; -1 waits as long as it takes), -EINVAL, or
 * the error that ended the restore.  A server started with demand_only
 * never finishes: wait for a timeout there.
 */
int uffd_serve_client_wait(struct uffd_serve_client *c, int timeout_ms);

struct uffd_serve_client_stats {
	uint64_t pages;			/* in the regions */
	uint64_t faults;		/* served on demand (by the server, and
					   here after a fallback) */
	uint64_t prefetched;		/* working-set pages installed */
	uint64_t filled;		/* installed by background fill */
	uint64_t zero;			/* of those, zero pages */
	uint64_t errors;		/* poisoned: could not be read */
	uint64_t features;		/* UFFD_F() bits of the userfaultfd */
	uint64_t duration_ns;		/* attach to every page in (so far,
					   while not done) */
	bool done;
	bool fallback;			/* the server died: served here since */
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};
/*
 * The counters as the server last reported them, asked for afresh while it
 * serves (a round trip on the socket, at most a second), plus what this
 * process served itself after a fallback.  0 or -EINVAL.
 */
int uffd_serve_client_stats(struct uffd_serve_client *c, struct uffd_serve_client_stats *st);

/*
 * Stop being served and free c.  unmap: unmap the regions too (nothing is
 * left to serve).  Otherwise, if the restore is not complete, the rest is
 * read here from the source first, as after a fallback, so the memory
 * left mapped is whole.
 */
void uffd_serve_detach(struct uffd_serve_client *c, bool unmap);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
