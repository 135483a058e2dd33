/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The soft-dirty backend: the kernel's own dirty bits, where it has
 * CONFIG_MEM_SOFT_DIRTY.  Writing "4" to /proc/self/clear_refs clears the
 * soft-dirty bit of every page of the process (and write-protects it); the
 * next write to a page sets the bit again, and /proc/self/pagemap shows it
 * as bit 55 of the page's entry.  A collect reads the range's entries; a
 * rearm clears again.
 *
 * clear_refs works on the whole process, never on one range.  So that a
 * clear made for one range does not forget the writes to the tracker's
 * others, every clear (add, rearm, reset) first saves the soft-dirty pages
 * of all the tracker's ranges into t->dirty, the stash; a range's report
 * is its stash plus what pagemap says now.  Simple, at the price of
 * scanning every range for each one re-armed: fine for the few ranges of
 * the one soft-dirty tracker a process can have.  One, because a clear by
 * another tracker (or by anyone else who writes clear_refs, a checkpointer
 * say) forgets this one's writes.  For the same reason uffd_track_reset
 * forgets the writes of every range of the process.
 *
 * A write that lands between the scan and the clear is lost: the scan did
 * not see it and the clear wipes its bit.  That is inherent to soft-dirty
 * (there is no "report and clear" for it; WP_ASYNC with PAGEMAP_SCAN is
 * that), so the clear follows the scan at once.
 *
 * Without userfaultfd there are no events: mremap and munmap are not
 * followed (a range is read where it was added), a page zapped with
 * MADV_DONTNEED reads as clean until written again, and a new mapping
 * placed in a range reads as written (false positives only).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "track.h"

#define PAGE		4096UL	/* the tracker's page (track_bit) */
#define PAGEMAP_CHUNK	512	/* entries per read: 4 KiB on the stack */

static int sd_init(struct uffd_tracker *t)
{
	int fd;

	if (uffd_feature_supported(UFFD_FEAT_SOFT_DIRTY) != 1)
		return -EOPNOTSUPP;
	fd = uffd_pagemap_open(0);
	if (fd < 0)
		return fd;
	t->pagemap_fd = fd;
	return 0;
}

/* Add r's soft-dirty pages to the stash. */
static int stash_range(struct uffd_tracker *t, struct track_range *r)
{
	uint64_t entries[PAGEMAP_CHUNK];
	uint64_t addr = r->start, end = r->start + r->len;
	size_t i, n;
	ssize_t got;

	while (addr < end) {
		n = (end - addr) / PAGE;
		if (n > PAGEMAP_CHUNK)
			n = PAGEMAP_CHUNK;
		got = pread(t->pagemap_fd, entries, n * sizeof(entries[0]),
			    addr / PAGE * sizeof(entries[0]));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		n = got / sizeof(entries[0]);
		if (!n)
			return -EIO;
		for (i = 0; i < n; i++)
			if (entries[i] & PM_ENTRY_SOFT_DIRTY)
				bitmap_set_atomic(&t->dirty, track_bit(r, addr + i * PAGE));
		addr += n * PAGE;
	}
	return 0;
}

/* Stash every range's writes, then clear the bits of the whole process.
 * Called with t->lock and ranges_lock held. */
static int stash_and_clear(struct uffd_tracker *t)
{
	int i, fd, ret = 0;

	for (i = 0; i < t->nranges && !ret; i++)
		if (!t->ranges[i]->gone)
			ret = stash_range(t, t->ranges[i]);
	if (ret)
		return ret;
	fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		ret = -EIO;
	close(fd);
	return ret;
}

/* r is not among t->ranges yet: its bits are clear, its pages now too.
 * t->lock keeps collects and resets out, as they are when they clear. */
static int sd_add(struct uffd_tracker *t, struct track_range *r)
{
	int ret;

	pthread_mutex_lock(&t->lock);
	pthread_rwlock_rdlock(&t->ranges_lock);
	ret = stash_and_clear(t);
	pthread_rwlock_unlock(&t->ranges_lock);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static int sd_collect(struct uffd_tracker *t, struct track_range *r, bool rearm)
{
	int ret = rearm ? stash_and_clear(t) : stash_range(t, r);

	if (ret)
		return ret;
	track_emit_bits(t, r, &t->dirty, rearm);
	return 0;
}

static int sd_reset(struct uffd_tracker *t, struct track_range *r)
{
	int ret = stash_and_clear(t);

	if (ret)
		return ret;
	bitmap_clear_range(&t->dirty, r->first_bit, r->first_bit + r->len / PAGE);
	return 0;
}

static void sd_destroy(struct uffd_tracker *t)
{
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	t->pagemap_fd = -1;
}

const struct track_backend track_soft_dirty = {
	.kind = UFFD_TRACK_SOFT_DIRTY,
	.init = sd_init,
	.add = sd_add,
	.collect = sd_collect,
	.reset = sd_reset,
	.destroy = sd_destroy,
};
