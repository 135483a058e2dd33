/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pages the program takes away itself.  A map is the program's memory: it
 * may zap pages of it (MADV_DONTNEED, MADV_FREE that reclaim acts on, an
 * mremap(MREMAP_DONTUNMAP) moving them out) or unmap part of it, and the
 * pager, which asks for none of the kernel's REMOVE/UNMAP/REMAP events (each
 * would stop its own zaps until a servicing thread read it), is not told.
 * So a page it holds ACTIVE - mapped, by its accounts - may be a hole, and
 * that is found out where it matters, with the kernel's view rather than
 * by touching the page:
 *
 *  - A MISSING fault on an ACTIVE page is a stale one (the fill that came
 *    since woke its thread) unless the page is not there: pagemap tells,
 *    and a page that is not there is forgotten and read again from the
 *    store (page_gone).
 *  - Copying a mapped page out (deactivation, write-back) reads it through
 *    /proc/self/mem, where a page that is not there is an error, never a
 *    fault: a copy by touch would fault on the hole and wait for a fill
 *    that waits for the copy (copy_out).  Such a page is forgotten too.
 *  - Before the pager copies or zaps mapped pages it write-protects them,
 *    which fails (ENOENT) where the range is not registered any more: the
 *    program unmapped it, and whatever was mapped there since - by the
 *    program, or the pager's own buffers - is not the map's, to be left
 *    alone (protect_ours).  Its pages are forgotten without a copy or a
 *    zap, and the map's unmap unmaps only what is still the map's
 *    (unmap_ours).  (Memory mapped there between that question and the
 *    zap would be zapped: a program that unmaps and maps again while the
 *    pager works on those very pages races with it.)
 *
 * Forgetting a page drops what the program had written to it since its
 * last write-back: it went with the page, as it does for anonymous memory.
 * A page of which any part is gone is forgotten whole (the rest zapped
 * too), so a page is never part store, part program.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "pager_internal.h"
#include "util/pagecopy.h"

#define PM_CHUNK	64		/* entries read at once (on the stack of
					   an in-thread fault) */

/* The files this needs, opened once (-1 when /proc can not be read: then
 * a page gone is seen with mincore, and pages are copied by touch once
 * they are seen there - a zap racing with the copy would hang it). */
void uffd__zapped_open(struct uffd_pager *p)
{
	p->mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	p->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

void uffd__zapped_close(struct uffd_pager *p)
{
	if (p->mem_fd >= 0)
		close(p->mem_fd);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	p->mem_fd = p->pagemap_fd = -1;
}

/* Without pagemap: mincore, which can not tell a swapped-out page from a
 * hole (then the page is read again from the store). */
static bool gone_mincore(const struct pmap *m, size_t idx)
{
	size_t base = uffd_page_size(), n = m->psize / base, i, j, k;
	unsigned char vec[PM_CHUNK];

	for (i = 0; i < n; i += k) {
		k = n - i < PM_CHUNK ? n - i : PM_CHUNK;
		if (mincore(page_addr(m, idx) + i * base, k * base, vec))
			return errno == ENOMEM;		/* unmapped */
		for (j = 0; j < k; j++)
			if (!(vec[j] & 1))
				return true;
	}
	return false;
}

/*
 * Is any part of page idx of m missing from the map (the program zapped or
 * unmapped it)?  Async-signal-safe; lock held or not.
 */
bool uffd__page_gone(struct uffd_pager *p, const struct pmap *m, size_t idx)
{
	size_t base = uffd_page_size(), n = m->psize / base, i, j, k;
	uint64_t e[PM_CHUNK];

	if (p->pagemap_fd < 0)
		return gone_mincore(m, idx);
	for (i = 0; i < n; i += k) {
		uintptr_t a = (uintptr_t)page_addr(m, idx) + i * base;

		k = n - i < PM_CHUNK ? n - i : PM_CHUNK;
		if (pread(p->pagemap_fd, e, k * sizeof(*e), (off_t)(a / base * sizeof(*e))) !=
		    (ssize_t)(k * sizeof(*e)))
			return false;	/* can not tell: taken for a stale fault */
		for (j = 0; j < k; j++)
			if (!(e[j] & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)))
				return true;
	}
	return false;
}

/*
 * Write-protect pages [idx, idx+n) of m (n <= 64; a map that is not
 * writable has its protection taken off, which it never has): the ioctl
 * the pager needs before it copies or zaps mapped pages, and its answer
 * also says whether they are still the map's.  It fails with ENOENT on a
 * range the pager did not register - unmapped, or mapped again since by
 * someone else, the program or the pager's own buffers - and then each
 * page is asked alone; those that are not the map's any more get their
 * bit (k for idx+k) in *not_ours, to be forgotten without a copy or a zap.
 * (A page unmapped among registered ones passes, and the copy finds it
 * gone.)  0 or the ioctl's other error.  Without the lock.
 */
int uffd__protect_ours(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
		       uint64_t *not_ours)
{
	int ret = uffd_writeprotect(&p->u, page_addr(m, idx), n * m->psize, m->writable, 0);
	size_t k;

	*not_ours = 0;
	if (ret != -ENOENT)
		return ret;
	for (k = 0; k < n; k++)
		if (n == 1 || !uffd__range_ours(p, m, idx + k, 1))
			*not_ours |= 1ULL << k;
	return 0;
}

/* Are pages [idx, idx+n) of m still the map's - all those that are
 * mapped at all?  Protected if so, as above. */
bool uffd__range_ours(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n)
{
	return uffd_writeprotect(&p->u, page_addr(m, idx), n * m->psize, m->writable, 0) !=
	       -ENOENT;
}

/*
 * The end of a map that is not all its own (range_ours says no of the
 * whole): the program unmapped part of it, and something may have been
 * mapped in the hole since.  Unmap what is still the map's, run by run,
 * and leave the rest.  Asked while the map is registered: 64 pages at a
 * time, and page by page where such a run is not all the map's.
 */
void uffd__unmap_ours(struct uffd_pager *p, struct pmap *m)
{
	size_t start = 0, idx, k, chunk;
	bool in_run = false;

	for (idx = 0; idx < m->npages; idx += chunk) {
		bool all;

		chunk = m->npages - idx < 64 ? m->npages - idx : 64;
		all = uffd__range_ours(p, m, idx, chunk);
		for (k = idx; k < idx + chunk; k++) {
			bool ours = all || (chunk > 1 && uffd__range_ours(p, m, k, 1));

			if (ours && !in_run) {
				start = k;
				in_run = true;
			} else if (!ours && in_run) {
				munmap(page_addr(m, start), (k - start) * m->psize);
				in_run = false;
			}
		}
	}
	if (in_run)
		munmap(page_addr(m, start), (m->npages - start) * m->psize);
}

/*
 * Copy pages [idx, idx+n) of m's map (n <= 64) to dst as the kernel has
 * them, without touching them, but those in skip (bit k for idx+k); the
 * answer is skip with the pages that are not all there added, and what
 * dst holds for those is garbage.  The caller keeps the pages BUSY and
 * write-protected (protect_ours).  Without the lock.
 */
uint64_t uffd__copy_out(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			char *dst, uint64_t skip)
{
	size_t ps = m->psize, k, end;
	const char *src = page_addr(m, idx);
	uint64_t gone = skip;

	for (k = 0; k < n; k = end) {
		size_t done, len;

		if (skip >> k & 1) {
			end = k + 1;
			continue;
		}
		for (end = k + 1; end < n && !(skip >> end & 1); end++)
			;
		if (p->mem_fd < 0) {
			/* By touch: a page zapped from here on would hang
			 * the copy. */
			for (; k < end; k++)
				if (uffd__page_gone(p, m, idx + k))
					gone |= 1ULL << k;
				else
					copy_protected_page(dst + k * ps, src + k * ps, ps);
			continue;
		}
		for (done = k * ps, len = end * ps; done < len;) {
			ssize_t r = pread(p->mem_fd, dst + done, len - done,
					  (off_t)(uintptr_t)(src + done));

			if (r > 0) {
				done += r;
			} else if (r < 0 && errno == EINTR) {
				continue;
			} else {
				/* The base page at done is not there: its
				 * page is gone, the copy goes on at the next. */
				gone |= 1ULL << (done / ps);
				done = (done / ps + 1) * ps;
			}
		}
	}
	return gone;
}

/*
 * Page idx of m, ACTIVE by the accounts, is gone from the map: forget it,
 * EMPTY, to be read again - and if the map still holds part of it (ours:
 * not unmapped), zap that part.  Lock held.
 */
void uffd__forget_gone(struct uffd_pager *p, struct pmap *m, size_t idx, bool ours)
{
	if (ours && m->psize > uffd_page_size())
		madvise(page_addr(m, idx), m->psize, MADV_DONTNEED);
	/* No fill woke a thread that faulted on it since: dropped_seq
	 * stays, so such a fault is served, not taken for a stale one. */
	uffd__page_evicted(p, m, idx, P_ACTIVE, m->dropped_seq[idx]);
}
