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
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "track.h"

struct emit_sink {
	struct uffd_track_result *res;
	struct bitmap bits;		/* view of the caller's bitmap */
	int err;
};

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
	struct uffd_tracker *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return NULL;
	if (o)
		t->opts = *o;
	if (t->opts.backend == UFFD_TRACK_AUTO)
		t->opts.backend = uffd_tracking_backend();
	t->be = backend_for(t->opts.backend);
	t->u.fd = -1;
	t->pagemap_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_rwlock_init(&t->arm_lock, NULL);
	ret = t->be ? t->be->init(t) : -EINVAL;
	if (ret) {
		pthread_mutex_destroy(&t->lock);
		pthread_rwlock_destroy(&t->arm_lock);
		free(t);
		errno = -ret;
		return NULL;
	}
	return t;
}

enum uffd_track_backend uffd_track_backend_of(const struct uffd_tracker *t)
{
	return t->be->kind;
}

size_t uffd_track_pages(const struct uffd_tracker *t)
{
	return t->npages;
}

int track_grow_bitmaps(struct uffd_tracker *t)
{
	int ret = bitmap_resize(&t->dirty, t->npages);

	return ret ? ret : bitmap_resize(&t->removed, t->npages);
}

int uffd_track_add(struct uffd_tracker *t, void *addr, size_t len)
{
	uint64_t start = (uintptr_t)addr;
	struct track_range *r, **v;
	int ret;

	if (!len || (start | len) % 4096 || start + len < start)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct track_range){ .t = t, .start = start, .len = len };
	/* Reserve the range's bits.  The backend registers it outside the
	 * lock: an event callback holding the region table takes this lock. */
	pthread_mutex_lock(&t->lock);
	r->first_bit = t->npages;
	t->npages += len / 4096;
	ret = track_grow_bitmaps(t);
	pthread_mutex_unlock(&t->lock);
	if (!ret && t->opts.no_thp && madvise(addr, len, MADV_NOHUGEPAGE))
		ret = -errno;
	if (!ret)
		ret = t->be->add(t, r);
	if (ret)
		goto out_free;	/* its bits stay unused */
	pthread_mutex_lock(&t->lock);
	v = realloc(t->ranges, (t->nranges + 1) * sizeof(*v));
	if (v) {
		t->ranges = v;
		t->ranges[t->nranges++] = r;
		r = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	if (!r)
		return 0;
	ret = -ENOMEM;
out_free:
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
		if (clear)
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

	qsort(res->ranges, res->nranges, sizeof(res->ranges[0]), cmp_range);
	res->pages = 0;
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

static int collect(struct uffd_tracker *t, unsigned flags, struct emit_sink *sink)
{
	bool rearm = flags & UFFD_TRACK_REARM;
	int i, ret = 0;

	if (flags & ~UFFD_TRACK_REARM)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	t->sink = sink;
	for (i = 0; i < t->nranges && !ret && !sink->err; i++) {
		struct track_range *r = t->ranges[i];

		if (r->gone)
			continue;
		ret = t->be->collect(t, r, rearm);
		track_emit_bits(t, r, &t->removed, rearm);
	}
	t->sink = NULL;
	if (!ret && __atomic_load_n(&t->overflowed, __ATOMIC_RELAXED)) {
		ret = -ENOSPC;
		if (rearm)
			__atomic_store_n(&t->overflowed, 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&t->lock);
	__atomic_fetch_add(&t->collects, 1, __ATOMIC_RELAXED);
	return ret ? ret : sink->err;
}

int uffd_track_collect(struct uffd_tracker *t, unsigned flags,
		       struct uffd_track_result *res)
{
	struct emit_sink sink = { .res = res };
	int ret;

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

	if (nbits < t->npages)
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
	free(res->ranges);
	memset(res, 0, sizeof(*res));
}

int uffd_track_reset(struct uffd_tracker *t)
{
	int i, ret = 0;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nranges && !ret; i++) {
		struct track_range *r = t->ranges[i];

		if (r->gone)
			continue;
		ret = t->be->reset(t, r);
		bitmap_clear_range(&t->removed, r->first_bit, r->first_bit + r->len / 4096);
	}
	__atomic_store_n(&t->overflowed, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int uffd_track_stats(struct uffd_tracker *t, struct uffd_track_stats *s)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->backend = t->be->kind;
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nranges; i++)
		if (!t->ranges[i]->gone)
			s->tracked_bytes += t->ranges[i]->len;
	pthread_mutex_unlock(&t->lock);
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

	if (!t)
		return;
	t->be->destroy(t);
	for (i = 0; i < t->nranges; i++)
		free(t->ranges[i]);
	free(t->ranges);
	bitmap_free(&t->dirty);
	bitmap_free(&t->removed);
	pthread_mutex_destroy(&t->lock);
	pthread_rwlock_destroy(&t->arm_lock);
	free(t);
}
