/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * umap()'s offset is honoured (LLNL umap ignores it and always maps from
 * byte 0): a map from page 10 reads the file's pages 10.. and its writes
 * land there and nowhere else.  A length that is not a whole number of
 * pages is rounded up, as mmap does; an offset that is not page aligned,
 * or negative, is EINVAL.
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define FILE_PAGES	32
#define FILE_BYTES	(FILE_PAGES * PAGE)
#define MAP_FROM	10	/* page */
#define MAP_PAGES	8

int main(void)
{
	static unsigned char file[FILE_BYTES], got[FILE_BYTES];
	unsigned char *map;
	int fd;

	t_fill(file, FILE_BYTES, 7);
	fd = t_umap_file(file, FILE_BYTES, NULL);

	/* Reads come from the offset. */
	map = t_umap(MAP_PAGES * PAGE, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd,
		     MAP_FROM * PAGE);
	t_check_bytes("map from page 10", map, file + MAP_FROM * PAGE,
		    MAP_PAGES * PAGE);

	/* Writes go back to the offset, and only there. */
	t_fill(file + MAP_FROM * PAGE, PAGE, 8);
	t_fill(file + (MAP_FROM + MAP_PAGES - 1) * PAGE, PAGE, 9);
	memcpy(map, file + MAP_FROM * PAGE, PAGE);
	memcpy(map + (MAP_PAGES - 1) * PAGE,
	       file + (MAP_FROM + MAP_PAGES - 1) * PAGE, PAGE);
	CHECK_EQ(uunmap(map, MAP_PAGES * PAGE), 0);
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after uunmap", got, file, FILE_BYTES);

	/* Two pages and a bit from page 4: three whole pages of the file. */
	map = t_umap(2 * PAGE + 100, PROT_READ, UMAP_PRIVATE, fd, 4 * PAGE);
	t_check_bytes("rounded-up map", map, file + 4 * PAGE, 3 * PAGE);
	CHECK_EQ(uunmap(map, 2 * PAGE + 100), 0);

	errno = 0;
	CHECK(umap(NULL, PAGE, PROT_READ, UMAP_PRIVATE, fd, 100) == UMAP_FAILED);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(umap(NULL, PAGE, PROT_READ, UMAP_PRIVATE, fd, -(off_t)PAGE) ==
	      UMAP_FAILED);
	CHECK_EQ(errno, EINVAL);

	close(fd);
	return T_EXIT_PASS;
}
