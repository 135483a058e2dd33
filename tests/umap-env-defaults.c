/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Without the environment variables libumap takes LLNL umap's defaults:
 * the system page size, 256 fault events, one filler and one evictor per
 * online CPU, eviction from 90% down to 70% of the buffer, no read-ahead,
 * and a buffer of 90% of the memory free (in umap pages).  A value of 0,
 * or one that is not a number, counts as unset, as in umap.
 */
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"

static uint64_t meminfo_kb(const char *field)
{
	unsigned long long kb = 0;
	char line[256], fmt[64];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		SKIP("no /proc/meminfo");
	snprintf(fmt, sizeof(fmt), "%s: %%llu kB", field);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &kb) == 1)
			break;
	fclose(f);
	CHECK(kb > 0);
	return kb;
}

int main(void)
{
	static const char *const unset[] = {
		"UMAP_BUFSIZE", "UMAP_PAGE_EVICTORS", "UMAP_READ_AHEAD",
		"UMAP_EVICT_HIGH_WATER_THRESHOLD", "UMAP_MAX_FAULT_EVENTS",
	};
	long page = sysconf(_SC_PAGESIZE);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t total_pages = meminfo_kb("MemTotal") * 1024 / page;
	uint64_t buf;

	for (size_t i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
		CHECK_OK(unsetenv(unset[i]));
	/* Present but meaningless: umap ignores these too. */
	CHECK_OK(setenv("UMAP_PAGESIZE", "0", 1));
	CHECK_OK(setenv("UMAP_PAGE_FILLERS", "many", 1));
	CHECK_OK(setenv("UMAP_EVICT_LOW_WATER_THRESHOLD", "", 1));

	CHECK_EQ(umapcfg_get_system_page_size(), page);
	CHECK_EQ(umapcfg_get_umap_page_size(), page);
	CHECK_EQ(umapcfg_get_max_fault_events(), 256);
	CHECK_EQ(umapcfg_get_num_fillers(), cpus);
	CHECK_EQ(umapcfg_get_num_evictors(), cpus);
	CHECK_EQ(umapcfg_get_evict_high_water_threshold(), 90);
	CHECK_EQ(umapcfg_get_evict_low_water_threshold(), 70);
	CHECK_EQ(umapcfg_get_read_ahead(), 0);

	/* MemFree moves, so only its bounds are exact: more than nothing,
	 * at most 90% of all memory. */
	buf = umapcfg_get_max_pages_in_buffer();
	if (buf == 0 || buf > total_pages * 90 / 100)
		FAIL("buffer of %llu pages, want 1..%llu (90%% of MemTotal)",
		     (unsigned long long)buf,
		     (unsigned long long)(total_pages * 90 / 100));
	return T_EXIT_PASS;
}
