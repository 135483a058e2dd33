/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * With UMAP_PAGESIZE a multiple of the system page, an umap page is the
 * unit of everything: umap_prefetch() of an address anywhere in an 8 KiB
 * page reads the whole page (both of its system pages are then mapped),
 * and, as LLNL umap promises, every map starts on an umap page boundary.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define UMAP_PAGE	8192
#define FILE_BYTES	(8 * UMAP_PAGE)
#define NR_MAPS		8

int main(void)
{
	static unsigned char file[FILE_BYTES];
	unsigned char *maps[NR_MAPS], vec[FILE_BYTES / PAGE];
	struct umap_prefetch_item item;
	int fd;

	CHECK_OK(setenv("UMAP_PAGESIZE", "8192", 1));
	CHECK_EQ(umapcfg_get_umap_page_size(), UMAP_PAGE);
	t_fill(file, FILE_BYTES, 12);
	fd = t_umap_file(file, FILE_BYTES, NULL);

	for (int i = 0; i < NR_MAPS; i++)
		maps[i] = t_umap(FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 0);

	/* The last system page of umap page 2 names all of umap page 2. */
	item.page_base_addr = maps[0] + 2 * UMAP_PAGE + PAGE + 10;
	umap_prefetch(1, &item);
	CHECK_OK(mincore(maps[0], FILE_BYTES, vec));
	for (size_t i = 0; i < FILE_BYTES / PAGE; i++)
		if ((vec[i] & 1) != (i / (UMAP_PAGE / PAGE) == 2))
			FAIL("system page %zu is %sresident", i,
			     vec[i] & 1 ? "" : "not ");
	CHECK(memcmp(maps[0] + 2 * UMAP_PAGE, file + 2 * UMAP_PAGE,
		     UMAP_PAGE) == 0);

	for (int i = 0; i < NR_MAPS; i++)
		if ((uintptr_t)maps[i] % UMAP_PAGE)
			FAIL("map %d at %p is not on an 8 KiB boundary", i,
			     (void *)maps[i]);

	for (int i = 0; i < NR_MAPS; i++)
		CHECK_EQ(uunmap(maps[i], FILE_BYTES), 0);
	close(fd);
	return T_EXIT_PASS;
}
