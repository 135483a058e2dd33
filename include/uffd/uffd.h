/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd core: one userfaultfd, its features, registration, the resolve
 * ioctls, decoded messages and PAGEMAP_SCAN.
 *
 * The core maps 1:1 onto the kernel ABI and allocates nothing.  What it adds
 * is explicitness: every call returns 0 (or a count) or a negative errno, so
 * nothing depends on errno (which calls may still change); the resolve calls
 * report the bytes they completed even when they fail, and finish a
 * partially completed range themselves so that the error they return is the
 * precise reason the rest could not be done (the kernel itself reports
 * partial progress as a bare EAGAIN).  What the running kernel supports is probed once, lazily, and
 * cached (see uffd_feature_supported()).
 *
 * Errors that mean something precise when resolving (UFFDIO_COPY, ZEROPAGE,
 * CONTINUE, MOVE, POISON, WRITEPROTECT):
 *   -EEXIST   the destination page is already mapped (someone else resolved
 *             the fault, or it was never missing).  Usually harmless: wake.
 *   -ENOENT   the layout changed under us (the range was unmapped or
 *             remapped, or is no longer registered): look again.
 *   -EAGAIN   non-cooperative events (fork, mremap, madvise, munmap) are
 *             pending on this userfaultfd: read them, then retry.
 *   -ESRCH    the process owning the memory is exiting or gone.
 *   -ENOSPC   same as -ESRCH on older kernels (the mm is being torn down).
 *   -EINVAL   bad input: zero length, unaligned address or length, a range
 *             that wraps, a mode the kernel or the memory type rejects.
 *   -EFAULT   the source buffer is not readable; for CONTINUE, the page
 *             is not in the page cache (a hole in the file).
 *   -EBUSY    (MOVE) a page is shared or pinned and cannot be moved.
 *
 * Every function of libuffd (this header and the services') answers a NULL
 * handle or out-pointer alike: -EINVAL, or NULL with errno EINVAL where it
 * returns a pointer, 0 for a size or count; one that frees or closes does
 * nothing.  See libuffd(3), "Bad arguments".
 */
#ifndef LIBUFFD_UFFD_H
#define LIBUFFD_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared in libuffd's public headers is exported; the rest
 * of the library is built with hidden visibility. */
#pragma GCC visibility push(default)

#define LIBUFFD_VERSION_MAJOR 1
#define LIBUFFD_VERSION_MINOR 0

/*
 * Options structs that can grow (the OPTS pattern of libbpf).  Every
 * options struct of libuffd begins with `size_t sz`; declare one with
 *
 *	UFFD_OPTS(uffd_snap_opts, o, .path = "img", .regions = r, .nregions = n);
 *
 * which zeroes it (padding included), sets sz to the size this header
 * gives it, then the fields named.  A library built with more fields reads
 * the ones an older program does not have as zero; a library older than
 * the program refuses a field it does not know (set to non-zero) with
 * -EINVAL instead of ignoring it.  sz 0 (a struct not made by UFFD_OPTS)
 * is -EINVAL too.  Passing NULL where options are taken means defaults.
 *
 * Stats structs go the other way (the library fills them): they end in
 * reserved space that later fields take, so their size never changes.
 */
#define UFFD_OPTS(TYPE, NAME, ...)						\
	struct TYPE NAME = ({							\
		memset(&NAME, 0, sizeof(struct TYPE));				\
		(struct TYPE){ .sz = sizeof(struct TYPE), __VA_ARGS__ };	\
	})

/*
 * What uffd_feature_supported() can answer.  The first entries have the same
 * numbers as the kernel's UFFD_FEATURE_* bits, so UFFD_F(x) is the kernel's
 * mask for them; the rest are facts about the machine that libuffd probes by
 * doing the thing once on a throwaway userfaultfd or mapping.
 */
enum uffd_feature {
	/* Kernel UFFD_FEATURE_* bits, as UFFDIO_API reports them. */
	UFFD_FEAT_PAGEFAULT_FLAG_WP = 0,
	UFFD_FEAT_EVENT_FORK = 1,
	UFFD_FEAT_EVENT_REMAP = 2,
	UFFD_FEAT_EVENT_REMOVE = 3,
	UFFD_FEAT_MISSING_HUGETLBFS = 4,
	UFFD_FEAT_MISSING_SHMEM = 5,
	UFFD_FEAT_EVENT_UNMAP = 6,
	UFFD_FEAT_SIGBUS = 7,
	UFFD_FEAT_THREAD_ID = 8,
	UFFD_FEAT_MINOR_HUGETLBFS = 9,
	UFFD_FEAT_MINOR_SHMEM = 10,
	UFFD_FEAT_EXACT_ADDRESS = 11,
	UFFD_FEAT_WP_HUGETLBFS_SHMEM = 12,
	UFFD_FEAT_WP_UNPOPULATED = 13,
	UFFD_FEAT_POISON = 14,
	UFFD_FEAT_WP_ASYNC = 15,
	UFFD_FEAT_MOVE = 16,
	UFFD_FEAT_KERNEL_BITS_END,		/* not a feature */

	/* How a userfaultfd can be opened by this process. */
	UFFD_FEAT_SYSCALL = 32,		/* userfaultfd(2), kernel faults too */
	UFFD_FEAT_USER_MODE_ONLY,	/* userfaultfd(UFFD_USER_MODE_ONLY) */
	UFFD_FEAT_DEV_USERFAULTFD,	/* /dev/userfaultfd + USERFAULTFD_IOC_NEW */

	/* Register modes, per memory type (UFFDIO_REGISTER succeeds). */
	UFFD_FEAT_REG_MISSING_ANON,
	UFFD_FEAT_REG_WP_ANON,
	UFFD_FEAT_REG_MINOR_ANON,	/* expected 0: MINOR needs a page cache */
	UFFD_FEAT_REG_MISSING_SHMEM,
	UFFD_FEAT_REG_WP_SHMEM,
	UFFD_FEAT_REG_MINOR_SHMEM,
	UFFD_FEAT_REG_MISSING_HUGETLB,
	UFFD_FEAT_REG_WP_HUGETLB,
	UFFD_FEAT_REG_MINOR_HUGETLB,

	/* Resolve ioctls (the kernel offers them on a registered range). */
	UFFD_FEAT_IOCTL_COPY,
	UFFD_FEAT_IOCTL_ZEROPAGE,
	UFFD_FEAT_IOCTL_WAKE,
	UFFD_FEAT_IOCTL_WRITEPROTECT,
	UFFD_FEAT_IOCTL_CONTINUE,
	UFFD_FEAT_IOCTL_MOVE,
	UFFD_FEAT_IOCTL_POISON,

	/* Dirty-tracking building blocks outside userfaultfd. */
	UFFD_FEAT_PAGEMAP_SCAN,		/* ioctl(PAGEMAP_SCAN) on pagemap */
	UFFD_FEAT_SOFT_DIRTY,		/* bit 55 really sets after a write */

	UFFD_FEAT_COUNT			/* not a feature */
};

/* Kernel feature mask of a UFFD_FEAT_* below UFFD_FEAT_KERNEL_BITS_END. */
#define UFFD_F(feat)	(1ULL << (feat))

/*
 * Lazily probed, cached, thread-safe: 1 supported, 0 not, -errno could not
 * tell (e.g. -EPERM: this process may not open a userfaultfd at all).
 */
int uffd_feature_supported(enum uffd_feature f);
/* "WP_ASYNC", "REG_MINOR_SHMEM", ...; NULL for an unknown value. */
const char *uffd_feature_name(enum uffd_feature f);
/* All kernel UFFD_FEATURE_* bits this kernel offers (0 if none can be had). */
uint64_t uffd_kernel_features(void);
/* Forget cached probe results (for tests that change the machine). */
void uffd_probe_reset(void);

/* How a userfaultfd was opened (struct uffd.how). */
#define UFFD_OPENED_DEV		1u	/* through /dev/userfaultfd */
#define UFFD_OPENED_SYSCALL	2u	/* through userfaultfd(2) */
#define UFFD_OPENED_USER_ONLY	4u	/* with UFFD_USER_MODE_ONLY */
#define UFFD_OPENED_NONBLOCK	8u	/* the fd is O_NONBLOCK */

/* One userfaultfd.  Caller-allocated; fields are read-only after open. */
struct uffd {
	int fd;
	uint64_t features;	/* kernel UFFD_FEATURE_* bits negotiated */
	uint64_t ioctls;	/* ioctls UFFDIO_API allows (1 << _UFFDIO_*) */
	unsigned how;		/* UFFD_OPENED_* */
	uint64_t missing;	/* after -EOPNOTSUPP: required bits lacking */
};

/* uffd_open() flags. */
#define UFFD_NONBLOCK		(1u << 0) /* O_NONBLOCK: read never blocks */
#define UFFD_USER_ONLY		(1u << 1) /* only user-mode faults, always */
#define UFFD_ALLOW_USER_ONLY	(1u << 2) /* fall back to user-only if refused */
#define UFFD_VIA_DEV		(1u << 3) /* only try /dev/userfaultfd */
#define UFFD_VIA_SYSCALL	(1u << 4) /* only try userfaultfd(2) */

/*
 * Open a userfaultfd and negotiate features with UFFDIO_API (which the kernel
 * accepts once per fd).
 *
 * Open order, first success wins:
 *   1. /dev/userfaultfd (USERFAULTFD_IOC_NEW): the device's file mode decides,
 *      not vm.unprivileged_userfaultfd; skipped with UFFD_VIA_SYSCALL.
 *      The path can be overridden by the environment variable
 *      LIBUFFD_DEVICE (for containers that place the node elsewhere).
 *   2. userfaultfd(2); skipped with UFFD_VIA_DEV.
 *   3. userfaultfd(UFFD_USER_MODE_ONLY), only with UFFD_ALLOW_USER_ONLY,
 *      without UFFD_VIA_DEV, and only if userfaultfd(2) was refused with
 *      -EPERM/-EACCES.
 * With UFFD_USER_ONLY every path is opened with UFFD_USER_MODE_ONLY.
 * u->how says which path succeeded.  The fd is always close-on-exec.
 *
 * required: UFFD_F() bits that must all be granted, else -EOPNOTSUPP with
 *           u->missing set to the lacking bits (see uffd_describe_missing).
 * wanted:   bits granted when the kernel (and privilege: EVENT_FORK needs
 *           CAP_SYS_PTRACE) allows, silently dropped otherwise.
 * Returns 0, -EINVAL (u NULL, an unknown flag, VIA_DEV with VIA_SYSCALL),
 * -EOPNOTSUPP, -EPERM or -EACCES (no open path allowed: the
 * syscall's refusal wins over the device's), -ENOENT (UFFD_VIA_DEV and no
 * device node), or another -errno.  u->fd is -1 on failure.  Without a probe
 * result (no throwaway fd could be opened) a refused request reports all of
 * required in u->missing.
 */
int uffd_open(struct uffd *u, uint64_t required, uint64_t wanted, unsigned flags);

/* Adopt an fd that is already a userfaultfd with UFFDIO_API done (FORK). */
int uffd_adopt(struct uffd *u, int fd, uint64_t features);

/* Close the fd (safe on a closed or zeroed-and-fd=-1 struct, and on NULL). */
void uffd_close(struct uffd *u);

/* Write "WP_ASYNC, MOVE" for a missing-feature mask into buf; returns buf
 * (NULL with errno EINVAL when buf is NULL or size 0). */
char *uffd_describe_missing(uint64_t mask, char *buf, size_t size);

/* Register modes (any combination). */
#define UFFD_REG_MISSING	(1u << 0)
#define UFFD_REG_WP		(1u << 1)
#define UFFD_REG_MINOR		(1u << 2)

/* Bits of the ioctls mask uffd_register() returns: what a range allows. */
#define UFFD_IOCTL_WAKE		(1ULL << 0x02)
#define UFFD_IOCTL_COPY		(1ULL << 0x03)
#define UFFD_IOCTL_ZEROPAGE	(1ULL << 0x04)
#define UFFD_IOCTL_MOVE		(1ULL << 0x05)
#define UFFD_IOCTL_WRITEPROTECT	(1ULL << 0x06)
#define UFFD_IOCTL_CONTINUE	(1ULL << 0x07)
#define UFFD_IOCTL_POISON	(1ULL << 0x08)

/*
 * Register [addr, addr+len) in the given modes.  addr and len must be
 * page-aligned (4 KiB; the kernel further requires the huge page size on
 * hugetlbfs).  *ioctls (may be NULL) receives UFFD_IOCTL_* allowed there.
 * The kernel registers the mapped parts of a range with holes in it, and
 * does not check that a mode's feature bit was negotiated (6.18).
 * -EINVAL: bad range, nothing mapped in it, or a mode the memory type
 * rejects (MINOR on private anonymous memory); -EBUSY: registered on
 * another userfaultfd.
 */
int uffd_register(struct uffd *u, void *addr, size_t len, unsigned modes,
		  uint64_t *ioctls);
int uffd_unregister(struct uffd *u, void *addr, size_t len);

/* Resolve flags. */
#define UFFD_DONTWAKE		(1u << 0) /* leave waiters; uffd_wake() later */
#define UFFD_MAP_WP		(1u << 1) /* COPY/CONTINUE: map write-protected */
#define UFFD_ALLOW_SRC_HOLES	(1u << 2) /* MOVE: skip holes in the source */
#define UFFD_ONESHOT		(1u << 3) /* one ioctl: on partial progress
					     return the kernel's -EAGAIN
					     instead of finishing the rest */

/*
 * Resolve calls.  Return 0 when all of len was done, else -errno; *done
 * (may be NULL) receives the bytes completed in both cases.  On partial
 * progress the call re-issues the ioctl for the remainder (unless
 * UFFD_ONESHOT), so the error returned is why the first undone page failed.
 */
/* Copy src into the missing dst pages (UFFDIO_COPY). */
int uffd_copy(struct uffd *u, void *dst, const void *src, size_t len,
	      unsigned flags, size_t *done);
/* Map zero pages at dst (UFFDIO_ZEROPAGE; not on hugetlbfs). */
int uffd_zeropage(struct uffd *u, void *dst, size_t len, unsigned flags,
		  size_t *done);
/* Map the page-cache pages already there (UFFDIO_CONTINUE, MINOR faults). */
int uffd_continue(struct uffd *u, void *dst, size_t len, unsigned flags,
		  size_t *done);
/* Move anonymous pages from src to missing dst (UFFDIO_MOVE, zero-copy). */
int uffd_move(struct uffd *u, void *dst, void *src, size_t len,
	      unsigned flags, size_t *done);
/* Mark dst poisoned: a later access raises SIGBUS (UFFDIO_POISON). */
int uffd_poison(struct uffd *u, void *dst, size_t len, unsigned flags,
		size_t *done);
/* Protect or un-protect (which also wakes writers unless UFFD_DONTWAKE). */
int uffd_writeprotect(struct uffd *u, void *addr, size_t len, bool protect,
		      unsigned flags);
/* Wake threads blocked on faults in the range (after UFFD_DONTWAKE). */
int uffd_wake(struct uffd *u, void *addr, size_t len);

/* Decoded messages. */
enum uffd_event_type {
	UFFD_EV_FAULT,
	UFFD_EV_FORK,
	UFFD_EV_REMAP,
	UFFD_EV_REMOVE,
	UFFD_EV_UNMAP,
	UFFD_EV_UNKNOWN,	/* a message type this libuffd does not know */
};

enum uffd_fault_kind {
	UFFD_FAULT_MISSING,
	UFFD_FAULT_WP,
	UFFD_FAULT_MINOR,
};

struct uffd_event {
	enum uffd_event_type type;
	union {
		struct {
			uint64_t addr;	/* page-aligned unless EXACT_ADDRESS */
			enum uffd_fault_kind kind;
			bool write;
			uint32_t tid;	/* 0 unless THREAD_ID negotiated */
		} fault;
		struct {
			int fd;		/* child's userfaultfd, now ours */
		} fork;
		struct {
			uint64_t from, to, len;
		} remap;
		struct {
			uint64_t start, end;	/* REMOVE, UNMAP */
		} range;
		struct {
			uint8_t code;	/* UFFD_EV_UNKNOWN: the raw event */
		} unknown;
	};
};

/*
 * Read up to max messages in one read(2).  timeout_ms: -1 waits until at
 * least one arrives, 0 never waits, > 0 waits at most that long.  Returns
 * the number read (0: none arrived in time), or -errno (-EINTR if a signal
 * interrupted the wait).  A timeout >= 0 needs a UFFD_NONBLOCK fd (the
 * kernel refuses to poll a blocking one): on a blocking fd it is -EINVAL,
 * and -1 sleeps in read(2), the cheapest wait.  A FORK message installs a
 * new fd in this process: the caller owns it.
 */
int uffd_read_events(struct uffd *u, struct uffd_event *ev, int max,
		     int timeout_ms);
/* "fault", "fork", ...; "missing", "wp", "minor"; NULL with errno EINVAL
 * for a value that is not one of the enum's. */
const char *uffd_event_name(enum uffd_event_type t);
const char *uffd_fault_kind_name(enum uffd_fault_kind k);

/* PAGEMAP_SCAN: page categories (the kernel's PAGE_IS_* bits). */
#define UFFD_PAGE_WPALLOWED	(1ULL << 0) /* uffd-wp registered (WP_ASYNC) */
#define UFFD_PAGE_WRITTEN	(1ULL << 1) /* written since protected */
#define UFFD_PAGE_FILE		(1ULL << 2)
#define UFFD_PAGE_PRESENT	(1ULL << 3)
#define UFFD_PAGE_SWAPPED	(1ULL << 4)
#define UFFD_PAGE_PFNZERO	(1ULL << 5)
#define UFFD_PAGE_HUGE		(1ULL << 6)
#define UFFD_PAGE_SOFT_DIRTY	(1ULL << 7)

/* A run of pages [start, end) sharing the categories. */
struct uffd_range {
	uint64_t start, end, categories;
};

/* Scan flags. */
#define UFFD_SCAN_WP_MATCHING	(1u << 0) /* write-protect what matched */
#define UFFD_SCAN_CHECK_WPASYNC	(1u << 1) /* fail unless WP_ASYNC ranges */

struct uffd_scan {
	void *addr;
	size_t len;
	unsigned flags;			/* UFFD_SCAN_* */
	uint64_t category_mask;		/* all of these ... */
	uint64_t category_inverted;	/* ... with these bits inverted */
	uint64_t category_anyof_mask;	/* and at least one of these */
	uint64_t return_mask;		/* categories reported */
	uint64_t max_pages;		/* stop after this many pages (0: all) */
	uint64_t walk_end;		/* out: where the walk stopped */
};

/*
 * Open /proc/PID/pagemap (pid 0: self) read-only.  Returns fd or -errno.
 */
int uffd_pagemap_open(int pid);
/*
 * ioctl(PAGEMAP_SCAN).  Returns the number of ranges written to out (at most
 * max), or -errno.  When out fills up or max_pages is reached the walk stops
 * early: s->walk_end < addr+len tells where to resume.
 */
int uffd_pagemap_scan(int pagemap_fd, struct uffd_scan *s,
		      struct uffd_range *out, int max);
/*
 * The pages written (PAGE_IS_WRITTEN) in [addr, addr+len) of a WP_ASYNC
 * range; with rearm, write-protect them again in the same walk.  Fails if
 * part of the range is not registered on a WP_ASYNC userfaultfd (where
 * every page would look written).
 */
int uffd_pagemap_written(int pagemap_fd, void *addr, size_t len, bool rearm,
			 struct uffd_range *out, int max, uint64_t *walk_end);

/* The base page size (cached sysconf). */
size_t uffd_page_size(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
