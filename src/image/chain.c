/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Chains of images: a delta, its parent, its parent's parent... down to a
 * base.  A page's contents at the newest instant are those recorded by the
 * newest image that has the page at all, data or zero; if none has it, the
 * page was a hole in the base and is zero.  Opening checks every link: the
 * parent, found by the name the child records, in the child's directory,
 * must carry the id the child records and the same region table, so a
 * chain never silently mixes images of different runs.
 *
 * What a chain serves depends on every image's chunk headers, not only on
 * the chunks it reads: a header damaged to claim another page hides the
 * page it really holds, which then comes from an older image, or as a
 * hole.  So nothing is served before every header is trusted - checked at
 * open against the trailer's CRC of headers (version 2), or by reading the
 * whole file once, at the first read, for a version 1 image.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "format.h"
#include "internal.h"

struct uffd_image_chain {
	int n;
	struct uffd_image **images;	/* [0] newest */
	char **paths;			/* of each image's file */
	int trusted;			/* atomic: every index checked */
};

static int chain_push(struct uffd_image_chain *c, struct uffd_image *img, const char *path)
{
	struct uffd_image **grown = realloc(c->images, (c->n + 1) * sizeof(*grown));
	char **paths;

	if (!grown)
		return -ENOMEM;
	c->images = grown;
	paths = realloc(c->paths, (c->n + 1) * sizeof(*paths));
	if (!paths)
		return -ENOMEM;
	c->paths = paths;
	c->paths[c->n] = strdup(path);
	if (!c->paths[c->n])
		return -ENOMEM;
	c->images[c->n++] = img;
	return 0;
}

/*
 * Does parent belong under the oldest image so far, its child?  0, or
 * -EBADMSG at the child's field that does not match.
 */
static int check_link(const struct uffd_image_chain *c,
		      const struct uffd_image_info *parent, uint64_t *bad)
{
	struct uffd_image_info child, seen;
	int i;

	uffd_image_info(c->images[c->n - 1], &child);
	if (parent->id != child.parent_id) {
		*bad = IMG_HDR_PARENT_ID;
		return -EBADMSG;
	}
	/* ids link up, so a loop would bring back an image already here */
	for (i = 0; i < c->n; i++) {
		uffd_image_info(c->images[i], &seen);
		if (seen.id == parent->id) {
			*bad = IMG_HDR_PARENT_ID;
			return -EBADMSG;
		}
	}
	if (!img_regions_equal(child.regions, child.nregions, parent->regions,
			       parent->nregions)) {
		*bad = IMG_REGIONS_OFF;
		return -EBADMSG;
	}
	return 0;
}

/*
 * uffd_image_chain_open(), and on failure, when bad_file is not NULL, the
 * path of the file at fault in it (malloc'd; the child, for a broken link;
 * NULL when out of memory).
 */
static struct uffd_image_chain *chain_open(const char *path, uint64_t *bad, char **bad_file)
{
	struct uffd_image_info info;
	struct uffd_image_chain *c;
	struct uffd_image *img;
	char *dir = NULL, *cur = NULL;
	int err;

	if (bad_file)
		*bad_file = NULL;
	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	dir = img_dirname(path);
	cur = strdup(path);
	if (!c || !dir || !cur) {
		err = -ENOMEM;
		goto out_fail;
	}
	for (;;) {
		img = uffd_image_open(cur, bad);
		if (!img) {
			err = -errno;
			/* a delta whose parent is gone names a file that is not there */
			if (c->n && err == -ENOENT) {
				*bad = IMG_PARENT_OFF;
				err = -EBADMSG;
				if (bad_file)
					*bad_file = strdup(c->paths[c->n - 1]);
			} else if (bad_file) {
				*bad_file = strdup(cur);
			}
			goto out_fail;
		}
		uffd_image_info(img, &info);
		err = c->n ? check_link(c, &info, bad) : 0;
		if (err && bad_file)
			*bad_file = strdup(c->paths[c->n - 1]);
		if (!err)
			err = chain_push(c, img, cur);
		if (err) {
			uffd_image_close(img);
			goto out_fail;
		}
		if (!info.delta)
			break;
		free(cur);
		cur = img_join(dir, info.parent);
		if (!cur) {
			err = -ENOMEM;
			goto out_fail;
		}
	}
	free(cur);
	free(dir);
	return c;

out_fail:
	free(cur);
	free(dir);
	uffd_image_chain_close(c);
	errno = -err;
	return NULL;
}

struct uffd_image_chain *uffd_image_chain_open(const char *path, uint64_t *bad_offset)
{
	uint64_t bad_local;

	return chain_open(path, bad_offset ? bad_offset : &bad_local, NULL);
}

/* path into buf as snprintf would (nothing when buf is NULL) */
static void copy_path(char *buf, size_t size, const char *path)
{
	if (buf && size)
		snprintf(buf, size, "%s", path ? path : "");
}

int uffd_image_chain_check(const char *path, char *file, size_t file_size,
			   uint64_t *bad_offset)
{
	struct uffd_image_chain *c;
	uint64_t bad_local;
	uint64_t *bad = bad_offset ? bad_offset : &bad_local;
	char *bad_file;
	int i, err = 0;

	copy_path(file, file_size, NULL);
	c = chain_open(path, bad, &bad_file);
	if (!c) {
		err = -errno;
		copy_path(file, file_size, bad_file);
		free(bad_file);
		return err;
	}
	for (i = 0; i < c->n && !err; i++) {
		err = uffd_image_verify(c->images[i], bad);
		if (err)
			copy_path(file, file_size, c->paths[i]);
	}
	uffd_image_chain_close(c);
	return err;
}

void uffd_image_chain_close(struct uffd_image_chain *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++) {
		uffd_image_close(c->images[i]);
		free(c->paths[i]);
	}
	free(c->images);
	free(c->paths);
	free(c);
}

int uffd_image_chain_length(const struct uffd_image_chain *c)
{
	return c ? c->n : -EINVAL;
}

struct uffd_image *uffd_image_chain_get(struct uffd_image_chain *c, int i)
{
	if (!c || i < 0 || i >= c->n) {
		errno = EINVAL;
		return NULL;
	}
	return c->images[i];
}

/* Every image's index believed (version 1 files: read once, here). */
int uffd__image_chain_trust(struct uffd_image_chain *c)
{
	uint64_t bad;
	int i, err;

	if (__atomic_load_n(&c->trusted, __ATOMIC_ACQUIRE))
		return 0;
	for (i = 0; i < c->n; i++) {
		err = uffd__image_trust_headers(c->images[i], &bad);
		if (err)
			return err;
	}
	__atomic_store_n(&c->trusted, 1, __ATOMIC_RELEASE);
	return 0;
}

int uffd__image_chain_read_page(struct uffd_image_chain *c, int region, uint64_t page,
				void *buf, unsigned flags)
{
	struct uffd_image_info info;
	int i, ret;

	if (!c || !c->n)
		return -EINVAL;
	if (!__atomic_load_n(&c->trusted, __ATOMIC_ACQUIRE) && (flags & IMG_READ_SIGNAL_SAFE))
		return -EINVAL;		/* would lock: not prepared */
	ret = uffd__image_chain_trust(c);
	if (ret)
		return ret;
	for (i = 0, ret = -ENOENT; i < c->n && ret == -ENOENT; i++)
		ret = uffd__image_read_page(c->images[i], region, page, buf, flags);
	if (ret != -ENOENT)
		return ret;
	/* a hole in the base: zero */
	if (flags & IMG_READ_FILL_ZERO) {
		uffd_image_info(c->images[0], &info);
		memset(buf, 0, info.regions[region].page_size);
	}
	return 0;
}

int uffd_image_chain_read_page(struct uffd_image_chain *c, int region, uint64_t page,
			       void *buf)
{
	return uffd__image_chain_read_page(c, region, page, buf, IMG_READ_FILL_ZERO);
}

bool uffd__image_chain_next_run(const struct uffd_image_chain *c, int region, uint64_t from,
				uint64_t *start, uint64_t *end)
{
	uint64_t s, e;
	bool found = false;
	int i;

	for (i = 0; i < c->n; i++) {
		if (!uffd__image_next_run(c->images[i], region, from, &s, &e))
			continue;
		if (!found || s < *start) {
			*start = s;
			*end = e;
			found = true;
		}
	}
	return found;
}
