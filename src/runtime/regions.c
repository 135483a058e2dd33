/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The region table: which registered range an address belongs to, kept
 * true across the kernel's non-cooperative events.
 *
 * A sorted array with binary search under a rwlock: lookups (every fault)
 * take the read side and cost a few cache lines; changes (add, remove,
 * REMAP, UNMAP) are rare and take the write side.  An mremap or munmap may
 * cover part of a region: the part moves (or goes) and the rest stays, so a
 * region can split into pieces that share its ops and data.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "util/mmalloc.h"

int region_table_init(struct region_table *t)
{
	memset(t, 0, sizeof(*t));
	return -pthread_rwlock_init(&t->lock, NULL);
}

void region_table_destroy(struct region_table *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		mm_free(t->v[i]);
	mm_free(t->v);
	pthread_rwlock_destroy(&t->lock);
	t->v = NULL;
	t->n = t->cap = 0;
}

/* Index of the first region whose end is above addr. */
static int first_ending_after(struct region_table *t, uint64_t addr)
{
	int lo = 0, hi = t->n;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (t->v[mid]->start + t->v[mid]->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct uffd_region *region_table_lookup(struct region_table *t, uint64_t addr)
{
	int i = first_ending_after(t, addr);

	if (i < t->n && t->v[i]->start <= addr)
		return t->v[i];
	return NULL;
}

void region_table_notify(struct region_table *t, uint64_t start, uint64_t end,
			 const struct uffd_event *ev)
{
	int i;

	for (i = first_ending_after(t, start); i < t->n && t->v[i]->start < end; i++)
		if (t->v[i]->ops.event)
			t->v[i]->ops.event(t->v[i], ev);
}

int region_table_insert(struct region_table *t, struct uffd_region *r)
{
	int i = first_ending_after(t, r->start);

	if (i < t->n && t->v[i]->start < r->start + r->len)
		return -EEXIST;
	if (t->n == t->cap) {
		int cap = t->cap ? 2 * t->cap : 8;
		struct uffd_region **v = mm_realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = r;
	t->n++;
	return 0;
}

void region_table_remove(struct region_table *t, struct uffd_region *r)
{
	int i;

	for (i = 0; i < t->n; i++) {
		if (t->v[i] == r) {
			memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
			t->n--;
			return;
		}
	}
}

/* A new region for [start, start+len) with r's ops and data. */
static struct uffd_region *split_off(struct uffd_region *r, uint64_t start, uint64_t len)
{
	struct uffd_region *piece = mm_zalloc(sizeof(*piece));

	if (piece) {
		*piece = *r;
		piece->start = start;
		piece->len = len;
	}
	return piece;
}

/*
 * Cut [start, end) out of every region it overlaps.  The pieces cut out are
 * returned in *cut (for REMAP to move), or freed when cut is NULL.  What
 * stays keeps the original region objects where possible, so a service's
 * pointer to a region stays valid for the part that did not move.
 */
static void cut_range(struct region_table *t, uint64_t start, uint64_t end,
		      const struct uffd_event *ev, struct uffd_region ***cut, int *ncut)
{
	int i = first_ending_after(t, start);

	while (i < t->n && t->v[i]->start < end) {
		struct uffd_region *r = t->v[i];
		uint64_t rend = r->start + r->len;
		uint64_t lo = r->start > start ? r->start : start;
		uint64_t hi = rend < end ? rend : end;
		struct uffd_region *moved = NULL, *tail = NULL;

		if (r->ops.event && ev)
			r->ops.event(r, ev);
		if (lo == r->start && hi == rend) {	/* all of it */
			region_table_remove(t, r);
			moved = r;
		} else {
			moved = split_off(r, lo, hi - lo);
			if (hi < rend)
				tail = split_off(r, hi, rend - hi);
			if (lo > r->start) {
				r->len = lo - r->start;
			} else {		/* keep r as the tail */
				region_table_remove(t, r);
				r->start = hi;
				r->len = rend - hi;
				mm_free(tail);
				tail = r;
			}
			if (tail && region_table_insert(t, tail))
				mm_free(tail);
			i = first_ending_after(t, hi);
		}
		if (cut && moved) {
			struct uffd_region **v = mm_realloc(*cut, (*ncut + 1) * sizeof(*v));

			if (v) {
				*cut = v;
				v[(*ncut)++] = moved;
				continue;
			}
		}
		mm_free(moved);
	}
}

void region_table_unmap(struct region_table *t, uint64_t start, uint64_t end,
			const struct uffd_event *ev)
{
	cut_range(t, start, end, ev, NULL, NULL);
}

void region_table_remap(struct region_table *t, uint64_t from, uint64_t to,
			uint64_t len, const struct uffd_event *ev)
{
	struct uffd_region **cut = NULL;
	int i, ncut = 0;

	cut_range(t, from, from + len, NULL, &cut, &ncut);
	/* Anything already at the destination was unmapped by the mremap. */
	cut_range(t, to, to + len, NULL, NULL, NULL);
	for (i = 0; i < ncut; i++) {
		cut[i]->start = cut[i]->start - from + to;
		if (region_table_insert(t, cut[i])) {
			mm_free(cut[i]);
			continue;
		}
		if (cut[i]->ops.event)
			cut[i]->ops.event(cut[i], ev);
	}
	mm_free(cut);
}
