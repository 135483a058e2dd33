/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The shared page cache (see cache.h): a sealed memfd mapped once in the
 * server, and bitmaps of the pages the server has put there and of the
 * working-set pieces read into it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache.h"

#define PAGE 4096ull

#ifndef F_ADD_SEALS
#define F_ADD_SEALS		1033
#define F_SEAL_SHRINK		0x0002
#define F_SEAL_GROW		0x0004
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE	0x0010	/* Linux 5.1 */
#endif

struct serve_cache *serve_cache_new(uint64_t size, uint64_t npieces)
{
	struct serve_cache *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return NULL;
	c->fd = -1;
	c->map = MAP_FAILED;
	c->size = size;
	c->fd = memfd_create("uffd-serve-cache", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (c->fd < 0 || ftruncate(c->fd, size)) {
		ret = -errno;
		goto fail;
	}
	c->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, c->fd, 0);
	if (c->map == MAP_FAILED) {
		ret = -errno;
		goto fail;
	}
	/* Our mapping stays writable; nobody gets a new way to write. */
	if (fcntl(c->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE)) {
		ret = -errno;
		goto fail;
	}
	ret = bitmap_resize(&c->in, size / PAGE);
	if (!ret && npieces)
		ret = bitmap_resize(&c->claimed, npieces) ?: bitmap_resize(&c->loaded, npieces);
	if (ret)
		goto fail;
	return c;
fail:
	serve_cache_free(c);
	errno = -ret;
	return NULL;
}

void serve_cache_free(struct serve_cache *c)
{
	if (!c)
		return;
	if (c->map != MAP_FAILED)
		munmap(c->map, c->size);
	if (c->fd >= 0)
		close(c->fd);
	bitmap_free(&c->in);
	bitmap_free(&c->claimed);
	bitmap_free(&c->loaded);
	free(c);
}

int serve_cache_ro_fd(const struct serve_cache *c)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", c->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void serve_cache_put(struct serve_cache *c, uint64_t page, const void *data)
{
	uint64_t bit = 1ULL << (page % 64);

	memcpy(c->map + page * PAGE, data, PAGE);
	if (!(__atomic_fetch_or(&c->in.words[page / 64], bit, __ATOMIC_RELEASE) & bit))
		__atomic_fetch_add(&c->pages_in, 1, __ATOMIC_RELAXED);
}

bool serve_cache_claim(struct serve_cache *c, uint64_t j)
{
	uint64_t bit = 1ULL << (j % 64);

	return !(__atomic_fetch_or(&c->claimed.words[j / 64], bit, __ATOMIC_ACQ_REL) & bit);
}

void serve_cache_loaded(struct serve_cache *c, uint64_t j)
{
	__atomic_fetch_or(&c->loaded.words[j / 64], 1ULL << (j % 64), __ATOMIC_RELEASE);
}
