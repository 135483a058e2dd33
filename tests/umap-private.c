/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UMAP_NO_WRITEBACK (libuffd's flag; mmap's MAP_PRIVATE) keeps writes in
 * memory: the map reads back what was written, also after the buffer has
 * cycled, and the file never changes: not at umap_flush, not at uunmap,
 * not with a read-only fd (which only such a map may write).  For contrast,
 * the same writes through an UMAP_PRIVATE map, which umap writes back, do
 * reach the file.
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define FILE_PAGES	32
#define FILE_BYTES	(FILE_PAGES * PAGE)
#define WRITTEN_PAGES	8	/* well inside the buffer */

int main(void)
{
	static unsigned char file[FILE_BYTES], written[WRITTEN_PAGES * PAGE];
	static unsigned char got[FILE_BYTES];
	unsigned char *map;
	int fd, rdonly;

	CHECK_OK(setenv("UMAP_BUFSIZE", "16", 1));
	t_fill(file, FILE_BYTES, 5);
	t_fill(written, sizeof(written), 6);
	fd = t_umap_file(file, FILE_BYTES, &rdonly);

	map = t_umap(FILE_BYTES, PROT_READ | PROT_WRITE, UMAP_PRIVATE | UMAP_NO_WRITEBACK,
		     fd, 0);
	t_check_bytes("private map before writing", map, file, FILE_BYTES);
	memcpy(map, written, sizeof(written));
	t_check_bytes("private map after writing", map, written,
		    sizeof(written));
	t_check_bytes("private map past the writes", map + sizeof(written),
		    file + sizeof(written), FILE_BYTES - sizeof(written));
	/* That read cycled the buffer: the writes must have survived it. */
	t_check_bytes("private map after eviction", map, written,
		    sizeof(written));
	CHECK_EQ(umap_flush(), 0);
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after umap_flush", got, file, FILE_BYTES);
	CHECK_EQ(uunmap(map, FILE_BYTES), 0);
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after uunmap", got, file, FILE_BYTES);

	/* A read-only fd: writable only without write-back. */
	errno = 0;
	CHECK(umap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, UMAP_PRIVATE,
		   rdonly, 0) == UMAP_FAILED);
	CHECK_EQ(errno, EACCES);
	map = t_umap(FILE_BYTES, PROT_READ | PROT_WRITE, UMAP_PRIVATE | UMAP_NO_WRITEBACK,
		     rdonly, 0);
	memcpy(map, written, sizeof(written));
	t_check_bytes("read-only fd, private map", map, written,
		    sizeof(written));
	CHECK_EQ(uunmap(map, FILE_BYTES), 0);
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after the read-only fd's map", got, file,
		    FILE_BYTES);

	/* The contrast: UMAP_PRIVATE alone writes back, as in umap. */
	map = t_umap(FILE_BYTES, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
	memcpy(map, written, sizeof(written));
	CHECK_EQ(uunmap(map, FILE_BYTES), 0);
	memcpy(file, written, sizeof(written));
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after an UMAP_PRIVATE map", got, file, FILE_BYTES);

	close(rdonly);
	close(fd);
	return T_EXIT_PASS;
}
