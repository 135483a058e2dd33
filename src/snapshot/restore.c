/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Restoring an image (or a chain of base and deltas) into memory.
 *
 * Eager restore reads every page into fresh mappings before returning.
 * Lazy restore maps the regions empty and registers them for MISSING
 * faults: the first touch of a page is served from the image (a hole as a
 * zero page), and a background thread walks the pages in address order
 * copying in whatever is still missing - EEXIST from a page the program
 * already faulted in is just skipped.  Either way each page is read from
 * the newest image in the chain that holds it.
 *
 * Holes cost nothing: fresh anonymous memory already reads as zero, so
 * both walk only the runs of pages some image records (a tiny image of a
 * huge sparse region restores in the time its data takes), and a page
 * that reads as zero is not written.  When the prefetch is done the lazy
 * regions are unregistered, and a hole touched later is an ordinary fault.
 *
 * With opts.in_thread the first touch is served by the touching thread
 * itself, from the runtime's SIGBUS handler (runtime/inthread.c): the
 * same callback, but it may neither allocate nor lock, so the chain's
 * index is trusted before the regions are registered, and a chunk's first
 * read checks its CRC through the page buffer (IMG_READ_SIGNAL_SAFE).  The
 * prefetch races with such faults exactly as with the servicing thread's:
 * whichever copies a page first wins, the other gets EEXIST, and both
 * copy the same bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <uffd/handler.h>
#include <uffd/snapshot.h>

#include "image/internal.h"
#include "util/clock.h"
#include "util/mmalloc.h"
#include "util/opts.h"

struct restore_region {
	struct uffd_restore *r;
	int index;
	char *addr;
	struct uffd_image_region ir;
	struct uffd_region *region;
	uint64_t *counted;		/* lazy, atomic: a bit per page once
					   its filling is counted */
};

struct uffd_restore {
	struct uffd_image_chain *chain;
	int nregions;
	struct restore_region *regions;
	unsigned flags;
	bool in_thread;
	struct uffd u;
	struct uffd_handler *h;
	pthread_t prefetcher;
	bool prefetching;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int done, error;		/* atomic */
	uint64_t data;			/* atomic: pages filled with data */
	uint64_t t0;
	struct uffd_restore_stats st;
};

/* Read a page from the chain for a fault: 1 data in buf, 0 zero (buf
 * undefined), -errno.  Signal-safe in in-thread mode. */
static int fault_read_page(struct uffd_restore *r, int region, uint64_t page, void *buf)
{
	return uffd__image_chain_read_page(r->chain, region, page, buf,
					   r->in_thread ? IMG_READ_SIGNAL_SAFE : 0);
}

static int map_region(struct uffd_restore *r, struct restore_region *rr)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *want = NULL, *p;

	if (rr->ir.page_size != 4096)
		return -EOPNOTSUPP;	/* hugetlbfs images: not yet */
	if (!(r->flags & UFFD_RESTORE_ANYWHERE)) {
		want = (void *)(uintptr_t)rr->ir.addr;
		flags |= MAP_FIXED_NOREPLACE;
	}
	p = mmap(want, rr->ir.len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (want && p != want) {	/* old kernels ignore NOREPLACE */
		munmap(p, rr->ir.len);
		return -EEXIST;
	}
	rr->addr = p;
	return 0;
}

/* Only recorded pages, read straight into place; a zero one is left alone. */
static int fill_eagerly(struct uffd_restore *r, struct restore_region *rr)
{
	uint64_t page = 0, end;
	int ret;

	while (uffd__image_chain_next_run(r->chain, rr->index, page, &page, &end)) {
		for (; page < end; page++) {
			ret = uffd__image_chain_read_page(r->chain, rr->index, page,
							  rr->addr + page * rr->ir.page_size,
							  0);
			if (ret < 0)
				return ret;
			r->data += ret;
		}
	}
	return 0;
}

/*
 * Count a page filled (data or zero), once: a fault and the prefetch - or,
 * in-thread, several threads' faults - may race to fill the same page, and
 * only the first to get here counts it, as faulted or prefetched.  The
 * bitmap is mapped, not allocated: its words cost memory once touched.
 */
static bool count_filled(struct uffd_restore *r, struct restore_region *rr, uint64_t page,
			 bool data, uint64_t *by)
{
	uint64_t bit = 1ULL << (page % 64);

	if (__atomic_fetch_or(&rr->counted[page / 64], bit, __ATOMIC_RELAXED) & bit)
		return false;
	__atomic_fetch_add(by, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(data ? &r->data : &r->st.zero, 1, __ATOMIC_RELAXED);
	return true;
}

/* A MISSING fault: the page from the image, or zeros.  In-thread it runs
 * in the faulting thread's SIGBUS handler: buf is on that thread's stack. */
static int restore_missing(struct uffd_fault *f)
{
	struct restore_region *rr = f->data;
	struct uffd_restore *r = rr->r;
	uint64_t page = ((char *)f->addr - rr->addr) / rr->ir.page_size;
	char buf[4096] __attribute__((aligned(64)));
	int ret = fault_read_page(r, rr->index, page, buf);
	bool data = ret == 1;

	if (ret < 0)
		return ret;	/* SIGBUS through POISON, see handler.h */
	ret = data ? uffd_fault_copy(f, buf, rr->ir.page_size) :
		     uffd_fault_zero(f, rr->ir.page_size);
	if (!ret)
		count_filled(r, rr, page, data, &r->st.faulted);
	return ret;
}

static const struct uffd_region_ops restore_ops = { .missing = restore_missing };

/*
 * Done: every page is data or reads as zero, holes included, so from now
 * on zero counts them all.
 */
static void set_done(struct uffd_restore *r, int err)
{
	pthread_mutex_lock(&r->lock);
	if (!err)
		__atomic_store_n(&r->st.zero, r->st.pages - __atomic_load_n(&r->data,
					     __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	__atomic_store_n(&r->error, err, __ATOMIC_RELAXED);
	__atomic_store_n(&r->st.duration_ns, mono_ns() - r->t0, __ATOMIC_RELAXED);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&r->done_cond);
	pthread_mutex_unlock(&r->lock);
}

/*
 * Fill one page unless a fault got there first (-EEXIST: the core call, not
 * the runtime's uffd_region_copy, which counts that as success).  -EAGAIN
 * (an event is pending) cannot last: nothing maps or unmaps these regions.
 */
static int prefetch_page(struct uffd_restore *r, char *dst, const void *data, size_t len)
{
	int ret;

	do {
		ret = data ? uffd_copy(&r->u, dst, data, len, 0, NULL) :
			     uffd_zeropage(&r->u, dst, len, 0, NULL);
	} while (ret == -EAGAIN);
	return ret;
}

static void *prefetch_main(void *arg)
{
	struct uffd_restore *r = arg;
	char buf[4096] __attribute__((aligned(64)));
	int i, err = 0;

	for (i = 0; i < r->nregions && !err; i++) {
		struct restore_region *rr = &r->regions[i];
		uint64_t page = 0, end;

		while (!err && uffd__image_chain_next_run(r->chain, i, page, &page, &end)) {
			for (; page < end && !err; page++) {
				char *dst = rr->addr + page * rr->ir.page_size;
				int ret = uffd__image_chain_read_page(r->chain, i, page, buf, 0);
				bool zero;

				if (ret < 0) {
					err = ret;
					break;
				}
				zero = ret == 0;
				ret = prefetch_page(r, dst, zero ? NULL : buf, rr->ir.page_size);
				if (ret == 0)
					count_filled(r, rr, page, !zero, &r->st.prefetched);
				else if (ret != -EEXIST)
					err = ret;
			}
		}
	}
	/*
	 * Every recorded page is in; what is still missing is a hole, which
	 * the kernel fills with zeros once the regions are unregistered.
	 */
	if (!err)
		uffd_handler_stop(r->h);
	set_done(r, err);
	return NULL;
}

static int start_lazy(struct uffd_restore *r)
{
	UFFD_OPTS(uffd_handler_opts, ho, .threads = 1, .in_thread = r->in_thread);
	uint64_t features = UFFD_F(UFFD_FEAT_POISON);
	int i, ret;

	/* In-thread faults read the image from a signal handler: the index is
	 * believed now, when the lock that takes may be taken. */
	if (r->in_thread) {
		ret = uffd__image_chain_trust(r->chain);
		if (ret)
			return ret;
		features |= UFFD_F(UFFD_FEAT_SIGBUS);
	}
	ret = uffd_open(&r->u, 0, features, UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY);
	if (ret)
		return ret;
	r->h = uffd_handler_new(&r->u, &ho);
	if (!r->h)
		return -errno;
	for (i = 0; i < r->nregions; i++) {
		struct restore_region *rr = &r->regions[i];
		uint64_t npages = rr->ir.len / rr->ir.page_size;

		rr->counted = mm_zalloc((npages + 63) / 64 * sizeof(uint64_t));
		if (!rr->counted)
			return -ENOMEM;
		rr->region = uffd_handler_add(r->h, rr->addr, rr->ir.len, 0, UFFD_REG_MISSING,
					      &restore_ops, rr);
		if (!rr->region)
			return -errno;
	}
	ret = uffd_handler_start(r->h);
	if (ret)
		return ret;
	ret = -pthread_create(&r->prefetcher, NULL, prefetch_main, r);
	if (!ret)
		r->prefetching = true;
	return ret;
}

static void destroy(struct uffd_restore *r, bool unmap)
{
	int i;

	if (r->prefetching)
		pthread_join(r->prefetcher, NULL);
	uffd_handler_free(r->h);
	uffd_close(&r->u);
	for (i = 0; r->regions && i < r->nregions; i++) {
		if (unmap && r->regions[i].addr)
			munmap(r->regions[i].addr, r->regions[i].ir.len);
		mm_free(r->regions[i].counted);
	}
	free(r->regions);
	uffd_image_chain_close(r->chain);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->done_cond);
	free(r);
}

struct uffd_restore *uffd_restore_open(const char *path, unsigned flags)
{
	UFFD_OPTS(uffd_restore_opts, o, .flags = flags);

	return uffd_restore_open_opts(path, &o);
}

struct uffd_restore *uffd_restore_open_opts(const char *path, const struct uffd_restore_opts *o)
{
	struct uffd_restore_opts opts;
	struct uffd_image_info info;
	struct uffd_restore *r;
	unsigned flags;
	int i, ret;

	ret = uffd__load_opts(&opts, o, struct uffd_restore_opts, in_thread, in_thread);
	flags = opts.flags;
	if (ret || !path || (flags & ~(UFFD_RESTORE_LAZY | UFFD_RESTORE_ANYWHERE)) ||
	    (opts.in_thread && !(flags & UFFD_RESTORE_LAZY))) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->flags = flags;
	r->in_thread = opts.in_thread;
	r->u.fd = -1;
	r->t0 = mono_ns();
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->done_cond, NULL);
	r->chain = uffd_image_chain_open(path, NULL);
	if (!r->chain) {
		ret = -errno;
		goto out_err;
	}
	ret = uffd_image_info(uffd_image_chain_get(r->chain, 0), &info);
	if (ret)
		goto out_err;
	r->nregions = info.nregions;
	r->regions = calloc(info.nregions, sizeof(*r->regions));
	if (!r->regions) {
		ret = -ENOMEM;
		goto out_err;
	}
	for (i = 0; i < r->nregions; i++) {
		struct restore_region *rr = &r->regions[i];

		rr->r = r;
		rr->index = i;
		rr->ir = info.regions[i];
		r->st.pages += rr->ir.len / rr->ir.page_size;
		ret = map_region(r, rr);
		if (ret)
			goto out_err;
	}
	if (flags & UFFD_RESTORE_LAZY) {
		ret = start_lazy(r);
		if (ret)
			goto out_err;
		return r;
	}
	for (i = 0; i < r->nregions && !ret; i++)
		ret = fill_eagerly(r, &r->regions[i]);
	if (ret)
		goto out_err;
	set_done(r, 0);
	return r;
out_err:
	destroy(r, true);
	errno = -ret;
	return NULL;
}

void *uffd_restore_addr(const struct uffd_restore *r, int region)
{
	if (!r || region < 0 || region >= r->nregions) {
		errno = EINVAL;
		return NULL;
	}
	return r->regions[region].addr;
}

int uffd_restore_regions(const struct uffd_restore *r)
{
	return r ? r->nregions : -EINVAL;
}

int uffd_restore_wait(struct uffd_restore *r, int timeout_ms)
{
	int ret;

	if (!r)
		return -EINVAL;
	ret = wait_done(&r->lock, &r->done_cond, &r->done, timeout_ms);
	return ret ? ret : __atomic_load_n(&r->error, __ATOMIC_RELAXED);
}

int uffd_restore_stats(struct uffd_restore *r, struct uffd_restore_stats *st)
{
	if (!r || !st)
		return -EINVAL;
	st->pages = r->st.pages;
	st->faulted = __atomic_load_n(&r->st.faulted, __ATOMIC_RELAXED);
	st->prefetched = __atomic_load_n(&r->st.prefetched, __ATOMIC_RELAXED);
	st->zero = __atomic_load_n(&r->st.zero, __ATOMIC_RELAXED);
	st->done = __atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
	st->duration_ns = st->done ? __atomic_load_n(&r->st.duration_ns, __ATOMIC_RELAXED) :
				     mono_ns() - r->t0;
	return 0;
}

void uffd_restore_close(struct uffd_restore *r, bool unmap)
{
	if (r)
		destroy(r, unmap);
}
