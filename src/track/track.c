/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tracker: ranges, collects and the choice of backend.
 *
 * Every tracked page has a bit number that never changes (its range's first
 * bit plus its index), so bitmaps of written or removed pages stay right
 * when mremap moves a range.  A collect asks the backend, range by range,
 * to emit the runs of written pages into a sink (the caller's growable
 * range list, or its bitmap), adds the pages REMOVE events zeroed, and
 * sorts and merges the runs once at the end.
 *
 * A tracker belongs to the process that made it.  A child of fork() gets
 * a copy without the threads, with locks perhaps held for ever, and memory
 * that is not tracked there (the userfaultfd registrations stay with the
 * parent, the MPROTECT backend unprotects the child's copy at the fork):
 * every call made with it there answers -ECHILD before touching anything,
 * and freeing it there frees nothing.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "track.h"
#include "util/opts.h"

struct emit_sink {
	struct uffd_track_result *res;
	struct bitmap bits;		/* view of the caller's bitmap */
	int err;
};

/* The policy: the best backend the core's probes say this machine has. */
enum uffd_track_backend uffd_tracking_backend(void)
{
	if (uffd_feature_supported(UFFD_FEAT_WP_ASYNC) == 1 &&
	    uffd_feature_supported(UFFD_FEAT_PAGEMAP_SCAN) == 1 &&
	    uffd_feature_supported(UFFD_FEAT_REG_WP_ANON) == 1)
		return UFFD_TRACK_WP_ASYNC;
	if (uffd_feature_supported(UFFD_FEAT_REG_WP_ANON) == 1)
		return UFFD_TRACK_SYNC_WP;
	if (uffd_feature_supported(UFFD_FEAT_SOFT_DIRTY) == 1)
		return UFFD_TRACK_SOFT_DIRTY;
	return UFFD_TRACK_MPROTECT;
}

const char *uffd_track_backend_name(enum uffd_track_backend b)
{
	static const char *const names[] = {
		[UFFD_TRACK_AUTO] = "auto",
		[UFFD_TRACK_WP_ASYNC] = "wp-async+pagemap-scan",
		[UFFD_TRACK_SYNC_WP] = "sync-wp",
		[UFFD_TRACK_SOFT_DIRTY] = "soft-dirty",
		[UFFD_TRACK_MPROTECT] = "mprotect",
	};

	if ((unsigned)b >= sizeof(names) / sizeof(names[0])) {
		errno = EINVAL;
		return NULL;
	}
	return names[b];
}

static const struct track_backend *backend_for(enum uffd_track_backend kind)
{
	switch (kind) {
	case UFFD_TRACK_WP_ASYNC:	return &track_wp_async;
	case UFFD_TRACK_SYNC_WP:	return &track_sync_wp;
	case UFFD_TRACK_SOFT_DIRTY:	return &track_soft_dirty;
	case UFFD_TRACK_MPROTECT:	return &track_mprotect;
	default:			return NULL;
	}
}

struct uffd_tracker *uffd_track_new(const struct uffd_track_opts *o)
{
	struct uffd_track_opts opts;
	struct uffd_tracker *t;
	int ret;

	ret = uffd__load_opts(&opts, o, struct uffd_track_opts, in_thread, arg);
	if (ret || (opts.in_thread && opts.backend != UFFD_TRACK_SYNC_WP)) {
		errno = ret ? -ret : EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->opts = opts;
	if (t->opts.backend == UFFD_TRACK_AUTO)
		t->opts.backend = uffd_tracking_backend();
	t->be = backend_for(t->opts.backend);
	t->u.fd = -1;
	t->pagemap_fd = -1;
	t->pid = getpid();
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->add_lock, NULL);
	pthread_rwlock_init(&t->ranges_lock, NULL);
	pthread_rwlock_init(&t->arm_lock, NULL);
	ret = t->be ? t->be->init(t) : -EINVAL;
	if (ret) {
		pthread_mutex_destroy(&t->lock);
		pthread_mutex_destroy(&t->add_lock);
		pthread_rwlock_destroy(&t->ranges_lock);
		pthread_rwlock_destroy(&t->arm_lock);
		free(t);
		errno = -ret;
		return NULL;
	}
	return t;
}

/* A NULL tracker has no backend (AUTO, which no tracker reports) and no pages. */
enum uffd_track_backend uffd_track_backend_of(const struct uffd_tracker *t)
{
	return t ? t->be->kind : UFFD_TRACK_AUTO;
}

/* Made in the process that forked this one (see the top). */
static bool forked_away(const struct uffd_tracker *t)
{
	return getpid() != t->pid;
}

size_t uffd_track_pages(const struct uffd_tracker *t)
{
	return t ? t->npages : 0;
}

/* Called with ranges_lock held for writing; arm_lock keeps SYNC_WP's
 * fault handler off the dirty bitmap while it moves. */
int track_grow_bitmaps(struct uffd_tracker *t)
{
	int ret;

	if (t->be->grow_bitmaps)
		return t->be->grow_bitmaps(t);
	pthread_rwlock_wrlock(&t->arm_lock);
	ret = bitmap_resize(&t->dirty, t->npages);
	pthread_rwlock_unlock(&t->arm_lock);
	return ret ? ret : bitmap_resize(&t->removed, t->npages);
}

/* Let the events the kernel has already handed over be applied first:
 * mremap/munmap/madvise return as soon as their event is read. */
static void sync_events(struct uffd_tracker *t)
{
	if (t->h)
		uffd_handler_sync(t->h);
}

static int append_range(struct uffd_tracker *t, struct track_range *r)
{
	struct track_range **v = realloc(t->ranges, (t->nranges + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	t->ranges = v;
	t->ranges[t->nranges++] = r;
	return 0;
}

struct track_range *track_lookup(struct uffd_tracker *t, uint64_t addr)
{
	struct track_range *r = t->adding;
	int i;

	if (r && addr >= r->start && addr < r->start + r->len)
		return r;
	for (i = 0; i < t->nranges; i++) {
		r = t->ranges[i];
		if (!r->gone && addr >= r->start && addr < r->start + r->len)
			return r;
	}
	return NULL;
}

struct track_range *track_split_off(struct uffd_tracker *t, uint64_t start, uint64_t len,
				    size_t first_bit)
{
	struct track_range *piece = calloc(1, sizeof(*piece));

	if (!piece)
		return NULL;
	*piece = (struct track_range){ .t = t, .start = start, .len = len,
				       .first_bit = first_bit };
	if (append_range(t, piece)) {
		free(piece);
		return NULL;
	}
	return piece;
}

int uffd_track_add(struct uffd_tracker *t, void *addr, size_t len)
{
	uint64_t start = (uintptr_t)addr;
	struct track_range *r;
	int ret;

	if (!t || !len || (start | len) % 4096 || start + len < start)
		return -EINVAL;
	if (forked_away(t))
		return -ECHILD;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct track_range){ .t = t, .start = start, .len = len };
	pthread_mutex_lock(&t->add_lock);
	sync_events(t);
	/* Reserve the range's bits; one add at a time, so a failure can give
	 * them back.  The backend registers the range without ranges_lock:
	 * an event callback holding the region table takes it. */
	pthread_rwlock_wrlock(&t->ranges_lock);
	r->first_bit = t->npages;
	t->npages += len / 4096;
	ret = track_grow_bitmaps(t);
	t->adding = r;		/* its first faults may come before the append */
	if (t->be->ranges_changed)
		t->be->ranges_changed(t);
	pthread_rwlock_unlock(&t->ranges_lock);
	if (!ret && t->opts.no_thp && madvise(addr, len, MADV_NOHUGEPAGE))
		ret = -errno;
	if (!ret)
		ret = t->be->add(t, r);
	pthread_rwlock_wrlock(&t->ranges_lock);
	t->adding = NULL;
	if (!ret)
		ret = append_range(t, r);
	if (ret)
		t->npages -= len / 4096;
	if (t->be->ranges_changed)
		t->be->ranges_changed(t);
	pthread_rwlock_unlock(&t->ranges_lock);
	pthread_mutex_unlock(&t->add_lock);
	if (ret)
		free(r);
	return ret;
}

void track_emit(struct uffd_tracker *t, struct track_range *r, uint64_t start,
		uint64_t end)
{
	struct emit_sink *s = t->sink;
	struct uffd_track_result *res = s->res;

	if (start >= end)
		return;
	if (!res) {
		bitmap_set_range(&s->bits, track_bit(r, start), track_bit(r, end));
		return;
	}
	if (res->nranges && res->ranges[res->nranges - 1].end == start) {
		res->ranges[res->nranges - 1].end = end;
		return;
	}
	if (res->nranges == res->cap) {
		size_t cap = res->cap ? 2 * res->cap : 256;
		struct uffd_range *v = realloc(res->ranges, cap * sizeof(*v));

		if (!v) {
			s->err = -ENOMEM;
			return;
		}
		res->ranges = v;
		res->cap = cap;
	}
	res->ranges[res->nranges++] = (struct uffd_range){ start, end, UFFD_PAGE_WRITTEN };
}

void track_emit_bits(struct uffd_tracker *t, struct track_range *r,
		     struct bitmap *bm, bool clear)
{
	size_t pos = r->first_bit, end = r->first_bit + r->len / 4096, s, e;

	while (bitmap_next_run(bm, &pos, end, &s, &e)) {
		track_emit(t, r, r->start + (s - r->first_bit) * 4096,
			   r->start + (e - r->first_bit) * 4096);
		if (clear && !t->sink->err)	/* not reported: keep them */
			bitmap_clear_range(bm, s, e);
	}
}

static int cmp_range(const void *a, const void *b)
{
	const struct uffd_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort, merge touching runs, count pages. */
static void finish_ranges(struct uffd_track_result *res)
{
	size_t i, n = 0;

	res->pages = 0;
	if (!res->nranges)
		return;		/* ranges may still be NULL: qsort wants a pointer */
	qsort(res->ranges, res->nranges, sizeof(res->ranges[0]), cmp_range);
	for (i = 0; i < res->nranges; i++) {
		if (n && res->ranges[i].start <= res->ranges[n - 1].end) {
			if (res->ranges[i].end > res->ranges[n - 1].end)
				res->ranges[n - 1].end = res->ranges[i].end;
			continue;
		}
		res->ranges[n++] = res->ranges[i];
	}
	res->nranges = n;
	for (i = 0; i < n; i++)
		res->pages += (res->ranges[i].end - res->ranges[i].start) / 4096;
}

/*
 * Pages zeroed by MADV_DONTNEED/REMOVE: reported, and on rearm forgotten
 * once the backend says their zap is behind them (see settle_removed;
 * WP_ASYNC's PAGEMAP_SCAN reports and re-arms a zapped entry itself).
 */
static int emit_removed(struct uffd_tracker *t, struct track_range *r, bool rearm)
{
	size_t pos = r->first_bit, end = r->first_bit + r->len / 4096, a, b;
	int ret = 0;

	while (!ret && bitmap_next_run(&t->removed, &pos, end, &a, &b)) {
		uint64_t from = r->start + (a - r->first_bit) * 4096;

		track_emit(t, r, from, from + (b - a) * 4096);
		if (!rearm || t->sink->err)
			continue;
		if (t->be->settle_removed)
			ret = t->be->settle_removed(t, r, a, b);
		else
			bitmap_clear_range(&t->removed, a, b);
	}
	return ret;
}

/* Reset: removed pages count as clean, but for a zap still to come. */
static int forget_removed(struct uffd_tracker *t, struct track_range *r)
{
	size_t pos = r->first_bit, end = r->first_bit + r->len / 4096, a, b;
	int ret = 0;

	if (!t->be->settle_removed) {
		bitmap_clear_range(&t->removed, pos, end);
		return 0;
	}
	while (!ret && bitmap_next_run(&t->removed, &pos, end, &a, &b))
		ret = t->be->settle_removed(t, r, a, b);
	return ret;
}

static int collect(struct uffd_tracker *t, unsigned flags, struct emit_sink *sink)
{
	bool rearm = flags & UFFD_TRACK_REARM;
	int overflowed;
	int i, ret = 0;

	if (flags & ~UFFD_TRACK_REARM)
		return -EINVAL;
	if (forked_away(t))
		return -ECHILD;
	pthread_mutex_lock(&t->lock);
	/* Read (and with rearm, clear) the overflow before the pass: one
	 * during it marks every page written and is reported next time. */
	overflowed = rearm ? __atomic_exchange_n(&t->overflowed, 0, __ATOMIC_RELAXED) :
			     __atomic_load_n(&t->overflowed, __ATOMIC_RELAXED);
	/* -EAGAIN: an event is pending (see uffd.c protect()).  What was
	 * reported and re-armed stays so; the next pass reports the rest. */
	do {
		if (ret == -EAGAIN)
			sched_yield();
		ret = 0;
		sync_events(t);
		pthread_rwlock_rdlock(&t->ranges_lock);
		t->sink = sink;
		for (i = 0; i < t->nranges && !ret && !sink->err; i++) {
			struct track_range *r = t->ranges[i];

			if (r->gone)
				continue;
			ret = t->be->collect(t, r, rearm);
			if (!ret)
				ret = emit_removed(t, r, rearm);
		}
		t->sink = NULL;
		pthread_rwlock_unlock(&t->ranges_lock);
	} while (ret == -EAGAIN);
	if (!ret && overflowed)
		ret = -ENOSPC;
	pthread_mutex_unlock(&t->lock);
	__atomic_fetch_add(&t->collects, 1, __ATOMIC_RELAXED);
	return ret ? ret : sink->err;
}

int uffd_track_collect(struct uffd_tracker *t, unsigned flags,
		       struct uffd_track_result *res)
{
	struct emit_sink sink = { .res = res };
	int ret;

	if (!t || !res)
		return -EINVAL;
	res->nranges = 0;
	res->pages = 0;
	ret = collect(t, flags, &sink);
	finish_ranges(res);
	__atomic_fetch_add(&t->pages_reported, res->pages, __ATOMIC_RELAXED);
	return ret;
}

int uffd_track_collect_bitmap(struct uffd_tracker *t, unsigned flags,
			      uint64_t *bitmap, size_t nbits, uint64_t *pages)
{
	struct emit_sink sink = { .bits = { bitmap, nbits } };
	uint64_t n = 0;
	size_t i;
	int ret;

	if (!t || !bitmap || nbits < t->npages)
		return -EINVAL;
	memset(bitmap, 0, BITMAP_WORDS(nbits) * sizeof(*bitmap));
	ret = collect(t, flags, &sink);
	for (i = 0; i < BITMAP_WORDS(nbits); i++)
		n += __builtin_popcountll(bitmap[i]);
	if (pages)
		*pages = n;
	__atomic_fetch_add(&t->pages_reported, n, __ATOMIC_RELAXED);
	return ret;
}

void uffd_track_result_free(struct uffd_track_result *res)
{
	if (!res)
		return;
	free(res->ranges);
	memset(res, 0, sizeof(*res));
}

int uffd_track_reset(struct uffd_tracker *t)
{
	int i, ret = 0;

	if (!t)
		return -EINVAL;
	if (forked_away(t))
		return -ECHILD;
	pthread_mutex_lock(&t->lock);
	do {
		if (ret == -EAGAIN)
			sched_yield();
		ret = 0;
		sync_events(t);
		pthread_rwlock_rdlock(&t->ranges_lock);
		for (i = 0; i < t->nranges && !ret; i++) {
			struct track_range *r = t->ranges[i];

			if (r->gone)
				continue;
			ret = t->be->reset(t, r);
			if (!ret)
				ret = forget_removed(t, r);
		}
		pthread_rwlock_unlock(&t->ranges_lock);
	} while (ret == -EAGAIN);
	__atomic_store_n(&t->overflowed, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int uffd_track_stats(struct uffd_tracker *t, struct uffd_track_stats *s)
{
	int i;

	if (!t || !s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->backend = t->be->kind;
	if (forked_away(t))
		return -ECHILD;
	sync_events(t);
	pthread_rwlock_rdlock(&t->ranges_lock);
	for (i = 0; i < t->nranges; i++)
		if (!t->ranges[i]->gone)
			s->tracked_bytes += t->ranges[i]->len;
	pthread_rwlock_unlock(&t->ranges_lock);
	s->collects = __atomic_load_n(&t->collects, __ATOMIC_RELAXED);
	s->pages_reported = __atomic_load_n(&t->pages_reported, __ATOMIC_RELAXED);
	s->write_faults = __atomic_load_n(&t->write_faults, __ATOMIC_RELAXED);
	s->removed_pages = __atomic_load_n(&t->removed_pages, __ATOMIC_RELAXED);
	s->overflowed = __atomic_load_n(&t->overflowed, __ATOMIC_RELAXED);
	return 0;
}

void uffd_track_free(struct uffd_tracker *t)
{
	int i;

	if (!t || forked_away(t))
		return;
	t->be->destroy(t);
	for (i = 0; i < t->nranges; i++)
		free(t->ranges[i]);
	free(t->ranges);
	bitmap_free(&t->dirty);
	bitmap_free(&t->removed);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->add_lock);
	pthread_rwlock_destroy(&t->ranges_lock);
	pthread_rwlock_destroy(&t->arm_lock);
	free(t);
}
