// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A system call that writes a page an in-thread snapshot has not saved yet
 * fails with EFAULT, as uffd/snapshot.h says, and the snapshot is still
 * exactly the instant.
 *
 * In the resume callback - after the instant, every page protected, the
 * background writer not started yet - read(2) from a pipe into page 5 of
 * the region.  With in_thread the read fails with EFAULT (the kernel
 * raises no SIGBUS for its own access, and does not wait), page 5 keeps
 * its bytes, and the image holds them; once uffd_snap_wait() has returned
 * the same read(2) goes through.  The hand-off snapshot of the same region
 * is run too, where the read(2) in resume is served: it returns the page,
 * the page holds the pipe's bytes, and the image the instant's.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NPAGES		16
#define TARGET		5
#define PIPE_SEED	200

static char *area;
static int pfd[2];
static ssize_t resume_got;
static int resume_errno;

static void feed_pipe(void)
{
	char src[PAGE];

	t_fill(src, PAGE, PIPE_SEED);
	CHECK_EQ(write(pfd[1], src, PAGE), PAGE);
}

static void on_pause(void *arg)
{
}

/* After the instant: the kernel writes a protected page. */
static void on_resume(void *arg)
{
	errno = 0;
	resume_got = read(pfd[0], area + TARGET * PAGE, PAGE);
	resume_errno = errno;
}

static void run(bool in_thread, const char *path)
{
	const char *mode = in_thread ? "in-thread" : "hand-off";
	struct uffd_image_region reg = { 0, NPAGES * PAGE, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .pause = on_pause, .resume = on_resume, .in_thread = in_thread);
	struct uffd_image *img;
	struct uffd_snap *s;
	uint64_t bad = 0, p;
	char buf[PAGE];
	int ret;

	area = t_map_anon(NPAGES * PAGE);
	for (p = 0; p < NPAGES; p++)
		t_fill(area + p * PAGE, PAGE, p + 1);
	reg.addr = (uintptr_t)area;
	CHECK_OK(pipe(pfd));
	feed_pipe();

	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("%s: uffd_snap_begin: %s", mode, strerror(errno));
	if (in_thread) {
		if (resume_got != -1 || resume_errno != EFAULT)
			FAIL("%s: read(2) into a protected page returned %zd (%s), want -1 EFAULT",
			     mode, resume_got, t_errname(-resume_errno));
		CHECK(t_is_filled(area + TARGET * PAGE, PAGE, TARGET + 1));
	} else {
		if (resume_got != (ssize_t)PAGE)
			FAIL("%s: read(2) into a protected page returned %zd (%s), want %lu",
			     mode, resume_got, t_errname(-resume_errno), PAGE);
		CHECK(t_is_filled(area + TARGET * PAGE, PAGE, PIPE_SEED));
	}
	CHECK_OK(uffd_snap_wait(s, 4000));
	uffd_snap_free(s);

	/* Done: the same system call is served as on any memory. */
	if (in_thread) {
		CHECK_EQ(read(pfd[0], area + TARGET * PAGE, PAGE), PAGE);
		CHECK(t_is_filled(area + TARGET * PAGE, PAGE, PIPE_SEED));
	}

	img = uffd_image_open(path, &bad);
	if (!img)
		FAIL("%s: uffd_image_open: %s at %" PRIu64, mode, strerror(errno), bad);
	for (p = 0; p < NPAGES; p++) {
		ret = uffd_image_read_page(img, 0, p, buf);
		if (ret != 1 || !t_is_filled(buf, PAGE, p + 1))
			FAIL("%s: page %" PRIu64 " of the image is not the instant's (read %d)",
			     mode, p, ret);
	}
	uffd_image_close(img);
	close(pfd[0]);
	close(pfd[1]);
	munmap(area, NPAGES * PAGE);
	fprintf(stderr, "%s: read(2) in resume %s\n", mode,
		in_thread ? "failed with EFAULT" : "was served");
}

int main(void)
{
	const char *dir;

	t_require(UFFD_FEAT_REG_WP_ANON);
	t_require_in_thread();
	dir = t_img_dir();
	run(false, t_img_path(0, dir, "hand-off.img"));
	run(true, t_img_path(1, dir, "in-thread.img"));
	return T_EXIT_PASS;
}
