/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fills: pages claimed BUSY are read from the store into a bounce buffer
 * and copied into the map with one UFFDIO_COPY, which also wakes whoever
 * faulted on them.  A writable map's pages go in write-protected, so the
 * first write faults once and marks the page dirty - except the page of a
 * write fault, which is dirty from the start (one fault, not two).
 *
 * The end of the store is where mmap puts it: a read that ends inside a
 * page is zero-filled to the page's end, a page wholly past the end can not
 * be filled (SIGBUS for the thread that wanted it).  The end is the store's
 * size when the map was made (clipped_len), which is where write-back
 * stops too.
 *
 * A page is ACTIVE only once the kernel took it.  It copies into one
 * mapping at a time, and refuses a run that crosses into another one -
 * the map split by an mprotect, or a hole the program unmapped in it
 * (zapped.c) - whole, with ENOENT.  Then each page of the run is copied
 * alone: those still the map's go in, the others are left EMPTY.
 */
#include <errno.h>
#include <sys/mman.h>

#include "pager_internal.h"
#include "runtime/copy_ahead.h"

#define ALONE_CHUNK	64		/* pages copied alone, then settled at
					   once (the bits of a mask) */

/*
 * A read of want bytes into buf got this far: the bytes that hold data
 * (the rest of the last page zero-filled, as mmap does at the end of a
 * file), or -errno; 0 means the first page is wholly past the end.
 */
ssize_t uffd__read_done(struct pmap *m, char *buf, size_t want, ssize_t got)
{
	if (got < 0)
		return got;
	if ((size_t)got < want) {
		size_t whole = (got + m->psize - 1) / m->psize * m->psize;

		memset(buf + got, 0, whole - got);
		got = whole;
	}
	STAT_ADD(&m->p->st, bytes_read, got);
	STAT_ADD(&m->p->st, fills, got / m->psize);
	return got;
}

/* Read n pages from idx into buf, up to the store's end at map time:
 * read_done's answer. */
ssize_t uffd__store_read(struct pmap *m, size_t idx, size_t n, char *buf)
{
	size_t len = clipped_len(m, idx, n), got = 0;

	while (got < len) {
		ssize_t r = m->store->ops->read(m->store->data, buf + got, len - got,
						store_off(m, idx) + got);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		got += r;
	}
	return uffd__read_done(m, buf, n * m->psize, got);
}

/* What a read of pages [idx, idx+n) mapped: how they are marked. */
struct read_marks {
	size_t fault_idx;	/* the faulting page, or SIZE_MAX */
	bool write_fault;	/* it is dirty */
	bool read_ahead;	/* the pages are a stream's... */
	bool window;		/* ... the faulting one too (more than one read) */
};

/* Page i is mapped (BUSY -> ACTIVE).  Lock held. */
static void publish_page(struct uffd_pager *p, struct pmap *m, size_t i,
			 const struct read_marks *rm)
{
	uffd__page_filled(p, m, i, rm->read_ahead && (i != rm->fault_idx || rm->window));
	if (rm->write_fault && i == rm->fault_idx)
		uffd__page_set_dirty(p, m, i);
}

/*
 * Copy n pages at idx, write-protected or not, for fault f (NULL: outside
 * a fault: read-ahead, prefetch).  0 or -errno; *in: the pages from idx in
 * the map now, up to the first that is not (see the top of this file).
 * Part of a page is none of it: what went in of it is zapped again, so a
 * page is never part store, part hole (zapped.c).
 */
static int copy_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		   const char *src, bool wp, size_t *in)
{
	char *dst = page_addr(m, idx);
	size_t len = n * m->psize, bytes;
	int ret;

	*in = 0;
	if (!n)
		return 0;
	if (f)
		ret = uffd__fault_copy_ahead(f, dst, src, len, wp, &bytes);
	else
		ret = uffd__region_copy_ahead(m->region, dst, src, len, wp, &bytes);
	*in = bytes / m->psize;
	if (bytes % m->psize)
		madvise(dst + *in * m->psize, bytes % m->psize, MADV_DONTNEED);
	return ret;
}

/*
 * Copy n pages into the map at idx: write-protected where the map is
 * writable, except the faulting page when the fault is a write (it is
 * dirty from the start: one fault, not two).  0 or -errno; *in as for
 * copy_in.
 */
int uffd__map_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		 const char *src, size_t fault_idx, bool write_fault, size_t *in)
{
	size_t ps = m->psize, before, k;
	int ret;

	if (!m->writable || !write_fault || fault_idx < idx || fault_idx >= idx + n)
		return copy_in(m, f, idx, n, src, m->writable, in);
	/* Protected before it, the written page not, protected after it. */
	before = fault_idx - idx;
	ret = copy_in(m, f, idx, before, src, true, in);
	if (ret || *in < before)
		return ret;
	ret = copy_in(m, f, fault_idx, 1, src + before * ps, false, &k);
	*in += k;
	if (ret || !k)
		return ret;
	ret = copy_in(m, f, fault_idx + 1, n - before - 1, src + (before + 1) * ps, true, &k);
	*in += k;
	return ret;
}

/*
 * Pages [at, at+n) of a read into src (BUSY; n <= ALONE_CHUNK), which the
 * kernel did not take as a run, copied alone and settled: ACTIVE those
 * that went in, EMPTY the others - not the map's any more, or not tried
 * after an error (returned).  shadow: src is their shadow, freed before
 * the lock as map_read frees it.  Without the lock.
 */
static int map_alone(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f, size_t at,
		     size_t n, const char *src, bool shadow, const struct read_marks *rm)
{
	uint64_t mapped = 0;
	size_t j, in;
	int ret = 0;

	for (j = 0; j < n && !ret; j++) {
		ret = uffd__map_in(m, f, at + j, 1, src + j * m->psize, rm->fault_idx,
				   rm->write_fault, &in);
		if (in)
			mapped |= 1ULL << j;
	}
	if (shadow)
		madvise(shadow_addr(m, at), n * m->psize, MADV_DONTNEED);
	pthread_mutex_lock(&p->lock);
	for (j = 0; j < n; j++)
		if (mapped >> j & 1)
			publish_page(p, m, at + j, rm);
		else
			uffd__unclaim(p, m, at + j, 1, P_EMPTY);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

/*
 * Map pages [idx, idx+n) (claimed BUSY) that a read of the store brought
 * into buf (got: read_done's answer).  f is the fault being served (NULL:
 * prefetch or read-ahead).  Returns 0 or -errno (then the pages are BAD or
 * back to EMPTY).
 */
int uffd__map_read(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		   size_t idx, size_t n, const char *buf, ssize_t got,
		   size_t fault_idx, bool write_fault, bool read_ahead)
{
	size_t ps = m->psize, full = got > 0 ? (size_t)got / ps : 0, in = 0, at, k, i;
	const struct read_marks rm = { fault_idx, write_fault, read_ahead, full > 1 };
	bool shadow = buf == shadow_addr(m, idx);
	int ret = 0;

	if (full)
		ret = uffd__map_in(m, f, idx, full, buf, fault_idx, write_fault, &in);
	/* Short of the run without an error: each page alone, settled as
	 * they go. */
	for (at = idx + in; !ret && at < idx + full; at += k) {
		k = idx + full - at < ALONE_CHUNK ? idx + full - at : ALONE_CHUNK;
		ret = map_alone(p, m, f, at, k, buf + (at - idx) * ps, shadow, &rm);
	}
	/* Read through the shadow (no bounce buffer): free it while the
	 * pages are still BUSY, before one can be deactivated into it (those
	 * settled alone had theirs freed). */
	if (shadow && in)
		madvise(shadow_addr(m, idx), in * ps, MADV_DONTNEED);
	if (shadow && at < idx + n)
		madvise(shadow_addr(m, at), (idx + n - at) * ps, MADV_DONTNEED);
	pthread_mutex_lock(&p->lock);
	for (i = idx; i < idx + in; i++)
		publish_page(p, m, i, &rm);
	pthread_cond_broadcast(&p->changed);
	if (ret) {
		/* Not mapped: the fault (if any) is tried again. */
		uffd__unclaim(p, m, at, idx + n - at, P_EMPTY);
		pthread_mutex_unlock(&p->lock);
		return ret;
	}
	if (full < n) {
		/* Past the end of the store, or a read error: the faulting
		 * page is poisoned by the caller (and stays so), the others
		 * are tried again when touched. */
		uffd__unclaim(p, m, idx + full, n - full, P_EMPTY);
		if (got < 0 && fault_idx >= idx && fault_idx < idx + n)
			m->state[fault_idx] = P_BAD;
	}
	pthread_mutex_unlock(&p->lock);
	if (got < 0) {
		uffd__report_error(m, idx, n, (int)got, false);
		return (int)got;
	}
	return full ? 0 : -EFAULT;
}

/*
 * Read pages [idx, idx+n) (claimed BUSY) from the store and map them.
 * f is the fault being served (NULL: prefetch or read-ahead).  Returns 0 or
 * -errno (then the pages are BAD or back to EMPTY).
 */
int uffd__fill_claimed(struct uffd_pager *p, struct pmap *m, struct uffd_fault *f,
		       size_t idx, size_t n, size_t fault_idx, bool write_fault)
{
	int slot, ret;
	char *buf = uffd__read_buffer(p, m, idx, n, &slot);

	/* Around a fault it is read-ahead; a prefetch was asked for. */
	ret = uffd__map_read(p, m, f, idx, n, buf, uffd__store_read(m, idx, n, buf),
			     fault_idx, write_fault, f != NULL);
	uffd__read_buffer_put(p, slot);
	return ret;
}
