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
 */
#include <errno.h>
#include <sys/mman.h>

#include "pager_internal.h"

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

/* Pages [idx, idx+n) are mapped; the faulting one is dirty if written. */
static void publish(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		    size_t fault_idx, bool write_fault, bool read_ahead)
{
	size_t i;

	/* In a window (n > 1) the faulting page is part of the stream too. */
	for (i = idx; i < idx + n; i++)
		uffd__page_filled(p, m, i, read_ahead && (i != fault_idx || n > 1));
	if (write_fault && fault_idx >= idx && fault_idx < idx + n)
		uffd__page_set_dirty(p, m, fault_idx);
	pthread_cond_broadcast(&p->changed);
}

/* Copy n pages at idx, write-protected or not, for fault f (NULL: outside
 * a fault: read-ahead, prefetch).  Nothing to copy: 0. */
static int copy_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		   const char *src, bool wp)
{
	char *dst = page_addr(m, idx);
	size_t len = n * m->psize;

	if (!n)
		return 0;
	if (f)
		return wp ? uffd_fault_copy_wp(f, dst, src, len)
			  : uffd_fault_copy_at(f, dst, src, len);
	return wp ? uffd_region_copy_wp(m->region, dst, src, len)
		  : uffd_region_copy(m->region, dst, src, len);
}

/*
 * Copy n pages into the map at idx: write-protected where the map is
 * writable, except the faulting page when the fault is a write (it is
 * dirty from the start: one fault, not two).
 */
int uffd__map_in(struct pmap *m, struct uffd_fault *f, size_t idx, size_t n,
		 const char *src, size_t fault_idx, bool write_fault)
{
	size_t ps = m->psize, before;
	int ret;

	if (!m->writable || !write_fault || fault_idx < idx || fault_idx >= idx + n)
		return copy_in(m, f, idx, n, src, m->writable);
	/* Protected before it, the written page not, protected after it. */
	before = fault_idx - idx;
	ret = copy_in(m, f, idx, before, src, true);
	if (!ret)
		ret = copy_in(m, f, fault_idx, 1, src + before * ps, false);
	if (!ret)
		ret = copy_in(m, f, fault_idx + 1, n - before - 1,
			      src + (before + 1) * ps, true);
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
	size_t full = got > 0 ? (size_t)got / m->psize : 0;
	int ret;

	ret = full ? uffd__map_in(m, f, idx, full, buf, fault_idx, write_fault) : 0;
	/* Read through the shadow (no bounce buffer): free it while the
	 * pages are still BUSY, before one can be deactivated into it. */
	if (buf == shadow_addr(m, idx))
		madvise(shadow_addr(m, idx), n * m->psize, MADV_DONTNEED);
	pthread_mutex_lock(&p->lock);
	if (ret && ret != -EEXIST) {
		uffd__unclaim(p, m, idx, n, P_EMPTY);
		pthread_mutex_unlock(&p->lock);
		return ret;
	}
	if (full)
		publish(p, m, idx, full, fault_idx, write_fault, read_ahead);
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
