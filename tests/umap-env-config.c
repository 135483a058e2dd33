/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The umap environment variables configure libumap as they configure LLNL
 * umap: set before the first call, each umapcfg_get_*() returns its value;
 * the configuration is read once, so later changes are not seen; and the
 * page size is the one umap() works in (a length rounds up to 8 KiB pages,
 * an offset must be a multiple of 8 KiB).
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define UMAP_PAGE	8192

static const struct {
	const char *name, *value;
} env[] = {
	{ "UMAP_PAGESIZE", "8192" },
	{ "UMAP_BUFSIZE", "123" },
	{ "UMAP_PAGE_FILLERS", "3" },
	{ "UMAP_PAGE_EVICTORS", "2" },
	{ "UMAP_EVICT_HIGH_WATER_THRESHOLD", "80" },
	{ "UMAP_EVICT_LOW_WATER_THRESHOLD", "50" },
	{ "UMAP_MAX_FAULT_EVENTS", "32" },
	{ "UMAP_READ_AHEAD", "4" },
};

static void check_config(void)
{
	CHECK_EQ(umapcfg_get_system_page_size(), sysconf(_SC_PAGESIZE));
	CHECK_EQ(umapcfg_get_umap_page_size(), UMAP_PAGE);
	CHECK_EQ(umapcfg_get_max_pages_in_buffer(), 123);
	CHECK_EQ(umapcfg_get_num_fillers(), 3);
	CHECK_EQ(umapcfg_get_num_evictors(), 2);
	CHECK_EQ(umapcfg_get_evict_high_water_threshold(), 80);
	CHECK_EQ(umapcfg_get_evict_low_water_threshold(), 50);
	CHECK_EQ(umapcfg_get_max_fault_events(), 32);
	CHECK_EQ(umapcfg_get_read_ahead(), 4);
}

int main(void)
{
	static unsigned char file[4 * UMAP_PAGE];
	unsigned char *map;
	int fd;

	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		CHECK_OK(setenv(env[i].name, env[i].value, 1));
	check_config();

	/* Read once: a change now is not seen, by the getters or by umap(). */
	CHECK_OK(setenv("UMAP_PAGESIZE", "4096", 1));
	CHECK_OK(setenv("UMAP_BUFSIZE", "7", 1));
	CHECK_OK(setenv("UMAP_PAGE_FILLERS", "9", 1));
	check_config();

	t_fill(file, sizeof(file), 4);
	fd = t_umap_file(file, sizeof(file), NULL);

	map = t_umap(UMAP_PAGE + 1, PROT_READ, UMAP_PRIVATE, fd, UMAP_PAGE);
	/* 8 KiB + 1 is two umap pages: file bytes [8 KiB, 24 KiB). */
	CHECK(memcmp(map, file + UMAP_PAGE, 2 * UMAP_PAGE) == 0);
	CHECK_EQ(uunmap(map, UMAP_PAGE + 1), 0);

	/* 4 KiB is a system page but not an umap page. */
	errno = 0;
	CHECK(umap(NULL, UMAP_PAGE, PROT_READ, UMAP_PRIVATE, fd, 4096) ==
	      UMAP_FAILED);
	CHECK_EQ(errno, EINVAL);

	close(fd);
	return T_EXIT_PASS;
}
