/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shared page cache of a page server (uffd_serve_opts.shared_cache):
 * the source's pages in one memfd, put there once for every client, whose
 * regions are MAP_PRIVATE mappings of it registered for MISSING and MINOR
 * faults.  A page arrives in a client by UFFDIO_CONTINUE - its page-table
 * entry points at the cache's page, nothing is copied - and a write copies
 * it privately (the kernel maps a page of a private mapping's cache
 * read-only).  Eight clients cost eight page-table fills, not eight
 * copies, and the source (or the working set) is read once, not eight
 * times.
 *
 * What keeps clients apart:
 *  - nobody but this server can change the cache: clients get a read-only
 *    fd, and the memfd is sealed (F_SEAL_FUTURE_WRITE, after the server's
 *    own shared mapping was made; SHRINK and GROW) so that a client that
 *    reopens its fd read-write through /proc (which the kernel allows for
 *    a memfd) can still neither write it, map it shared-writable, punch a
 *    hole in it nor truncate it;
 *  - a page is CONTINUEd only once this server put it in the cache (the
 *    `in` bit, set after the copy): any process reading a private mapping
 *    of a hole makes the kernel fill that hole with a zero page, so a page
 *    the kernel holds is not thereby the source's.  A MINOR fault on a
 *    page without its bit is served as a missing one: read, put (over
 *    whatever the kernel holds), then CONTINUEd.  Two puts of one page
 *    write the same bytes, so they may race.
 *
 * The working set is read into the cache once, in pieces: the first
 * engine to want a piece claims it and reads it, the others wait for it
 * (in their background work only: a fault never waits for another
 * client - it reads its page itself).
 */
#ifndef LIBUFFD_SERVE_CACHE_H
#define LIBUFFD_SERVE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/bitmap.h"

struct serve_cache {
	int fd;			/* the memfd, read-write */
	uint8_t *map;		/* MAP_SHARED of all of it */
	uint64_t size;		/* bytes, the source's */
	struct bitmap in;	/* per page: put here by this server */
	struct bitmap claimed;	/* per working-set piece: being read */
	struct bitmap loaded;	/* ... read (or failed to: left to demand) */
	uint64_t pages_in;	/* atomic: bits of `in` set */
};

/* A cache for a source of size bytes and a working set of npieces pieces
 * (nothing is allocated until pages are put).  NULL with errno. */
struct serve_cache *serve_cache_new(uint64_t size, uint64_t npieces);
void serve_cache_free(struct serve_cache *c);

/* A read-only fd of the cache for a client (close-on-exec): -errno. */
int serve_cache_ro_fd(const struct serve_cache *c);

static inline bool serve_cache_has(const struct serve_cache *c, uint64_t page)
{
	return __atomic_load_n(&c->in.words[page / 64], __ATOMIC_ACQUIRE) & (1ULL << (page % 64));
}

/* Put the page of data at page number page (its bit set after the copy). */
void serve_cache_put(struct serve_cache *c, uint64_t page, const void *data);

/* Working-set pieces: claim piece j (true: the caller reads it and then
 * marks it loaded), and whether it is loaded. */
bool serve_cache_claim(struct serve_cache *c, uint64_t j);
void serve_cache_loaded(struct serve_cache *c, uint64_t j);
static inline bool serve_cache_is_loaded(const struct serve_cache *c, uint64_t j)
{
	return __atomic_load_n(&c->loaded.words[j / 64], __ATOMIC_ACQUIRE) & (1ULL << (j % 64));
}

#endif
