/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the image tests share: a scratch directory removed at exit, file
 * helpers (size, copy, flip a byte), and a walk of an image's chunks that
 * reads the layout as man/uffd-image.5 documents it, without the library,
 * so a test can aim at a chunk and check the library's offsets against an
 * independent reading of the format.
 */
#ifndef LIBUFFD_TEST_IMAGE_FILES_H
#define LIBUFFD_TEST_IMAGE_FILES_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uffd/image.h>

#include "harness.h"

/* Layout constants, from the manual page (not from the library). */
#define T_IMG_REGIONS_OFF	320
#define T_IMG_CHUNK_HDR		32
#define T_IMG_TRAILER		32
#define T_IMG_CHUNKS_START(nregions) (T_IMG_REGIONS_OFF + 32 * (nregions) + 4)

static char t_img_dir_path[256];

static inline void t_img_dir_remove(void)
{
	char path[512];
	struct dirent *d;
	DIR *dir;

	dir = opendir(t_img_dir_path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", t_img_dir_path, d->d_name);
		unlink(path);
	}
	closedir(dir);
	rmdir(t_img_dir_path);
}

/* A fresh directory for this test's images, removed (flat) at exit. */
static inline const char *t_img_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t_img_dir_path, sizeof(t_img_dir_path), "%s/uffd-image-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(t_img_dir_path))
		FAIL("mkdtemp %s: %s", t_img_dir_path, strerror(errno));
	atexit(t_img_dir_remove);
	return t_img_dir_path;
}

/* dir/name in a static buffer of its own per slot (0..7). */
static inline const char *t_img_path(int slot, const char *dir, const char *name)
{
	static char paths[8][512];

	snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", dir, name);
	return paths[slot];
}

static inline uint64_t t_file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		FAIL("stat %s: %s", path, strerror(errno));
	return st.st_size;
}

/* Entries of dir other than . and .. */
static inline int t_count_files(const char *dir)
{
	struct dirent *d;
	DIR *dp = opendir(dir);
	int n = 0;

	if (!dp)
		FAIL("opendir %s: %s", dir, strerror(errno));
	while ((d = readdir(dp)))
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			n++;
	closedir(dp);
	return n;
}

/* The whole file, malloc'd; its size in *size. */
static inline uint8_t *t_read_file(const char *path, uint64_t *size)
{
	int fd = open(path, O_RDONLY);
	uint8_t *buf;

	if (fd < 0)
		FAIL("open %s: %s", path, strerror(errno));
	*size = t_file_size(path);
	buf = malloc(*size + 1);
	CHECK(buf);
	if (pread(fd, buf, *size, 0) != (ssize_t)*size)
		FAIL("read %s", path);
	close(fd);
	return buf;
}

static inline void t_write_file(const char *path, const void *buf, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		FAIL("create %s: %s", path, strerror(errno));
	if (pwrite(fd, buf, size, 0) != (ssize_t)size)
		FAIL("write %s", path);
	close(fd);
}

/* XOR the byte at off with x, in place. */
static inline void t_flip_byte(const char *path, uint64_t off, uint8_t x)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		FAIL("read %s at %" PRIu64, path, off);
	b ^= x;
	if (pwrite(fd, &b, 1, off) != 1)
		FAIL("write %s at %" PRIu64, path, off);
	close(fd);
}

static inline uint64_t t_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[bytes];
	return v;
}

static inline void t_put_le(uint8_t *p, uint64_t v, int bytes)
{
	while (bytes--) {
		*p++ = v;
		v >>= 8;
	}
}

/* Bytes after the last chunk: from version 3, the copy of the chunk
 * headers (32 bytes per chunk, the trailer's count), then the trailer. */
static inline uint64_t t_img_tail(const uint8_t *f, uint64_t size)
{
	uint64_t chunks = t_le(f + size - T_IMG_TRAILER + 8, 8);

	return T_IMG_TRAILER + (t_le(f + 8, 4) >= 3 ? chunks * T_IMG_CHUNK_HDR : 0);
}

static inline uint64_t t_img_tail_of(const char *path)
{
	uint64_t size, tail;
	uint8_t *f = t_read_file(path, &size);

	tail = t_img_tail(f, size);
	free(f);
	return tail;
}

/*
 * Rewrite a sound image as an older version wrote it: version 2 has no
 * copy of the chunk headers before the trailer (dropped here); version 1
 * has none either, and zero where the trailer has their CRC.  The
 * version, the header CRC and (v1) the trailer redone.  crc is the
 * library's crc32c(), passed in so this header does not need it.
 */
static inline void t_img_make_version(const char *path, int version,
				      uint32_t (*crc)(uint32_t, const void *, size_t))
{
	uint64_t size;
	uint8_t *f = t_read_file(path, &size), *t;

	if (t_le(f + 8, 4) >= 3) {
		uint64_t copy = t_img_tail(f, size) - T_IMG_TRAILER;

		memmove(f + size - T_IMG_TRAILER - copy, f + size - T_IMG_TRAILER,
			T_IMG_TRAILER);
		size -= copy;
	}
	t = f + size - T_IMG_TRAILER;
	t_put_le(f + 8, version, 4);
	t_put_le(f + 60, crc(crc(0, f, 60), f + 64, 256), 4);
	if (version == 1) {
		t_put_le(t + 24, 0, 4);
		t_put_le(t + 28, crc(0, t, 28), 4);
	}
	t_write_file(path, f, size);
	free(f);
}

static inline void t_img_make_v1(const char *path,
				 uint32_t (*crc)(uint32_t, const void *, size_t))
{
	t_img_make_version(path, 1, crc);
}

/* A chunk as the manual page lays it out. */
struct t_chunk {
	uint64_t offset;	/* of its header */
	uint64_t size;		/* header + data + CRC */
	uint32_t region, count;
	uint64_t first, present, zero;
};

/*
 * Walk an image's chunks from the documented layout: up to max of them into
 * out, their number returned.  Fails the test if the walk does not end
 * exactly where the copy of the headers (version 3) or the trailer begins.
 */
static inline int t_img_chunks(const char *path, struct t_chunk *out, int max)
{
	uint64_t size, p, ps, end;
	uint8_t *f = t_read_file(path, &size);
	uint32_t nregions = t_le(f + 20, 4);
	int n = 0;

	end = size - t_img_tail(f, size);
	p = T_IMG_CHUNKS_START(nregions);
	while (p < end) {
		struct t_chunk c = { .offset = p };

		if (memcmp(f + p, "CHNK", 4))
			FAIL("%s: no chunk magic at %" PRIu64, path, p);
		c.region = t_le(f + p + 4, 2);
		c.count = t_le(f + p + 6, 2);
		c.first = t_le(f + p + 8, 8);
		c.present = t_le(f + p + 16, 8);
		c.zero = t_le(f + p + 24, 8);
		CHECK(c.region < nregions);
		ps = t_le(f + T_IMG_REGIONS_OFF + 32 * c.region + 16, 4);
		c.size = T_IMG_CHUNK_HDR + __builtin_popcountll(c.present) * ps + 4;
		if (n < max)
			out[n] = c;
		n++;
		p += c.size;
	}
	if (p != end || memcmp(f + size - T_IMG_TRAILER, "UFFDEND1", 8))
		FAIL("%s: chunks end at %" PRIu64 ", file size %" PRIu64, path, p, size);
	free(f);
	return n;
}

#endif
