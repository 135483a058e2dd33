/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Resolving faults from callbacks: the helpers that know the region, batch
 * wake-ups and apply the runtime's policy for each kernel answer.
 *
 * Inside a batch of several faults every fill is issued with DONTWAKE and
 * the pages it covered are woken once, merged into runs, when the batch is
 * done; a batch of one fault lets the fill wake by itself (one ioctl instead
 * of two).  -EEXIST means the page is already there: success, but the
 * waiters still need a wake.  -ENOENT means the range went away: the fault
 * is dropped and its address woken so the thread re-faults against the new
 * layout.  -ESRCH/-ENOSPC mark the userfaultfd's process as gone.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "copy_ahead.h"
#include "runtime.h"
#include "util/clock.h"

enum fill_kind { FILL_COPY, FILL_COPY_WP, FILL_ZERO, FILL_CONTINUE, FILL_UNPROTECT, FILL_POISON };

/* Zeros to copy from where UFFDIO_ZEROPAGE does not exist (hugetlbfs). */
static const void *zero_source(size_t len)
{
	static void *zeros;
	static size_t zeros_len;
	void *p = __atomic_load_n(&zeros, __ATOMIC_ACQUIRE);

	if (p && __atomic_load_n(&zeros_len, __ATOMIC_RELAXED) >= len)
		return p;
	/* Never written, so it stays the shared zero page: costs no memory. */
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	__atomic_store_n(&zeros_len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&zeros, p, __ATOMIC_RELEASE);	/* old one leaks: rare */
	return p;
}

/* Wake [start, end) now, or with the batch's merged wakes. */
static void wake(struct uffd_region *r, struct batch *b, struct uffd_handler_stats *st,
		 uint64_t start, uint64_t end)
{
	if (b && b->dontwake) {
		batch_add_wake(b, start, end);
		return;
	}
	uffd_wake(r->ctx->u, (void *)(uintptr_t)start, end - start);
	STAT_ADD(st, wakes, 1);
}

static bool is_hugetlb(const struct uffd_region *r)
{
	return r->page_size > uffd_page_size();
}

/*
 * Fill [dst, dst+len) of region r.  b is the batch (NULL outside a
 * callback: wake at once).  Returns 0 or -errno; *covered says whether the
 * page at fault_addr now has its waiters' answer, *in how many bytes from
 * dst are in the map now (filled, or there already: EEXIST), up to the
 * first that is not.
 */
static int fill(struct uffd_region *r, struct batch *b, enum fill_kind kind,
		uint64_t dst, const void *src, size_t len, uint64_t fault_addr,
		bool *covered, size_t *in)
{
	struct uffd *u = r->ctx->u;
	struct uffd_handler_stats *st = b ? b->st : handler_extra_stats(r->ctx);
	uint64_t end = r->start + r->len;
	unsigned flags = b && b->dontwake ? UFFD_DONTWAKE : 0;
	size_t done = 0;
	int ret;

	*covered = false;
	*in = 0;
	if (dst < r->start || dst >= end)
		return -EINVAL;
	if (len > end - dst)
		len = end - dst;
	if (kind == FILL_ZERO && is_hugetlb(r)) {
		src = zero_source(len);
		if (!src)
			return -ENOMEM;
		kind = FILL_COPY;
	}
	switch (kind) {
	case FILL_COPY:
	case FILL_COPY_WP:
		ret = uffd_copy(u, (void *)(uintptr_t)dst, src, len,
				flags | (kind == FILL_COPY_WP ? UFFD_MAP_WP : 0), &done);
		break;
	case FILL_ZERO:
		ret = uffd_zeropage(u, (void *)(uintptr_t)dst, len, flags, &done);
		break;
	case FILL_CONTINUE:
		ret = uffd_continue(u, (void *)(uintptr_t)dst, len, flags, &done);
		break;
	case FILL_POISON:
		ret = uffd_poison(u, (void *)(uintptr_t)dst, len, flags, &done);
		break;
	default:
		ret = uffd_writeprotect(u, (void *)(uintptr_t)dst, len, false, flags);
		done = ret ? 0 : len;
		break;
	}
	if (done && kind != FILL_POISON)
		STAT_ADD(st, pages_resolved, done / r->page_size);
	if (done && b)
		range_set_add(&b->resolved, dst, dst + done);
	/* What the kernel filled it also woke, unless told DONTWAKE. */
	if (done && flags)
		wake(r, b, st, dst, dst + done);
	*covered = fault_addr >= dst && fault_addr < dst + done;
	*in = done;
	switch (ret) {
	case -EEXIST:
		/* Already resolved (by us earlier or someone else): nobody
		 * woke its waiters yet. */
		STAT_ADD(st, eexist, 1);
		if (b)
			range_set_add(&b->resolved, dst + done, dst + done + r->page_size);
		wake(r, b, st, dst + done, dst + done + r->page_size);
		*covered = *covered || fault_addr == dst + done;
		*in = done + r->page_size;
		return 0;
	case -ENOENT:
		/* The range went away: drop the fault, let it re-fault. */
		STAT_ADD(st, enoent, 1);
		wake(r, b, st, fault_addr, fault_addr + r->page_size);
		*covered = true;
		return 0;
	case -ESRCH:
	case -ENOSPC:
		ctx_mark_dead(r->ctx, st);
		*covered = true;
		return ret;
	default:
		return ret;
	}
}

/* The faulting page, for the helpers that fill it (f checked later). */
#define FAULT_PAGE(f) ((f) ? (uintptr_t)(f)->addr : 0)

static int fault_fill_in(struct uffd_fault *f, enum fill_kind kind, uint64_t dst,
			 const void *src, size_t len, size_t *in)
{
	bool covered;
	int ret;

	*in = 0;
	if (!f || !f->region)
		return -EINVAL;
	ret = fill(f->region, f->batch_, kind, dst, src, len, (uintptr_t)f->addr, &covered, in);
	if (covered)
		f->resolved_ = true;
	return ret;
}

static int fault_fill(struct uffd_fault *f, enum fill_kind kind, uint64_t dst,
		      const void *src, size_t len)
{
	size_t in;

	return fault_fill_in(f, kind, dst, src, len, &in);
}

int uffd_fault_copy(struct uffd_fault *f, const void *src, size_t len)
{
	return fault_fill(f, FILL_COPY, FAULT_PAGE(f), src, len);
}

int uffd_fault_copy_at(struct uffd_fault *f, void *dst, const void *src, size_t len)
{
	return fault_fill(f, FILL_COPY, (uintptr_t)dst, src, len);
}

int uffd_fault_copy_wp(struct uffd_fault *f, void *dst, const void *src, size_t len)
{
	return fault_fill(f, FILL_COPY_WP, (uintptr_t)dst, src, len);
}

int uffd__fault_copy_ahead(struct uffd_fault *f, void *dst, const void *src, size_t len,
			   bool wp, size_t *in)
{
	return fault_fill_in(f, wp ? FILL_COPY_WP : FILL_COPY, (uintptr_t)dst, src, len, in);
}

int uffd_fault_zero(struct uffd_fault *f, size_t len)
{
	return fault_fill(f, FILL_ZERO, FAULT_PAGE(f), NULL, len);
}

int uffd_fault_continue(struct uffd_fault *f, size_t len)
{
	return fault_fill(f, FILL_CONTINUE, FAULT_PAGE(f), NULL, len);
}

int uffd_fault_unprotect(struct uffd_fault *f, size_t len)
{
	return fault_fill(f, FILL_UNPROTECT, FAULT_PAGE(f), NULL, len);
}

/*
 * Outside a callback nothing will retry for the caller, so -EAGAIN (events
 * pending) is retried here while the servicing threads read the events;
 * bounded (a second without progress), because with the handler stopped
 * nobody will.
 *
 * The kernel may have filled part of the range before it met the events
 * (UFFDIO_COPY drops its locks to fault in a source page, and finds an
 * event pending on the way back): a retry goes on from past what went in.
 * From the start it would find the first page there, EEXIST, success, and
 * answer 0 for pages never filled.
 */
#define OUTSIDE_RETRY_NS (1000ULL * 1000 * 1000)

static int fill_outside(struct uffd_region *r, enum fill_kind kind, void *dst,
			const void *src, size_t len, size_t *in)
{
	struct handler_ctx *ctx;
	uint64_t deadline = 0, at = (uintptr_t)dst;
	bool covered, inside, synced = false;
	size_t got = 0;
	int ret = -EINVAL;

	*in = 0;
	if (!r)
		return -EINVAL;
	ctx = r->ctx;
	for (;;) {
		pthread_rwlock_rdlock(&ctx->table.lock);
		inside = at >= r->start && at < r->start + r->len;
		if (inside)
			ret = fill(r, NULL, kind, at, src, len, at, &covered, &got);
		pthread_rwlock_unlock(&ctx->table.lock);
		if (!inside) {
			/* Past what went in, the rest left the region (the
			 * events were an UNMAP or a REMAP): gone, as -ENOENT
			 * says, and as for -ENOENT, 0. */
			if (*in)
				return 0;
			/* The caller may have seen an mremap return before the
			 * servicing thread that read its REMAP updated the table:
			 * that thread holds read_lock until it has. */
			if (synced)
				return -EINVAL;
			uffd_handler_sync(ctx->h);
			synced = true;
			continue;
		}
		*in += got;
		if (ret != -EAGAIN)
			return ret;
		if (got) {
			/* src is NULL but for copies (hugetlb's zeros are
			 * substituted in fill(), afresh each time). */
			at += got;
			if (src)
				src = (const char *)src + got;
			len -= got;
			deadline = 0;	/* a second from the last progress */
		}
		if (!deadline)
			deadline = mono_ns() + OUTSIDE_RETRY_NS;
		else if (mono_ns() > deadline)
			return ret;
		sched_yield();
	}
}

int uffd_region_copy(struct uffd_region *r, void *dst, const void *src, size_t len)
{
	size_t in;

	return fill_outside(r, FILL_COPY, dst, src, len, &in);
}

int uffd_region_copy_wp(struct uffd_region *r, void *dst, const void *src, size_t len)
{
	size_t in;

	return fill_outside(r, FILL_COPY_WP, dst, src, len, &in);
}

int uffd__region_copy_ahead(struct uffd_region *r, void *dst, const void *src, size_t len,
			    bool wp, size_t *in)
{
	return fill_outside(r, wp ? FILL_COPY_WP : FILL_COPY, dst, src, len, in);
}

int uffd_region_zero(struct uffd_region *r, void *dst, size_t len)
{
	size_t in;

	return fill_outside(r, FILL_ZERO, dst, NULL, len, &in);
}

bool fault_can_poison(const struct uffd_fault *f)
{
	return f->kind != UFFD_FAULT_WP &&
	       (uffd_region_uffd(f->region)->features & UFFD_F(UFFD_FEAT_POISON));
}

int fault_resolve_default(struct uffd_fault *f, bool failed)
{
	uint64_t page_addr = (uintptr_t)f->addr;
	size_t page = f->region->page_size;
	int ret;

	if (failed && fault_can_poison(f))
		return fault_fill(f, FILL_POISON, page_addr, NULL, page);
	switch (f->kind) {
	case UFFD_FAULT_MISSING:
		ret = fault_fill(f, FILL_ZERO, page_addr, NULL, page);
		break;
	case UFFD_FAULT_WP:
		ret = fault_fill(f, FILL_UNPROTECT, page_addr, NULL, page);
		break;
	default:
		ret = fault_fill(f, FILL_CONTINUE, page_addr, NULL, page);
		break;
	}
	/* The default failed too (CONTINUE of a page not in the page cache):
	 * SIGBUS rather than a thread blocked until the region goes. */
	if (ret && ret != -EAGAIN && !f->resolved_ && fault_can_poison(f))
		ret = fault_fill(f, FILL_POISON, page_addr, NULL, page);
	return ret;
}
