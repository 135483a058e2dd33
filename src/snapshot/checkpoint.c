/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Incremental checkpoints: only the pages written since the previous
 * checkpoint go into the next image.
 *
 * Two ways, chosen at uffd_ckpt_new():
 *
 *   live (the default)  ckpt_live.c: the checkpointer's own write-protect
 *                       registration sees each first write, and a delta is
 *                       written after the instant with copy-before-write,
 *                       so the writers are paused for the instant only;
 *   stopped             a dirty tracker of the backend the caller forced
 *                       (WP_ASYNC, MPROTECT, SOFT_DIRTY: trackers that
 *                       cannot stop a write before it lands) collects the
 *                       written pages and they are written while the
 *                       writers stay paused.
 *
 * In the stopped way the pages to write are kept in a "pending" bitmap that
 * outlives a failed checkpoint: a collect re-arms the tracker, so the pages
 * it reported are ORed into pending and leave it only when an image
 * holding them has been committed (the live engine keeps its own).  The
 * first checkpoint starts with every page pending.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uffd/checkpoint.h>

#include "ckpt_live.h"
#include "util/bitmap.h"
#include "util/clock.h"
#include "util/opts.h"

#define PAGE 4096
#define PUT_MAX 64	/* pages per uffd_image_put */

struct uffd_ckpt {
	struct uffd_image_region *regions;
	int nregions;
	struct uffd_ckpt_opts opts;
	int seq;
	char *prev_path;
	/* the checkpoint begun and not yet waited for */
	bool begun;
	char *path;
	uint64_t t_begin;
	struct uffd_ckpt_stats st;
	int result;			/* the stopped way's, known at begin */
	/* live */
	struct ckpt_live *live;
	/* stopped */
	size_t *first_bit;		/* of each region in the tracker's order */
	struct uffd_tracker *t;
	struct bitmap pending;
	uint64_t *collected;		/* one collect's bitmap */
	char data[PUT_MAX * PAGE];	/* one put's worth of pages */
};

struct uffd_ckpt *uffd_ckpt_new(const struct uffd_image_region *regions, int nregions,
				const struct uffd_ckpt_opts *o)
{
	UFFD_OPTS(uffd_track_opts, to);
	struct uffd_ckpt_opts opts;
	struct uffd_ckpt *c;
	int i, ret = 0;

	if (uffd__load_opts(&opts, o, struct uffd_ckpt_opts, buffer_bytes, arg)) {
		errno = EINVAL;
		return NULL;
	}
	if (!regions || nregions <= 0 || nregions > UFFD_IMAGE_MAX_REGIONS ||
	    !opts.pause != !opts.resume) {
		errno = EINVAL;
		return NULL;
	}
	for (i = 0; i < nregions; i++)
		if (regions[i].page_size != PAGE) {
			errno = EINVAL;
			return NULL;
		}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->opts = opts;
	c->regions = malloc(nregions * sizeof(*regions));
	if (!c->regions) {
		ret = -ENOMEM;
		goto out_err;
	}
	memcpy(c->regions, regions, nregions * sizeof(*regions));
	c->nregions = nregions;
	if (opts.backend == UFFD_TRACK_AUTO || opts.backend == UFFD_TRACK_SYNC_WP) {
		c->live = uffd__ckpt_live_new(regions, nregions, opts.buffer_bytes);
		if (c->live)
			return c;
		/* no write-protect here: AUTO falls back to the best tracker */
		if (errno != EOPNOTSUPP || opts.backend != UFFD_TRACK_AUTO) {
			ret = -errno;
			goto out_err;
		}
	}
	to.backend = c->opts.backend;
	c->first_bit = calloc(nregions, sizeof(*c->first_bit));
	c->t = uffd_track_new(&to);
	if (!c->first_bit || !c->t) {
		ret = -errno;
		goto out_err;
	}
	for (i = 0; i < nregions && !ret; i++) {
		c->first_bit[i] = uffd_track_pages(c->t);
		ret = uffd_track_add(c->t, (void *)(uintptr_t)regions[i].addr, regions[i].len);
	}
	if (!ret)
		ret = bitmap_resize(&c->pending, uffd_track_pages(c->t));
	c->collected = calloc(BITMAP_WORDS(uffd_track_pages(c->t)), sizeof(uint64_t));
	if (!ret && !c->collected)
		ret = -ENOMEM;
	if (ret)
		goto out_err;
	bitmap_set_range(&c->pending, 0, c->pending.nbits);	/* the base: all */
	return c;
out_err:
	uffd_ckpt_free(c);
	errno = ret ? -ret : ENOMEM;
	return NULL;
}

static bool page_is_zero(const char *p)
{
	const uint64_t *w = (const uint64_t *)p;
	int i;

	for (i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/*
 * Put pages [first, first+count) of region i: the non-zero ones as data,
 * the zero ones as zero (a delta) or not at all (a base: holes).
 */
static int put_run(struct uffd_ckpt *c, struct uffd_image_writer *w, int i,
		   uint64_t first, uint32_t count, uint64_t *pages)
{
	const char *mem = (const char *)(uintptr_t)c->regions[i].addr;
	uint64_t zero_mask = 0;
	uint32_t k, ndata = 0;

	for (k = 0; k < count; k++) {
		const char *page = mem + (first + k) * PAGE;

		if (page_is_zero(page)) {
			zero_mask |= 1ULL << k;
			continue;
		}
		memcpy(c->data + ndata++ * PAGE, page, PAGE);
	}
	if (c->seq == 0) {
		/* A base leaves zero pages out: split around them. */
		uint32_t at = 0, d = 0;

		while (at < count) {
			uint32_t n = 0;
			int ret;

			while (at + n < count && !(zero_mask & (1ULL << (at + n))))
				n++;
			if (n) {
				ret = uffd_image_put(w, i, first + at, n, c->data + d * PAGE, 0);
				if (ret)
					return ret;
				d += n;
				*pages += n;
			}
			at += n + 1;	/* skip the zero page that ended the run */
		}
		return 0;
	}
	*pages += count;
	return uffd_image_put(w, i, first, count, c->data, zero_mask);
}

/* Write every pending page, region by region, in address order. */
static int write_pending(struct uffd_ckpt *c, struct uffd_image_writer *w, uint64_t *pages)
{
	int i, ret = 0;

	for (i = 0; i < c->nregions && !ret; i++) {
		size_t base = c->first_bit[i], end = base + c->regions[i].len / PAGE;
		size_t pos = base, a, b;

		while (!ret && bitmap_next_run(&c->pending, &pos, end, &a, &b)) {
			for (; a < b && !ret; a += PUT_MAX) {
				uint32_t n = b - a < PUT_MAX ? b - a : PUT_MAX;

				ret = put_run(c, w, i, a - base, n, pages);
			}
		}
	}
	return ret;
}

/* The stopped way: everything while the writers are paused (result kept). */
static int take_stopped(struct uffd_ckpt *c, const char *path)
{
	struct uffd_image_writer *w;
	uint64_t t_pause, pages = 0;
	size_t i, words = BITMAP_WORDS(c->pending.nbits);
	int ret;

	if (c->opts.pause)
		c->opts.pause(c->opts.arg);
	t_pause = mono_ns();
	ret = uffd_track_collect_bitmap(c->t, UFFD_TRACK_REARM, c->collected,
					c->pending.nbits, NULL);
	/* -ENOSPC (mprotect ran out of VMAs) still reported every page. */
	if (!ret || ret == -ENOSPC) {
		for (i = 0; i < words; i++)
			c->pending.words[i] |= c->collected[i];
		ret = 0;
	}
	w = ret ? NULL : uffd_image_create(path, c->regions, c->nregions,
					   c->seq ? c->prev_path : NULL, 0);
	if (!ret && !w)
		ret = -errno;
	if (!ret)
		ret = write_pending(c, w, &pages);
	if (c->opts.resume)
		c->opts.resume(c->opts.arg);
	c->st.pages_written = pages;
	c->st.pause_ns = mono_ns() - t_pause;
	c->st.bytes = w ? uffd_image_bytes(w) : 0;
	if (ret) {
		if (w)
			uffd_image_abort(w);
		return ret;
	}
	ret = uffd_image_commit(w);
	if (!ret)
		memset(c->pending.words, 0, words * sizeof(uint64_t));
	return ret;
}

int uffd_ckpt_begin(struct uffd_ckpt *c, const char *path)
{
	int ret;

	if (!c || !path)
		return -EINVAL;
	if (c->begun)
		return -EBUSY;
	c->path = strdup(path);
	if (!c->path)
		return -ENOMEM;
	memset(&c->st, 0, sizeof(c->st));
	c->st.sequence = c->seq;
	c->t_begin = mono_ns();
	if (c->live) {
		ret = uffd__ckpt_live_begin(c->live, path, c->prev_path, c->seq == 0,
					    c->opts.pause, c->opts.resume, c->opts.arg,
					    &c->st.pause_ns);
		if (ret) {
			free(c->path);
			c->path = NULL;
			return ret;
		}
	} else {
		c->result = take_stopped(c, path);
	}
	c->begun = true;
	return 0;
}

int uffd_ckpt_wait(struct uffd_ckpt *c, int timeout_ms, struct uffd_ckpt_stats *st)
{
	struct ckpt_live_result res;
	int ret;

	if (!c)
		return -EINVAL;
	if (!c->begun)
		return -ENOENT;
	if (c->live) {
		ret = uffd__ckpt_live_wait(c->live, timeout_ms, &res);
		if (ret == -ETIMEDOUT)
			return ret;
		c->st.pages_written = res.pages_written;
		c->st.bytes = res.bytes;
		c->st.copied_before_write = res.copied_before_write;
		c->st.sync_writes = res.sync_writes;
	} else {
		ret = c->result;
	}
	c->begun = false;
	if (!ret) {
		free(c->prev_path);
		c->prev_path = c->path;
		c->path = NULL;
		c->seq++;
		c->st.duration_ns = mono_ns() - c->t_begin;
	} else {
		free(c->path);
		c->path = NULL;
	}
	if (st)
		*st = c->st;
	return ret;
}

int uffd_ckpt_prepare_write(struct uffd_ckpt *c, void *addr, size_t len)
{
	if (!c)
		return -EINVAL;
	/* the stopped way's trackers need no help */
	return c->live ? uffd__ckpt_live_prepare_write(c->live, addr, len) : 0;
}

int uffd_ckpt_take(struct uffd_ckpt *c, const char *path, struct uffd_ckpt_stats *st)
{
	int ret = uffd_ckpt_begin(c, path);

	if (ret) {
		if (st) {
			memset(st, 0, sizeof(*st));
			st->sequence = c ? c->seq : 0;
		}
		return ret;
	}
	return uffd_ckpt_wait(c, -1, st);
}

void uffd_ckpt_free(struct uffd_ckpt *c)
{
	if (!c)
		return;
	uffd__ckpt_live_free(c->live);	/* abandons an image being written */
	free(c->path);
	uffd_track_free(c->t);
	bitmap_free(&c->pending);
	free(c->collected);
	free(c->regions);
	free(c->first_bit);
	free(c->prev_path);
	free(c);
}
