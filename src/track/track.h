/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the tracker: the ranges, the backend interface, and how backends
 * hand written pages to a collect.
 */
#ifndef LIBUFFD_TRACK_INTERNAL_H
#define LIBUFFD_TRACK_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>
#include <uffd/handler.h>
#include <uffd/track.h>

#include "util/bitmap.h"

struct uffd_tracker;

/* One tracked range.  Its pages are bits [first_bit, first_bit + pages) of
 * the tracker's bitmaps, wherever mremap moves the range. */
struct track_range {
	struct uffd_tracker *t;
	struct uffd_region *region;	/* userfaultfd backends */
	uint64_t start, len;		/* where it is now */
	size_t first_bit;
	bool gone;			/* unmapped */
};

struct track_backend {
	enum uffd_track_backend kind;
	/* Set up the backend's state (t->priv) once. */
	int (*init)(struct uffd_tracker *t);
	/* Start tracking r: protect it, all clean. */
	int (*add)(struct uffd_tracker *t, struct track_range *r);
	/* Report r's written pages with track_emit(); re-protect if rearm. */
	int (*collect)(struct uffd_tracker *t, struct track_range *r, bool rearm);
	/* Re-protect all of r and forget its writes. */
	int (*reset)(struct uffd_tracker *t, struct track_range *r);
	/*
	 * Optional, on rearm: the removed pages of r with bits [a, b) were
	 * just reported.  Clear (in t->removed) the bits of those whose zap
	 * is known to have happened, re-arming them as needed; the others
	 * are reported again next time.  Without it every bit is cleared.
	 */
	int (*settle_removed)(struct uffd_tracker *t, struct track_range *r, size_t a,
			      size_t b);
	/*
	 * Optional: the ranges or their geometry changed (ranges_lock held
	 * for writing), or the bitmaps must grow to t->npages (0 or
	 * -ENOMEM; without it they are resized in place).  SYNC_WP in-thread
	 * publishes both to its signal-side faults.
	 */
	void (*ranges_changed)(struct uffd_tracker *t);
	int (*grow_bitmaps)(struct uffd_tracker *t);
	/* Un-protect everything, free t->priv. */
	void (*destroy)(struct uffd_tracker *t);
};

struct emit_sink;
struct track_map;

struct uffd_tracker {
	const struct track_backend *be;
	struct uffd_track_opts opts;
	pthread_mutex_t lock;		/* one collect or reset at a time */
	pthread_mutex_t add_lock;	/* one add at a time */
	/* The ranges and their geometry, and the bitmaps' size: read by
	 * faults and collects, written by adds and by events (mremap, munmap
	 * and madvise of tracked memory).  Taken before arm_lock. */
	pthread_rwlock_t ranges_lock;
	struct track_range **ranges;
	int nranges;
	struct track_range *adding;	/* registered, not yet in ranges */
	size_t npages;			/* bits in use */
	struct bitmap dirty;		/* SYNC_WP, MPROTECT: written pages */
	struct bitmap removed;		/* REMOVE events: report until settled */
	struct emit_sink *sink;		/* the collect in progress */
	/* userfaultfd backends */
	struct uffd u;
	struct uffd_handler *h;
	int pagemap_fd;
	pthread_rwlock_t arm_lock;	/* SYNC_WP: faults vs rearm, and
					   the dirty bitmap's storage */
	struct track_map *map;		/* SYNC_WP in-thread: the ranges, as
					   the faults read them (atomic) */
	void *priv;			/* MPROTECT, SOFT_DIRTY */
	pid_t pid;			/* the process it tracks (fork) */
	/* stats (atomic) */
	uint64_t collects, pages_reported, write_faults, removed_pages;
	int overflowed;
};

extern const struct track_backend track_wp_async, track_sync_wp,
	track_mprotect, track_soft_dirty;

/* Report [start, end) (byte addresses inside r) as written. */
void track_emit(struct uffd_tracker *t, struct track_range *r, uint64_t start,
		uint64_t end);
/* Report the set bits of bm inside r; clear them if rearm. */
void track_emit_bits(struct uffd_tracker *t, struct track_range *r,
		     struct bitmap *bm, bool clear);
/* Grow the bitmaps to t->npages; 0 or -ENOMEM. */
int track_grow_bitmaps(struct uffd_tracker *t);

/* The range holding addr, or NULL.  Caller holds ranges_lock. */
struct track_range *track_lookup(struct uffd_tracker *t, uint64_t addr);
/* A new range for [start, start+len) of bits from first_bit, appended to
 * the ranges (mremap/munmap split one).  Caller holds ranges_lock for
 * writing.  NULL on ENOMEM. */
struct track_range *track_split_off(struct uffd_tracker *t, uint64_t start, uint64_t len,
				    size_t first_bit);

/* Bit of the page at addr in r. */
static inline size_t track_bit(const struct track_range *r, uint64_t addr)
{
	return r->first_bit + (addr - r->start) / 4096;
}

#endif
