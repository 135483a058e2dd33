/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An umap program's round trip through a buffer a quarter of the file
 * (never more than which is mapped): every byte read through umap() is the
 * file's, and every byte written reaches the file (at umap_flush while
 * mapped, at uunmap for what is written after), as LLNL umap does with the
 * UMAP_PRIVATE flag every umap program passes.  uunmap of an address that
 * starts no map fails with EINVAL.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define BUF_PAGES	64
#define FILE_PAGES	(4 * BUF_PAGES)
#define FILE_BYTES	(FILE_PAGES * PAGE)
#define REWRITTEN	8	/* pages written again after the flush */

/* Pages of the map that are in memory now (mincore(2)). */
static size_t pages_mapped(void *map)
{
	static unsigned char vec[FILE_PAGES];
	size_t n = 0;

	CHECK_OK(mincore(map, FILE_BYTES, vec));
	for (size_t i = 0; i < FILE_PAGES; i++)
		n += vec[i] & 1;
	return n;
}

int main(void)
{
	unsigned char *want = malloc(FILE_BYTES), *got = malloc(FILE_BYTES);
	unsigned char *map;
	struct stat st;
	int fd;

	CHECK(want && got);
	CHECK_OK(setenv("UMAP_BUFSIZE", "64", 1));
	CHECK_EQ(umapcfg_get_max_pages_in_buffer(), BUF_PAGES);
	CHECK_EQ(umapcfg_get_umap_page_size(), PAGE);

	t_fill(want, FILE_BYTES, 1);
	fd = t_umap_file(want, FILE_BYTES, NULL);
	map = t_umap(FILE_BYTES, PROT_READ | PROT_WRITE, UMAP_PRIVATE,
			  fd, 0);
	CHECK_EQ((uintptr_t)map % PAGE, 0);

	/* Reading all of it cycles the buffer four times, and no more than
	 * the buffer is ever mapped. */
	t_check_bytes("first read", map, want, FILE_BYTES);
	CHECK(pages_mapped(map) > 0);
	CHECK(pages_mapped(map) <= BUF_PAGES);

	/* Writing all of it evicts dirty pages, which must come back. */
	t_fill(want, FILE_BYTES, 2);
	memcpy(map, want, FILE_BYTES);
	t_check_bytes("read after write", map, want, FILE_BYTES);

	CHECK_EQ(umap_flush(), 0);
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after umap_flush", got, want, FILE_BYTES);

	/* Pages dirtied after the flush are written at uunmap. */
	t_fill(want, REWRITTEN * PAGE, 3);
	memcpy(map, want, REWRITTEN * PAGE);
	CHECK_EQ(uunmap(map, FILE_BYTES), 0);
	CHECK_EQ(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	t_check_bytes("file after uunmap", got, want, FILE_BYTES);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, FILE_BYTES);

	/* The map is gone: unmapping it again, or anything else, is EINVAL. */
	errno = 0;
	CHECK_EQ(uunmap(map, FILE_BYTES), -1);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK_EQ(uunmap(want, PAGE), -1);
	CHECK_EQ(errno, EINVAL);

	close(fd);
	free(want);
	free(got);
	return T_EXIT_PASS;
}
