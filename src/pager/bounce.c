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
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "pager_internal.h"
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
	buf = fa_mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
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

/* Where to read pages [idx, idx+n) of m (BUSY, the caller's): the bounce
 * buffer, or their shadow (then map_read frees it).  Without the lock. */
char *uffd__read_buffer(struct uffd_pager *p, struct pmap *m, size_t idx, size_t n)
{
	char *buf = uffd__bounce_get(p, n * m->psize);

	if (buf)
		return buf;
	uffd__shadow_ready(p);
	return shadow_addr(m, idx);
}
