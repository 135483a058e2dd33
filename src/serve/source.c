/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server's source: an image chain or a raw memory file behind
 * one offset space (see source.h).  A raw file's all-zero pages are
 * reported as zero pages, so they are mapped as the zero page instead of
 * costing the client memory, as an image's holes are.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/internal.h"
#include "source.h"
#include "util/fileio.h"

#define PAGE 4096u

static bool page_is_zero(const void *buf)
{
	const uint64_t *w = buf;
	unsigned i;

	for (i = 0; i < PAGE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

static char *absolute(const char *path)
{
	char *p = realpath(path, NULL);

	return p ? p : strdup(path);
}

static int open_image(struct serve_source *s, const char *image)
{
	struct uffd_image_info info;
	uint64_t off = 0;
	int i, ret;

	s->chain = uffd_image_chain_open(image, NULL);
	if (!s->chain)
		return -errno;
	ret = uffd_image_info(uffd_image_chain_get(s->chain, 0), &info);
	if (ret)
		return ret;
	s->ext = calloc(info.nregions, sizeof(*s->ext));
	if (!s->ext)
		return -ENOMEM;
	for (i = 0; i < info.nregions; i++) {
		const struct uffd_image_region *r = &info.regions[i];

		if (r->page_size != PAGE)
			return -EOPNOTSUPP;
		s->ext[i] = (struct serve_extent){ .addr = r->addr, .len = r->len,
						   .offset = off, .page_size = PAGE,
						   .region = i };
		if (off + r->len < off)
			return -EOVERFLOW;
		off += r->len;
	}
	s->nextents = info.nregions;
	s->size = off;
	s->id = info.id;
	return 0;
}

static int open_raw(struct serve_source *s, const char *mem_file)
{
	struct stat st;

	/* O_NONBLOCK: a FIFO named here must not hang the open. */
	s->fd = open(mem_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (s->fd < 0)
		return -errno;
	if (fstat(s->fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0)
		return -EINVAL;
	s->ext = calloc(1, sizeof(*s->ext));
	if (!s->ext)
		return -ENOMEM;
	s->size = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	s->ext[0] = (struct serve_extent){ .len = s->size, .page_size = PAGE };
	s->nextents = 1;
	/* Another file, or this one rewritten, has another identity. */
	s->id = (uint64_t)st.st_ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)st.st_dev << 40 ^
		(uint64_t)st.st_mtim.tv_sec * 1000000000ull ^ (uint64_t)st.st_mtim.tv_nsec ^
		(uint64_t)st.st_size;
	if (!s->id)
		s->id = 1;
	s->raw = true;
	return 0;
}

struct serve_source *serve_source_open(const char *image, const char *mem_file)
{
	struct serve_source *s;
	int ret;

	if (!image == !mem_file) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = -1;
	ret = image ? open_image(s, image) : open_raw(s, mem_file);
	if (!ret) {
		s->path = absolute(image ? image : mem_file);
		if (!s->path)
			ret = -ENOMEM;
	}
	if (ret) {
		serve_source_close(s);
		errno = -ret;
		return NULL;
	}
	return s;
}

void serve_source_close(struct serve_source *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	uffd_image_chain_close(s->chain);
	free(s->ext);
	free(s->path);
	free(s);
}

static const struct serve_extent *find_extent(const struct serve_source *s, uint64_t off)
{
	int lo = 0, hi = s->nextents;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (s->ext[mid].offset + s->ext[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nextents && s->ext[lo].offset <= off ? &s->ext[lo] : NULL;
}

int serve_source_read(const struct serve_source *s, uint64_t off, void *buf)
{
	const struct serve_extent *e;
	ssize_t n;
	size_t done;

	if (off % PAGE || off >= s->size)
		return -EINVAL;
	if (!s->raw) {
		e = find_extent(s, off);
		if (!e)
			return -EINVAL;
		return uffd__image_chain_read_page(s->chain, e->region, (off - e->offset) / PAGE,
						   buf, IMG_READ_FILL_ZERO |
						   (s->no_alloc ? IMG_READ_SIGNAL_SAFE : 0));
	}
	n = uffd__pread_full(s->fd, buf, PAGE, off);
	if (n < 0)
		return n;
	done = n;
	/* The file's last page may be partial (the rest reads as zeros); a
	 * file that shrank under us is an error, not zeros. */
	if (done < PAGE) {
		if (off + PAGE < s->size)
			return -EIO;
		memset((char *)buf + done, 0, PAGE - done);
	}
	return page_is_zero(buf) ? 0 : 1;
}

int serve_source_no_alloc(struct serve_source *s)
{
	int ret = s->raw ? 0 : uffd__image_chain_trust(s->chain);

	s->no_alloc = !ret;
	return ret;
}
