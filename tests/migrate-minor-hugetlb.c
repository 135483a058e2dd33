// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Migration of hugetlbfs memory (2 MiB pages), with its file at the
 * destination: pages cross whole, one per message, and are mapped with
 * MINOR faults and UFFDIO_CONTINUE through the file's second mapping.
 *
 * Eight huge pages, filled with distinct patterns (one left zero), no
 * writers.  Hybrid: one precopy pass (the tracker reports a huge page
 * written when any of its 4 KiB is), then page 5 is rewritten before the
 * pause, so the switchover names it; at the destination a reader thread
 * touches every page in its resume callback: the six still current with
 * data are mapped by CONTINUE alone, the zero one is a zero page without a
 * request, page 5 is requested and answered, and all eight are exactly
 * the source's.  Skips where 16 huge pages cannot be
 * reserved.  Source and destination are the two halves of one hugetlbfs
 * file, the destination's given with its offset.
 *
 * Right after the destination starts, the huge page pool is shrunk to
 * what is in use (restored at exit): the destination took its pages at
 * start, so nothing is missing when the pages arrive - no SIGBUS.
 */
#include <stdio.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"

#define NHUGE 8

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static char *src, *dst;
static long pool_before = -1;

static long meminfo(const char *key)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

static void write_pool(long n)
{
	FILE *f = fopen(NR_HUGEPAGES, "we");

	if (f) {
		fprintf(f, "%ld\n", n);
		fclose(f);
	}
}

static void restore_pool(void)
{
	write_pool(pool_before);
}

/* Give back every huge page that nobody holds. */
static void shrink_pool(void)
{
	FILE *f = fopen(NR_HUGEPAGES, "re");

	CHECK(f);
	CHECK_EQ(fscanf(f, "%ld", &pool_before), 1);
	fclose(f);
	atexit(restore_pool);
	write_pool(meminfo("HugePages_Total:") - meminfo("HugePages_Free:"));
}
static int dst_fd, paused;

static void pause_cb(void *arg)
{
	(void)arg;
	/* Written after the precopy: the switchover names it. */
	t_fill(src + 5 * HPAGE, HPAGE, 55);
	__atomic_store_n(&paused, 1, __ATOMIC_RELEASE);
}

static void resume_cb(void *arg) { (void)arg; }

static void dst_resume(void *arg, const void *blob, size_t len)
{
	volatile char *p = (volatile char *)dst;
	int i;

	(void)arg;
	CHECK_EQ(len, 3);
	CHECK(!memcmp(blob, "hi!", 3));
	for (i = 0; i < NHUGE; i++)
		(void)p[(size_t)i * HPAGE + 4096 * i];
}

static int save_cb(void *arg, void *blob, size_t cap)
{
	(void)arg;
	memcpy(blob, "hi!", 3);
	return cap >= 3 ? 3 : -ENOSPC;
}

int main(void)
{
	struct uffd_image_region sr, dr;
	struct uffd_mig_stats ss, ds;
	struct uffd_mig_source *s;
	struct uffd_mig_dest *d;
	uint64_t offset = NHUGE * HPAGE;
	int sv[2], uv[2], i, ret;

	t_require(UFFD_FEAT_MINOR_HUGETLBFS);
	t_require(UFFD_FEAT_MISSING_HUGETLBFS);
	t_require(UFFD_FEAT_WP_ASYNC);
	src = t_map_hugetlb(2 * NHUGE, &dst_fd);
	dst = src + offset;
	for (i = 0; i < NHUGE; i++)
		if (i != 3)
			t_fill(src + (size_t)i * HPAGE, HPAGE, i + 1);
	sr = (struct uffd_image_region){ (uintptr_t)src, NHUGE * HPAGE, HPAGE, UFFD_IMAGE_HUGETLB };
	dr = (struct uffd_image_region){ (uintptr_t)dst, NHUGE * HPAGE, HPAGE, UFFD_IMAGE_HUGETLB };
	t_tcp_pair(&sv[0], &sv[1]);
	t_tcp_pair(&uv[0], &uv[1]);
	UFFD_OPTS(uffd_mig_dest_opts, dop, .regions = &dr, .nregions = 1, .fds = &dst_fd,
		  .offsets = &offset, .stream_fd = sv[1], .urgent_fd = uv[1], .resume = dst_resume,
		  .timeout_ms = 5000);
	d = uffd_mig_dest_start(&dop);
	if (!d)
		FAIL("uffd_mig_dest_start: %s", strerror(errno));
	shrink_pool();
	UFFD_OPTS(uffd_mig_source_opts, sop, .regions = &sr, .nregions = 1, .stream_fd = sv[0],
		  .urgent_fd = uv[0], .mode = UFFD_MIG_HYBRID, .max_rounds = 1, .pause = pause_cb,
		  .resume = resume_cb, .save = save_cb, .timeout_ms = 5000);
	s = uffd_mig_source_start(&sop);
	if (!s) {
		if (errno == EOPNOTSUPP || errno == EINVAL)
			SKIP("no dirty tracking of hugetlbfs memory here: %s", strerror(errno));
		FAIL("uffd_mig_source_start: %s", strerror(errno));
	}
	ret = uffd_mig_source_wait(s, 20000);
	if (!ret)
		ret = uffd_mig_dest_wait(d, 20000);	/* its counters are final then */
	CHECK_OK(uffd_mig_source_stats(s, &ss));
	CHECK_OK(uffd_mig_dest_stats(d, &ds));
	if (ret)
		FAIL("migration: %s (source: %s; destination: %s)", strerror(-ret), ss.message,
		     ds.message);
	CHECK_EQ(ds.pages, NHUGE);
	CHECK_EQ(ds.switchover_pages, 1);
	CHECK_EQ(ds.pages_requested, 1);
	CHECK_EQ(ds.pages_answered, 1);
	CHECK_EQ(ds.pages_continued, NHUGE - 2);	/* not 5, not the zero page */
	CHECK_EQ(ds.pages_local_zero, 1);		/* page 3: no request */
	for (i = 0; i < NHUGE; i++)
		t_check_bytes("huge page", dst + (size_t)i * HPAGE, src + (size_t)i * HPAGE, HPAGE);
	uffd_mig_source_free(s);
	uffd_mig_dest_free(d);
	return T_EXIT_PASS;
}
