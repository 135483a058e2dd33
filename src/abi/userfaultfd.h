/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's userfaultfd and PAGEMAP_SCAN user-space ABI, as libuffd uses it.
 *
 * Debian 12 ships Linux 6.1 uapi headers, which lack WP_UNPOPULATED, POISON,
 * WP_ASYNC, MOVE, UFFDIO_MOVE, UFFDIO_POISON, UFFDIO_CONTINUE_MODE_WP and
 * PAGEMAP_SCAN.  These values are fixed ABI (include/uapi/linux/userfaultfd.h
 * and include/uapi/linux/fs.h), so the project keeps its own copy and never
 * includes the system <linux/userfaultfd.h>: what the running kernel offers is
 * decided at run time by probing, not by the age of the build machine.
 *
 * Internal: only src/ includes this file; the public headers use their own
 * UFFD_FEAT_* / UFFD_REG_* names so that a program may include both libuffd
 * and the system uapi header.
 */
#ifndef LIBUFFD_ABI_USERFAULTFD_H
#define LIBUFFD_ABI_USERFAULTFD_H

/* Keep a later #include <linux/userfaultfd.h> from redefining everything. */
#define _LINUX_USERFAULTFD_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* /dev/userfaultfd (Linux 6.1+): one ioctl that returns a new userfaultfd. */
#define USERFAULTFD_IOC		0xAA
#define USERFAULTFD_IOC_NEW	_IO(USERFAULTFD_IOC, 0x00)

/* userfaultfd(2) flag: only faults raised from user mode are handled. */
#define UFFD_USER_MODE_ONLY	1

#define UFFD_API		((__u64)0xAA)

/* ioctl numbers; the register/api "ioctls" masks are 1 << these. */
#define _UFFDIO_REGISTER	(0x00)
#define _UFFDIO_UNREGISTER	(0x01)
#define _UFFDIO_WAKE		(0x02)
#define _UFFDIO_COPY		(0x03)
#define _UFFDIO_ZEROPAGE	(0x04)
#define _UFFDIO_MOVE		(0x05)
#define _UFFDIO_WRITEPROTECT	(0x06)
#define _UFFDIO_CONTINUE	(0x07)
#define _UFFDIO_POISON		(0x08)
#define _UFFDIO_API		(0x3F)

#define UFFDIO			0xAA

struct uffd_msg {
	__u8	event;
	__u8	reserved1;
	__u16	reserved2;
	__u32	reserved3;
	union {
		struct {
			__u64	flags;
			__u64	address;
			union {
				__u32 ptid;
			} feat;
		} pagefault;
		struct {
			__u32	ufd;
		} fork;
		struct {
			__u64	from;
			__u64	to;
			__u64	len;
		} remap;
		struct {
			__u64	start;
			__u64	end;
		} remove;
		struct {
			__u64	reserved1;
			__u64	reserved2;
			__u64	reserved3;
		} reserved;
	} arg;
} __attribute__((packed));

#define UFFD_EVENT_PAGEFAULT	0x12
#define UFFD_EVENT_FORK		0x13
#define UFFD_EVENT_REMAP	0x14
#define UFFD_EVENT_REMOVE	0x15
#define UFFD_EVENT_UNMAP	0x16

#define UFFD_PAGEFAULT_FLAG_WRITE	(1 << 0)
#define UFFD_PAGEFAULT_FLAG_WP		(1 << 1)
#define UFFD_PAGEFAULT_FLAG_MINOR	(1 << 2)

#define UFFD_FEATURE_PAGEFAULT_FLAG_WP		(1 << 0)
#define UFFD_FEATURE_EVENT_FORK			(1 << 1)
#define UFFD_FEATURE_EVENT_REMAP		(1 << 2)
#define UFFD_FEATURE_EVENT_REMOVE		(1 << 3)
#define UFFD_FEATURE_MISSING_HUGETLBFS		(1 << 4)
#define UFFD_FEATURE_MISSING_SHMEM		(1 << 5)
#define UFFD_FEATURE_EVENT_UNMAP		(1 << 6)
#define UFFD_FEATURE_SIGBUS			(1 << 7)
#define UFFD_FEATURE_THREAD_ID			(1 << 8)
#define UFFD_FEATURE_MINOR_HUGETLBFS		(1 << 9)
#define UFFD_FEATURE_MINOR_SHMEM		(1 << 10)
#define UFFD_FEATURE_EXACT_ADDRESS		(1 << 11)
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM		(1 << 12)
#define UFFD_FEATURE_WP_UNPOPULATED		(1 << 13)
#define UFFD_FEATURE_POISON			(1 << 14)
#define UFFD_FEATURE_WP_ASYNC			(1 << 15)
#define UFFD_FEATURE_MOVE			(1 << 16)

struct uffdio_api {
	__u64 api;
	__u64 features;
	__u64 ioctls;
};

struct uffdio_range {
	__u64 start;
	__u64 len;
};

struct uffdio_register {
	struct uffdio_range range;
#define UFFDIO_REGISTER_MODE_MISSING	((__u64)1 << 0)
#define UFFDIO_REGISTER_MODE_WP		((__u64)1 << 1)
#define UFFDIO_REGISTER_MODE_MINOR	((__u64)1 << 2)
	__u64 mode;
	__u64 ioctls;
};

struct uffdio_copy {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_COPY_MODE_DONTWAKE	((__u64)1 << 0)
#define UFFDIO_COPY_MODE_WP		((__u64)1 << 1)
	__u64 mode;
	__s64 copy;
};

struct uffdio_zeropage {
	struct uffdio_range range;
#define UFFDIO_ZEROPAGE_MODE_DONTWAKE	((__u64)1 << 0)
	__u64 mode;
	__s64 zeropage;
};

struct uffdio_writeprotect {
	struct uffdio_range range;
#define UFFDIO_WRITEPROTECT_MODE_WP		((__u64)1 << 0)
#define UFFDIO_WRITEPROTECT_MODE_DONTWAKE	((__u64)1 << 1)
	__u64 mode;
};

struct uffdio_continue {
	struct uffdio_range range;
#define UFFDIO_CONTINUE_MODE_DONTWAKE	((__u64)1 << 0)
#define UFFDIO_CONTINUE_MODE_WP		((__u64)1 << 1)
	__u64 mode;
	__s64 mapped;
};

struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE	((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};

struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE		((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES	((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};

#define UFFDIO_API		_IOWR(UFFDIO, _UFFDIO_API, struct uffdio_api)
#define UFFDIO_REGISTER		_IOWR(UFFDIO, _UFFDIO_REGISTER, struct uffdio_register)
#define UFFDIO_UNREGISTER	_IOR(UFFDIO, _UFFDIO_UNREGISTER, struct uffdio_range)
#define UFFDIO_WAKE		_IOR(UFFDIO, _UFFDIO_WAKE, struct uffdio_range)
#define UFFDIO_COPY		_IOWR(UFFDIO, _UFFDIO_COPY, struct uffdio_copy)
#define UFFDIO_ZEROPAGE		_IOWR(UFFDIO, _UFFDIO_ZEROPAGE, struct uffdio_zeropage)
#define UFFDIO_MOVE		_IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#define UFFDIO_WRITEPROTECT	_IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, struct uffdio_writeprotect)
#define UFFDIO_CONTINUE		_IOWR(UFFDIO, _UFFDIO_CONTINUE, struct uffdio_continue)
#define UFFDIO_POISON		_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)

/* PAGEMAP_SCAN on /proc/PID/pagemap (Linux 6.7+), from uapi/linux/fs.h. */
#define PAGE_IS_WPALLOWED	(1 << 0)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)
#define PAGE_IS_HUGE		(1 << 6)
#define PAGE_IS_SOFT_DIRTY	(1 << 7)
#define PAGE_IS_GUARD		(1 << 8)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)

/* /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_ENTRY_SOFT_DIRTY	(1ULL << 55)
#define PM_ENTRY_EXCLUSIVE	(1ULL << 56)
#define PM_ENTRY_UFFD_WP	(1ULL << 57)
#define PM_ENTRY_FILE_SHARED	(1ULL << 61)
#define PM_ENTRY_SWAP		(1ULL << 62)	/* swapped, migrating, or a uffd-wp marker */
#define PM_ENTRY_PRESENT	(1ULL << 63)

#endif
