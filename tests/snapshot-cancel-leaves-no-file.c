/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A cancelled snapshot leaves nothing behind and nothing stuck: a snapshot
 * of a 256 MiB checker table (2 writers running, half the pages filled)
 * cancelled right after uffd_snap_begin() returns 0, ends with the error
 * -ECANCELED in its stats before the writer thread streamed every page,
 * and then neither the image nor any NAME.tmp-* file exists in the
 * directory; the writers keep writing (the write counter grows, and a
 * pause - which needs every writer to reach its park point - completes),
 * and after uffd_snap_free() no page of the table is write-protected any
 * more (pagemap bit 57, uffd-wp, clear on every page).  Then the same
 * with the copies made by the writing threads (in_thread) and a buffer of
 * one group, which they fill at once: a writer asleep waiting for the
 * buffer when the cancel comes must give up and let its write through
 * (the writer thread, which no longer frees slots, waits for its fault to
 * return before it unregisters).
 */
#include <fcntl.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/checker-pause.h"
#include "lib/harness.h"
#include "lib/image-files.h"

#define TABLE		(256UL << 20)
#define NPAGES		(TABLE / PAGE)
#define PM_UFFD_WP	(1ULL << 57)

/* Fail if any page of [area, area + TABLE) is still uffd-wp. */
static void expect_no_uffd_wp(const char *area)
{
	size_t chunk = 4096, p, i;
	uint64_t *e = malloc(chunk * 8);
	int fd = open("/proc/self/pagemap", O_RDONLY);

	CHECK(e && fd >= 0);
	for (p = 0; p < NPAGES; p += chunk) {
		CHECK_EQ(pread(fd, e, chunk * 8, ((uintptr_t)area / PAGE + p) * 8),
			 (ssize_t)(chunk * 8));
		for (i = 0; i < chunk; i++)
			if (e[i] & PM_UFFD_WP)
				FAIL("page %zu still uffd-wp after uffd_snap_free", p + i);
	}
	close(fd);
	free(e);
}

static void run(const char *dir, bool in_thread)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 3,
		  .fill = 0.5);
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .regions = &reg, .nregions = 1,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb, .in_thread = in_thread,
		  .buffer_bytes = in_thread ? PAGE : 0);
	struct uffd_snap_stats st;
	struct uffd_checker *c;
	struct uffd_snap *s;
	const char *path;

	path = t_img_path(0, dir, in_thread ? "cancelled-inthread.img" : "cancelled.img");
	c = t_checker_table(&co, UFFD_IMAGE_ANON, &reg);
	so.path = path;
	so.arg = c;
	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(20);

	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_cancel(s));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(st.done);
	CHECK_EQ(st.error, -ECANCELED);
	CHECK_EQ(uffd_snap_wait(s, 0), -ECANCELED);
	CHECK_EQ(st.pages, NPAGES);
	/* Cancelled, not finished first: the writer thread stopped early
	 * (the fault handler, which saves whole groups of pages, may well
	 * have saved the rest: the writers touch every page at once). */
	CHECK(st.written_background < st.pages_present);

	/* Neither the image nor its temporary file. */
	CHECK_EQ(access(path, F_OK), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(t_count_files(dir), 0);

	/* The writers run on, every one of them. */
	t_checker_writes_within(c, 2000);
	t_checker_pause_within(c, 2000);	/* none is blocked in a fault */
	uffd_checker_resume(c);

	uffd_snap_free(s);
	t_checker_writes_within(c, 2000);
	expect_no_uffd_wp(uffd_checker_area(c));
	CHECK_EQ(t_count_files(dir), 0);

	uffd_checker_free(c);
}

int main(void)
{
	const char *dir;

	t_require(UFFD_FEAT_REG_WP_ANON);
	dir = t_img_dir();
	run(dir, false);
	if (t_in_thread_ok())
		run(dir, true);
	return T_EXIT_PASS;
}
