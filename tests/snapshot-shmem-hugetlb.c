/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live snapshots of shared memory: shmem and hugetlbfs.
 *  - shmem: a checker table in a memfd (UFFD_CHECKER_SHMEM, 2 writers
 *    running through the snapshot) gives an image that verifies page by
 *    page against the versions at the instant, with every present page
 *    saved exactly once;
 *  - hugetlbfs: 4 reserved 2 MiB pages, each filled with a pattern; right
 *    after the instant the test overwrites them all with other patterns
 *    (last page first, against the writer thread's address order, so at
 *    least one write meets a protected page) while the image is written.
 *    The image's region has page_size 2 MiB and every page holds its
 *    pattern from before those writes; the writes themselves all landed.  Skipped, with a note, when hugetlb pages
 *    cannot be reserved or write-protected here (in a child, whose exit
 *    gives the reserved pages back).
 */
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE		(32UL << 20)
#define HUGE_PAGES	4
#define NEW_SEED	100	/* the patterns written after the instant */

static void shmem_table(const char *path)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2,
		  .mem = UFFD_CHECKER_SHMEM, .seed = 13, .fill = 0.7);
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .buffer_bytes = 1 << 20,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb);
	struct uffd_image_chain *chain;
	struct uffd_snap_stats st;
	struct uffd_checker *c = uffd_checker_new(&co);
	struct uffd_snap *s;
	uint64_t before;
	char msg[256];

	if (!c)
		FAIL("uffd_checker_new(shmem): %s", strerror(errno));
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), TABLE, PAGE,
					  UFFD_IMAGE_SHMEM };
	so.arg = c;
	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(10);
	before = uffd_checker_writes(c);
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin(shmem): %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 4000));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(uffd_checker_writes(c) > before);
	uffd_checker_pause(c);
	CHECK(st.done);
	CHECK_EQ(st.error, 0);
	CHECK_EQ(st.pages, TABLE / PAGE);
	CHECK_EQ(st.copied_before_write + st.written_background + st.sync_writes,
		 st.pages_present);
	CHECK(st.copied_before_write > 0);
	uffd_snap_free(s);

	chain = uffd_image_chain_open(path, NULL);
	if (!chain)
		FAIL("uffd_image_chain_open: %s", strerror(errno));
	if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
		FAIL("shmem image is not the instant: %s", msg);
	uffd_image_chain_close(chain);
	uffd_checker_free(c);
}

/*
 * Uninstrumented like the harness's accesses: a store blocked in a
 * write-protect fault is not a race with the copy made before it lands.
 */
__attribute__((no_sanitize("thread"), noinline))
static void overwrite(char *area)
{
	int i;

	for (i = HUGE_PAGES - 1; i >= 0; i--)
		t_fill(area + i * HPAGE, HPAGE, NEW_SEED + i);
}

static void no_pause(void *arg)
{
	(void)arg;
}

/*
 * Called at the instant, before the snapshot's writer thread exists: this
 * write is sure to meet a protected page (the fault handler copies it).
 */
__attribute__((no_sanitize("thread"), noinline))
static void write_last_page_at_instant(void *area)
{
	t_fill((char *)area + (HUGE_PAGES - 1) * HPAGE, HPAGE, NEW_SEED + HUGE_PAGES - 1);
}

static int hugetlb_region(const char *path)
{
	struct uffd_image_region reg = { 0, HUGE_PAGES * HPAGE, HPAGE, UFFD_IMAGE_HUGETLB };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .pause = no_pause, .resume = write_last_page_at_instant);
	struct uffd_image_info info;
	struct uffd_snap_stats st;
	char *area;
	struct uffd_image *img;
	struct uffd_snap *s;
	char *buf = malloc(HPAGE);
	uint64_t bad = 0;
	int fd, i;

	CHECK(buf);
	if (uffd_feature_supported(UFFD_FEAT_REG_WP_HUGETLB) != 1)
		SKIP("no write-protect on hugetlbfs here");
	area = t_map_hugetlb(HUGE_PAGES, &fd);
	for (i = 0; i < HUGE_PAGES; i++)
		t_fill(area + i * HPAGE, HPAGE, i + 1);
	reg.addr = (uintptr_t)area;
	so.arg = area;

	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin(hugetlb): %s", strerror(errno));
	/* At once: the writer thread streams from page 0, this starts at the end. */
	overwrite(area);
	CHECK_OK(uffd_snap_wait(s, 4000));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(st.done);
	CHECK_EQ(st.error, 0);
	CHECK_EQ(st.pages, HUGE_PAGES);
	CHECK_EQ(st.pages_present, HUGE_PAGES);
	CHECK_EQ(st.zero_pages, 0);
	CHECK_EQ(st.copied_before_write + st.written_background + st.sync_writes,
		 HUGE_PAGES);
	/* A write met a protected page (at least the one at the instant). */
	CHECK(st.copied_before_write + st.sync_writes >= 1);
	uffd_snap_free(s);
	for (i = 0; i < HUGE_PAGES; i++)
		if (!t_is_filled(area + i * HPAGE, HPAGE, NEW_SEED + i))
			FAIL("the write to huge page %d after the instant was lost", i);

	img = uffd_image_open(path, &bad);
	if (!img)
		FAIL("uffd_image_open: %s at %" PRIu64, strerror(errno), bad);
	CHECK_OK(uffd_image_verify(img, &bad));
	CHECK_OK(uffd_image_info(img, &info));
	CHECK_EQ(info.nregions, 1);
	CHECK_EQ(info.regions[0].addr, (uintptr_t)area);
	CHECK_EQ(info.regions[0].len, HUGE_PAGES * HPAGE);
	CHECK_EQ(info.regions[0].page_size, HPAGE);
	CHECK_EQ(info.regions[0].flags, UFFD_IMAGE_HUGETLB);
	CHECK_EQ(info.pages, HUGE_PAGES);
	for (i = 0; i < HUGE_PAGES; i++) {
		CHECK_EQ(uffd_image_read_page(img, 0, i, buf), 1);
		if (!t_is_filled(buf, HPAGE, i + 1))
			FAIL("huge page %d in the image is not its contents at the instant%s",
			     i, t_is_filled(buf, HPAGE, NEW_SEED + i) ?
			     " (it holds the later write)" : "");
	}
	uffd_image_close(img);
	free(buf);
	return T_EXIT_PASS;
}

int main(void)
{
	const char *dir;
	bool shmem = uffd_feature_supported(UFFD_FEAT_REG_WP_SHMEM) == 1;
	pid_t pid;
	int rc;

	if (!shmem && uffd_feature_supported(UFFD_FEAT_REG_WP_HUGETLB) != 1)
		SKIP("no write-protect on shmem or hugetlbfs here");
	dir = t_img_dir();
	if (shmem)
		shmem_table(t_img_path(0, dir, "shmem.img"));
	else
		fprintf(stderr, "note: shmem part skipped (no write-protect on shmem)\n");

	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		/* exit, not _exit: its atexit gives the reserved pages back */
		exit(hugetlb_region(t_img_path(1, dir, "hugetlb.img")));
	rc = t_wait_child(pid, 4000);
	if (rc == T_EXIT_SKIP && shmem)
		fprintf(stderr, "note: hugetlb part skipped (see the SKIP line above)\n");
	else if (rc != T_EXIT_PASS)
		return rc;
	return T_EXIT_PASS;
}
