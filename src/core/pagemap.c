/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PAGEMAP_SCAN: ask /proc/PID/pagemap which pages of a range are in given
 * categories, as a list of runs rather than one 64-bit entry per page.
 *
 * With a WP_ASYNC userfaultfd this is the cheapest dirty tracker there is:
 * the kernel resolves write faults itself by clearing the uffd-wp bit, and
 * one PAGEMAP_SCAN with PM_SCAN_WP_MATCHING both reports the written pages
 * and write-protects them again, atomically per page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "internal.h"

int uffd_pagemap_open(int pid)
{
	char path[64];
	int fd;

	if (pid < 0)
		return -EINVAL;
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int uffd_pagemap_scan(int pagemap_fd, struct uffd_scan *s,
		      struct uffd_range *out, int max)
{
	struct pm_scan_arg arg;
	int ret;

	/* struct uffd_range is laid out as the kernel's struct page_region. */
	_Static_assert(sizeof(struct uffd_range) == sizeof(struct page_region),
		       "uffd_range must match page_region");
	if (!s || max < 0 || (!out && max) ||
	    (s->flags & ~(UFFD_SCAN_WP_MATCHING | UFFD_SCAN_CHECK_WPASYNC)))
		return -EINVAL;
	ret = check_range((uintptr_t)s->addr, s->len);
	if (ret)
		return ret;
	arg = (struct pm_scan_arg){
		.size = sizeof(arg),
		.start = (uintptr_t)s->addr,
		.end = (uintptr_t)s->addr + s->len,
		.vec = (uintptr_t)out,
		.vec_len = (uint64_t)max,
		.max_pages = s->max_pages,
		.category_inverted = s->category_inverted,
		.category_mask = s->category_mask,
		.category_anyof_mask = s->category_anyof_mask,
		.return_mask = s->return_mask,
	};
	if (s->flags & UFFD_SCAN_WP_MATCHING)
		arg.flags |= PM_SCAN_WP_MATCHING;
	if (s->flags & UFFD_SCAN_CHECK_WPASYNC)
		arg.flags |= PM_SCAN_CHECK_WPASYNC;
	ret = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
	s->walk_end = arg.walk_end;
	return ret < 0 ? -errno : ret;
}

int uffd_pagemap_written(int pagemap_fd, void *addr, size_t len, bool rearm,
			 struct uffd_range *out, int max, uint64_t *walk_end)
{
	struct uffd_scan s = {
		.addr = addr,
		.len = len,
		.flags = UFFD_SCAN_CHECK_WPASYNC | (rearm ? UFFD_SCAN_WP_MATCHING : 0),
		.category_mask = UFFD_PAGE_WRITTEN,
		.return_mask = UFFD_PAGE_WRITTEN,
	};
	int ret = uffd_pagemap_scan(pagemap_fd, &s, out, max);

	if (walk_end)
		*walk_end = s.walk_end;
	return ret;
}
