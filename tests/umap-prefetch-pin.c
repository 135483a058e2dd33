/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * umap_prefetch() reads exactly the pages named (an address inside a page
 * names that page), with the file's contents, before anything touches
 * them; umap_fetch_and_pin() reads a range that then stays resident while
 * the program streams four times through twice the buffer.  Residency is
 * what mincore(2) reports for the map: the pager's pages are mapped only
 * while they are in its buffer.  Prefetching an address no map covers
 * does nothing.
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define BUF_PAGES	32
#define FILE_PAGES	64
#define FILE_BYTES	(FILE_PAGES * PAGE)
#define PIN_FROM	40	/* page */
#define PIN_PAGES	4

enum residency { ABSENT, RESIDENT, EITHER };

/* The pager may deactivate (unmap) an unpinned page whenever the buffer
 * is over half full, so a page read earlier may be EITHER. */
static void check_resident(const char *what, unsigned char *map,
			   const enum residency want[FILE_PAGES])
{
	unsigned char vec[FILE_PAGES];

	CHECK_OK(mincore(map, FILE_BYTES, vec));
	for (int i = 0; i < FILE_PAGES; i++)
		if (want[i] != EITHER && (vec[i] & 1) != (want[i] == RESIDENT))
			FAIL("%s: page %d is %sresident", what, i,
			     vec[i] & 1 ? "" : "not ");
}

static void check_page(unsigned char *map, const unsigned char *file, int i)
{
	if (memcmp(map + i * PAGE, file + i * PAGE, PAGE))
		FAIL("page %d differs from the file", i);
}

int main(void)
{
	static unsigned char file[FILE_BYTES];
	static const int named[] = { 0, 1, 2, 3, 10, 20, 21 };
	struct umap_prefetch_item items[7];
	unsigned char not_mapped[2 * PAGE] __attribute__((aligned(4096)));
	struct umap_prefetch_item stray = { not_mapped };
	enum residency want[FILE_PAGES] = { ABSENT };
	volatile unsigned char sink;
	unsigned char *map;
	int fd;

	CHECK_OK(setenv("UMAP_BUFSIZE", "32", 1));
	CHECK_OK(unsetenv("UMAP_READ_AHEAD"));	/* umap's 0: none */
	t_fill(file, FILE_BYTES, 11);
	fd = t_umap_file(file, FILE_BYTES, NULL);

	/* Before any map (no pager yet) and after: a stray address is a
	 * no-op. */
	memset(not_mapped, 0x5a, sizeof(not_mapped));
	umap_prefetch(1, &stray);
	map = t_umap(FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 0);
	umap_prefetch(1, &stray);
	umap_fetch_and_pin((char *)not_mapped, PAGE);
	for (size_t i = 0; i < sizeof(not_mapped); i++)
		CHECK_EQ(not_mapped[i], 0x5a);

	check_resident("before prefetch", map, want);
	for (int i = 0; i < 7; i++) {
		items[i].page_base_addr = map + named[i] * PAGE;
		want[named[i]] = RESIDENT;
	}
	items[5].page_base_addr = map + 20 * PAGE + 100;
	umap_prefetch(7, items);
	/* 7 of 32 pages: too few for the pager to start aging any. */
	check_resident("after prefetch", map, want);
	for (int i = 0; i < 7; i++) {
		check_page(map, file, named[i]);
		want[named[i]] = EITHER;
	}

	/* From 5 bytes into page 40 to 5 bytes before page 44. */
	umap_fetch_and_pin((char *)map + PIN_FROM * PAGE + 5,
			   PIN_PAGES * PAGE - 10);
	for (int i = PIN_FROM; i < PIN_FROM + PIN_PAGES; i++)
		want[i] = RESIDENT;
	check_resident("after fetch_and_pin", map, want);

	for (int pass = 0; pass < 4; pass++)
		for (int i = 0; i < FILE_PAGES; i++) {
			if (i < PIN_FROM || i >= PIN_FROM + PIN_PAGES)
				sink = map[i * PAGE + pass];
			if (pass == 0)
				check_page(map, file, i);
		}
	(void)sink;
	for (int i = 0; i < FILE_PAGES; i++)
		if (want[i] != RESIDENT)
			want[i] = EITHER;
	check_resident("pinned, after streaming", map, want);
	for (int i = PIN_FROM; i < PIN_FROM + PIN_PAGES; i++)
		check_page(map, file, i);

	CHECK_EQ(uunmap(map, FILE_BYTES), 0);
	close(fd);
	return T_EXIT_PASS;
}
