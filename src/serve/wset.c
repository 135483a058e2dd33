/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Working-set files (format in wset.h): checked on load down to every
 * page number, written under a temporary name and renamed once durable,
 * read back in large sequential pieces.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/fileio.h"
#include "util/le.h"
#include "wset.h"

#define PAGE 4096u
/* Pages per write while recording: 1 MiB. */
#define WRITE_BATCH 256

uint64_t uffd__ws_index_size(uint64_t count)
{
	return count * 12 + 4;
}

uint64_t uffd__ws_data_offset(uint64_t count)
{
	return (WS_HDR + uffd__ws_index_size(count) + PAGE - 1) & ~(uint64_t)(PAGE - 1);
}

int uffd__ws_parse_header(const uint8_t *buf, size_t len, struct ws_header *h)
{
	if (len < WS_HDR || memcmp(buf, WS_MAGIC, 8))
		return -EBADMSG;
	if (crc32c(0, buf, 60) != get_le32(buf + 60))
		return -EBADMSG;
	h->version = get_le32(buf + 8);
	if (h->version != WS_VERSION)
		return -EPROTO;
	h->page_size = get_le32(buf + 12);
	h->source_id = get_le64(buf + 16);
	h->source_size = get_le64(buf + 24);
	h->count = get_le64(buf + 32);
	h->data_offset = get_le64(buf + 40);
	if (h->page_size != PAGE || h->source_size % PAGE || get_le64(buf + 48) ||
	    get_le32(buf + 56))
		return -EBADMSG;
	/* Each page at most once: this also bounds every size below. */
	if (h->count > h->source_size / PAGE || h->data_offset != uffd__ws_data_offset(h->count))
		return -EBADMSG;
	return 0;
}

int uffd__ws_parse_index(const uint8_t *buf, size_t len, const struct ws_header *h,
			 uint64_t *pages, uint32_t *crcs)
{
	uint64_t i, n = h->count, npages = h->source_size / PAGE;

	if (len != uffd__ws_index_size(n))
		return -EBADMSG;
	if (crc32c(0, buf, n * 12) != get_le32(buf + n * 12))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		pages[i] = get_le64(buf + i * 8);
		crcs[i] = get_le32(buf + n * 8 + i * 4);
		if (pages[i] >= npages)
			return -EBADMSG;
	}
	return 0;
}

void serve_wset_free(struct serve_wset *ws)
{
	if (!ws)
		return;
	if (ws->fd >= 0)
		close(ws->fd);
	free(ws->pages);
	free(ws->crcs);
	free(ws->slot);
	free(ws);
}

static int load(struct serve_wset *ws, const char *path, const struct serve_source *src)
{
	uint8_t hdr[WS_HDR], *index = NULL;
	struct ws_header h;
	struct stat st;
	uint64_t i, isize;
	ssize_t n;
	int ret;

	ws->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (ws->fd < 0)
		return -errno;
	if (fstat(ws->fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	n = uffd__pread_full(ws->fd, hdr, WS_HDR, 0);
	if (n < 0)
		return n;
	ret = uffd__ws_parse_header(hdr, n, &h);
	if (ret)
		return ret;
	if (h.source_id != src->id || h.source_size != src->size)
		return -ESTALE;
	if ((uint64_t)st.st_size < h.data_offset + h.count * PAGE)
		return -EBADMSG;
	ws->count = h.count;
	ws->data_offset = h.data_offset;
	ws->source_pages = src->size / PAGE;
	isize = uffd__ws_index_size(h.count);
	index = malloc(isize);
	ws->pages = calloc(h.count + 1, sizeof(*ws->pages));
	ws->crcs = calloc(h.count + 1, sizeof(*ws->crcs));
	ws->slot = calloc(ws->source_pages, sizeof(*ws->slot));
	if (!index || !ws->pages || !ws->crcs || !ws->slot) {
		ret = -ENOMEM;
		goto out;
	}
	n = uffd__pread_full(ws->fd, index, isize, WS_HDR);
	if (n < 0 || (uint64_t)n != isize) {
		ret = n < 0 ? n : -EBADMSG;
		goto out;
	}
	ret = uffd__ws_parse_index(index, isize, &h, ws->pages, ws->crcs);
	if (ret)
		goto out;
	for (i = 0; i < h.count; i++) {
		if (ws->slot[ws->pages[i]]) {
			ret = -EBADMSG;
			goto out;
		}
		ws->slot[ws->pages[i]] = i + 1;
	}
out:
	free(index);
	return ret;
}

struct serve_wset *serve_wset_load(const char *path, const struct serve_source *src)
{
	struct serve_wset *ws = calloc(1, sizeof(*ws));
	int ret;

	if (!ws)
		return NULL;
	ws->fd = -1;
	ret = load(ws, path, src);
	if (ret) {
		serve_wset_free(ws);
		errno = -ret;
		return NULL;
	}
	return ws;
}

int serve_wset_read(const struct serve_wset *ws, uint64_t first, uint64_t n, void *buf)
{
	ssize_t got;

	if (first > ws->count || n > ws->count - first)
		return -EINVAL;
	got = uffd__pread_full(ws->fd, buf, n * PAGE, ws->data_offset + first * PAGE);
	if (got < 0)
		return got;
	return (uint64_t)got == n * PAGE ? 0 : -EIO;
}

bool serve_wset_page_ok(const struct serve_wset *ws, uint64_t i, const void *page)
{
	return i < ws->count && crc32c(0, page, PAGE) == ws->crcs[i];
}

static int sync_dir_of(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd, ret = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

int serve_wset_write(const char *path, const struct serve_source *src,
		     const uint64_t *pages, uint64_t count)
{
	uint64_t data_off = uffd__ws_data_offset(count), isize = uffd__ws_index_size(count), i;
	uint8_t *index = NULL, *data = NULL, hdr[WS_HDR] = { 0 };
	char tmp[4096];
	int fd, ret = 0;

	if (count > src->size / PAGE)
		return -EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	index = calloc(1, isize);
	data = malloc((size_t)WRITE_BATCH * PAGE);
	if (!index || !data) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < count && !ret; i += WRITE_BATCH) {
		uint64_t k, n = count - i < WRITE_BATCH ? count - i : WRITE_BATCH;

		for (k = 0; k < n && !ret; k++) {
			uint8_t *page = data + k * PAGE;
			int r = serve_source_read(src, pages[i + k] * PAGE, page);

			if (r < 0) {
				ret = r;
				break;
			}
			if (r == 0)
				memset(page, 0, PAGE);
			put_le64(index + (i + k) * 8, pages[i + k]);
			put_le32(index + count * 8 + (i + k) * 4, crc32c(0, page, PAGE));
		}
		if (!ret)
			ret = uffd__pwrite_full(fd, data, n * PAGE, data_off + i * PAGE);
	}
	if (ret)
		goto out;
	put_le32(index + count * 12, crc32c(0, index, count * 12));
	memcpy(hdr, WS_MAGIC, 8);
	put_le32(hdr + 8, WS_VERSION);
	put_le32(hdr + 12, PAGE);
	put_le64(hdr + 16, src->id);
	put_le64(hdr + 24, src->size);
	put_le64(hdr + 32, count);
	put_le64(hdr + 40, data_off);
	put_le32(hdr + 60, crc32c(0, hdr, 60));
	ret = uffd__pwrite_full(fd, hdr, WS_HDR, 0);
	if (!ret)
		ret = uffd__pwrite_full(fd, index, isize, WS_HDR);
	/* An empty set still has its data offset's worth of file. */
	if (!ret && ftruncate(fd, data_off + count * PAGE))
		ret = -errno;
	if (!ret && fsync(fd))
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (!ret)
		ret = sync_dir_of(path);
out:
	close(fd);
	if (ret)
		unlink(tmp);
	free(index);
	free(data);
	return ret;
}
