/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bounce buffers: a read from the store lands in one before it is copied
 * into the map (UFFDIO_COPY needs a source), and a write-back copies the
 * pages out into one before they are written.  Each thread keeps its own,
 * grown to the largest request it has seen and kept populated, so the
 * fault path neither allocates nor takes a lock for it.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "pager_internal.h"

/* A per-thread buffer for reads, big enough for the largest window. */
struct bounce {
	void *buf;
	size_t len;
};

void uffd__bounce_free(void *arg)
{
	struct bounce *b = arg;

	munmap(b->buf, b->len);
	free(b);
}

void *uffd__bounce_get(struct uffd_pager *p, size_t len)
{
	struct bounce *b = pthread_getspecific(p->bounce_key);

	if (b && b->len >= len)
		return b->buf;
	if (b) {
		munmap(b->buf, b->len);
	} else {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		pthread_setspecific(p->bounce_key, b);
	}
	b->len = len;
	b->buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (b->buf == MAP_FAILED) {
		b->buf = NULL;
		b->len = 0;
	}
	return b->buf;
}
