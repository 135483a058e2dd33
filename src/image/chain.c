/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Chains of images: a delta, its parent, its parent's parent... down to a
 * base.  A page's contents at the newest instant are those recorded by the
 * newest image that has the page at all, data or zero; if none has it, the
 * page was a hole in the base and is zero.  Opening checks every link: the
 * parent, found by the name the child records, in the child's directory,
 * must carry the id the child records and the same region table, so a
 * chain never silently mixes images of different runs.
 */
#include <errno.h>
#include <stdlib.h>

#include "format.h"

struct uffd_image_chain {
	int n;
	struct uffd_image **images;	/* [0] newest */
};

static int chain_push(struct uffd_image_chain *c, struct uffd_image *img)
{
	struct uffd_image **grown = realloc(c->images, (c->n + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	c->images = grown;
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

struct uffd_image_chain *uffd_image_chain_open(const char *path, uint64_t *bad_offset)
{
	struct uffd_image_info info;
	struct uffd_image_chain *c;
	struct uffd_image *img;
	uint64_t bad_local;
	uint64_t *bad = bad_offset ? bad_offset : &bad_local;
	char *dir = NULL, *cur = NULL;
	int err;

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
			}
			goto out_fail;
		}
		uffd_image_info(img, &info);
		err = c->n ? check_link(c, &info, bad) : 0;
		if (!err)
			err = chain_push(c, img);
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

void uffd_image_chain_close(struct uffd_image_chain *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		uffd_image_close(c->images[i]);
	free(c->images);
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

int uffd_image_chain_read_page(struct uffd_image_chain *c, int region, uint64_t page,
			       void *buf)
{
	struct uffd_image_info info;
	int i, ret = -ENOENT;

	if (!c || !c->n)
		return -EINVAL;
	for (i = 0; i < c->n && ret == -ENOENT; i++)
		ret = uffd_image_read_page(c->images[i], region, page, buf);
	if (ret != -ENOENT)
		return ret;
	/* a hole in the base: zero */
	uffd_image_info(c->images[0], &info);
	memset(buf, 0, info.regions[region].page_size);
	return 0;
}
