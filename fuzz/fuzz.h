/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the fuzz targets share: a scratch directory of their own (removed
 * at exit), writing a file, and making a mutated image's checksums right
 * again.  A fuzzer that had to guess CRC32Cs would never get past them, so
 * the image targets give the first input byte a say: bit 0 set, every CRC
 * the layout of man/uffd-image.5 lets us find is recomputed before the
 * library sees the file (the parsers behind the checksums get fuzzed);
 * clear, the bytes go in as they are (the checksums themselves do).
 */
#ifndef LIBUFFD_FUZZ_H
#define LIBUFFD_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/crc32c.h"

#define FUZZ_FIX_CRCS	0x01	/* first input byte: recompute the checksums */

static char fuzz_dir_path[128];

static void fuzz_dir_remove(void)
{
	char path[256];
	int i;

	for (i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "%s/f%d", fuzz_dir_path, i);
		unlink(path);
	}
	rmdir(fuzz_dir_path);
}

/* A directory for this process's files: made once, removed at exit. */
static inline const char *fuzz_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (!fuzz_dir_path[0]) {
		snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/uffd-fuzz-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(fuzz_dir_path))
			abort();
		atexit(fuzz_dir_remove);
	}
	return fuzz_dir_path;
}

static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n))
		abort();
	close(fd);
}

static inline uint64_t fuzz_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[bytes];
	return v;
}

static inline void fuzz_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/*
 * Recompute, in place, every checksum of an image that can be found: the
 * header's, the region table's, each chunk's while the chunk walk makes
 * sense, from version 3 the copy of the chunk headers before the trailer
 * (rewritten from the walk, as far as the trailer's count gives it room),
 * the trailer's CRC of chunk headers (version 2 on) and its own.
 */
static inline void fuzz_fix_image(uint8_t *f, size_t n)
{
	uint64_t nregions, p, len, ps, copy = 0, k = 0, end;
	uint32_t hdrs = 0;
	uint8_t *t;

	if (n < 320)
		return;
	fuzz_put_le32(f + 60, crc32c(crc32c(0, f, 60), f + 64, 256));
	nregions = fuzz_le(f + 20, 4);
	if (nregions > 4096 || 324 + 32 * nregions > n)
		return;
	fuzz_put_le32(f + 320 + 32 * nregions, crc32c(0, f + 320, 32 * nregions));
	if (n < 324 + 32 * nregions + 32)
		return;
	t = f + n - 32;
	if (fuzz_le(f + 8, 4) >= 3 && fuzz_le(t + 8, 8) <= (n - 324 - 32 * nregions - 32) / 32)
		copy = fuzz_le(t + 8, 8) * 32;
	end = n - 32 - copy;
	for (p = 324 + 32 * nregions; p + 32 <= end; p += len) {
		uint64_t region = fuzz_le(f + p + 4, 2);

		if (memcmp(f + p, "CHNK", 4) || region >= nregions)
			break;
		ps = fuzz_le(f + 320 + 32 * region + 16, 4);
		len = 36 + __builtin_popcountll(fuzz_le(f + p + 16, 8)) * ps;
		if (!ps || ps > n || len > end - p)
			break;
		if (k < copy)
			memcpy(f + end + k, f + p, 32);
		k += 32;
		hdrs = crc32c(hdrs, f + p, 32);
		fuzz_put_le32(f + p + len - 4, crc32c(0, f + p, len - 4));
	}
	if (copy)
		hdrs = crc32c(0, f + end, copy);
	if (fuzz_le(f + 8, 4) >= 2)
		fuzz_put_le32(t + 24, hdrs);
	fuzz_put_le32(t + 28, crc32c(0, t, 28));
}

#endif
