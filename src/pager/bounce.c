/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bounce buffers: a read from the store lands in one before it is copied
 * into the map (UFFDIO_COPY needs a source), and a write-back copies the
 * pages out into one before they are written.  Each thread keeps its own,
 * grown to the largest request it has seen and kept populated, so the
 * fault path neither allocates nor takes a lock for it.
 *
 * Growing one can fail.  A fill or a write-back then goes through its
 * pages' own shadow instead: a BUSY page's shadow is its worker's (an
 * EMPTY or ACTIVE page keeps nothing there) once the zaps still pending
 * from reactivations are done, and it is zapped again before the page
 * leaves BUSY.  So no fault fails, and no write-back, for want of a
 * buffer.
 *
 * In-thread mode reads a fault's pages in the faulting thread's SIGBUS
 * handler, where nothing may be allocated - neither the buffer nor the
 * thread's key value (pthread_setspecific may allocate).  So the pager
 * maps SIGNAL_BOUNCES buffers of the largest window when it is made
 * (their pages populated as they are used, and kept), a fault takes a
 * free one with one atomic bit and gives it back once its pages are
 * mapped, and a fault that finds them all taken reads through the
 * shadow.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#include "pager_internal.h"
#include "runtime/inthread.h"
#include "util/failalloc.h"

/* A per-thread buffer for reads, big enough for the largest window. */
struct bounce {
	void *buf;
	size_t len;
};

void uffd__bounce_free(void *arg)
{
	struct bounce *b = arg;

	if (b->buf)
		munmap(b->buf, b->len);
	free(b);
}

#define HUGE_SZ		(2UL << 20)

/* A buffer of len bytes: one of 1 MiB or more (read-ahead windows) is
 * made of transparent huge pages where the system allows, rounded up to
 * whole ones - O_DIRECT reads of 1-8 MiB, 4-8 in flight, moved 2.7-3.2
 * GB/s into them here against 1.2-2.4 GB/s into 4 KiB pages (fewer pages
 * to pin, fewer segments a request). */
static size_t bounce_len(size_t len)
{
	return len >= HUGE_SZ / 2 ? (len + HUGE_SZ - 1) & ~(HUGE_SZ - 1) : len;
}

static void *bounce_map(size_t len)
{
	size_t over = len >= HUGE_SZ ? HUGE_SZ : 0;
	char *raw, *buf;

	raw = fa_mmap(NULL, len + over, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | (over ? 0 : MAP_POPULATE), -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	if (!over)
		return raw;
	buf = (char *)(((uintptr_t)raw + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
	if (buf > raw)
		munmap(raw, buf - raw);
	if (buf + len < raw + len + over)
		munmap(buf + len, raw + len + over - (buf + len));
	madvise(buf, len, MADV_HUGEPAGE);
	madvise(buf, len, MADV_POPULATE_WRITE);	/* (else: populated by use) */
	return buf;
}

/* The thread's buffer of at least len bytes, or NULL (ENOMEM; a smaller
 * one it had stays). */
void *uffd__bounce_get(struct uffd_pager *p, size_t len)
{
	struct bounce *b = pthread_getspecific(p->bounce_key);
	void *buf;

	if (b && b->len >= len)
		return b->buf;
	if (!b) {
		b = fa_calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		/* (Setting a key's value may allocate, too.) */
		if (uffd__alloc_fails() || pthread_setspecific(p->bounce_key, b)) {
			free(b);
			return NULL;
		}
	}
	len = bounce_len(len);
	buf = bounce_map(len);
	if (!buf)
		return NULL;
	if (b->buf)
		munmap(b->buf, b->len);
	b->buf = buf;
	b->len = len;
	return buf;
}

/* The shadows of BUSY pages may be used as buffers from now on: no zap of
 * them is pending.  Without the lock. */
void uffd__shadow_ready(struct uffd_pager *p)
{
	pthread_mutex_lock(&p->lock);
	uffd__zap_flush(p, &p->shadow_zap);
	pthread_mutex_unlock(&p->lock);
}

/* In-thread mode's buffers, each of a fault's largest window in the
 * pager's pages (a map of larger pages than the pager's, past that, reads
 * through its shadow).  0 or -ENOMEM. */
int uffd__signal_bounces_new(struct uffd_pager *p)
{
	size_t ps = p->o.page_size, len = (uffd__ra_bytes(p) + ps - 1) / ps * ps;
	char *buf;

	if (!len)
		len = ps;
	buf = fa_mmap(NULL, len * SIGNAL_BOUNCES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf == MAP_FAILED)
		return -ENOMEM;
	p->sig_bounce = buf;
	p->sig_bounce_len = len;
	return 0;
}

void uffd__signal_bounces_free(struct uffd_pager *p)
{
	if (p->sig_bounce)
		munmap(p->sig_bounce, p->sig_bounce_len * SIGNAL_BOUNCES);
	p->sig_bounce = NULL;
}

/* A free in-thread buffer of at least len bytes, its number in *slot; or
 * NULL.  Async-signal-safe. */
static char *signal_bounce_get(struct uffd_pager *p, size_t len, int *slot)
{
	uint32_t busy = __atomic_load_n(&p->sig_bounce_busy, __ATOMIC_RELAXED);
	int i;

	if (!p->sig_bounce || len > p->sig_bounce_len)
		return NULL;
	do {
		if (busy == UINT32_MAX)
			return NULL;
		i = __builtin_ctz(~busy);
	} while (!__atomic_compare_exchange_n(&p->sig_bounce_busy, &busy, busy | 1u << i,
					      true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	*slot = i;
	return p->sig_bounce + (size_t)i * p->sig_bounce_len;
}

/*
 * Where to read pages [idx, idx+n) of m (BUSY, the caller's): the bounce
 * buffer - in a SIGBUS handler an in-thread one, numbered in *slot (else
 * -1) and given back with read_buffer_put - or their shadow (then
 * map_read frees it).  Without the lock.
 */
char *uffd__read_buffer(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n,
			int *slot)
{
	char *buf;

	*slot = -1;
	if (uffd__in_fault_handler())
		buf = signal_bounce_get(p, n * m->psize, slot);
	else
		buf = uffd__bounce_get(p, n * m->psize);
	if (buf)
		return buf;
	uffd__shadow_ready(p);
	return shadow_addr(m, idx);
}

void uffd__read_buffer_put(struct uffd_pager *p, int slot)
{
	if (slot >= 0)
		__atomic_fetch_and(&p->sig_bounce_busy, ~(1u << slot), __ATOMIC_RELEASE);
}
