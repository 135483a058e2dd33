/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_snap_begin() refuses what it cannot snapshot, with the errno its
 * contract names, and leaves nothing behind:
 *  - EINVAL: opts NULL, path NULL, regions NULL, zero or negative nregions,
 *    more than UFFD_IMAGE_MAX_REGIONS, a region whose address or length is
 *    not a multiple of its page size, a region of length 0, a bad second
 *    region after a good first one, pause without resume and resume
 *    without pause;
 *  - EBUSY: a region already registered on another userfaultfd;
 * after each failure no file is left in the image's directory, and the
 * good region of a failed begin is not left registered: a snapshot of it
 * then succeeds.  uffd_snap_free(NULL) does nothing.
 */
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NPAGES 8

static const char *dir, *path;

static void noop(void *arg)
{
	(void)arg;
}

/* begin must fail with want, leaving no file. */
static void expect_fail(const struct uffd_snap_opts *o, int want, const char *what)
{
	struct uffd_snap *s;

	errno = 0;
	s = uffd_snap_begin(o);
	if (s)
		FAIL("%s: uffd_snap_begin succeeded", what);
	if (errno != want)
		FAIL("%s: errno %s, want %s", what, strerrorname_np(errno),
		     strerrorname_np(want));
	if (t_count_files(dir))
		FAIL("%s: a file was left in %s", what, dir);
}

int main(void)
{
	struct uffd_image_region regs[2], bad;
	struct uffd_snap_opts o;
	struct uffd_snap_stats st;
	struct uffd_snap *s;
	struct uffd other;
	char *area, *area2;

	t_require(UFFD_FEAT_REG_WP_ANON);
	dir = t_img_dir();
	path = t_img_path(0, dir, "bad.img");
	area = t_map_anon(NPAGES * PAGE);
	area2 = t_map_anon(NPAGES * PAGE);
	memset(area, 1, NPAGES * PAGE);
	regs[0] = (struct uffd_image_region){ (uintptr_t)area, NPAGES * PAGE, PAGE,
					      UFFD_IMAGE_ANON };
	regs[1] = (struct uffd_image_region){ (uintptr_t)area2, NPAGES * PAGE, PAGE,
					      UFFD_IMAGE_ANON };
#define GOOD ((struct uffd_snap_opts){ .sz = sizeof(struct uffd_snap_opts), \
					 .path = path, .regions = regs, .nregions = 1 })

	expect_fail(NULL, EINVAL, "opts NULL");
	o = GOOD;
	o.path = NULL;
	expect_fail(&o, EINVAL, "path NULL");
	o = GOOD;
	o.regions = NULL;
	expect_fail(&o, EINVAL, "regions NULL");
	o = GOOD;
	o.nregions = 0;
	expect_fail(&o, EINVAL, "zero regions");
	o.nregions = -1;
	expect_fail(&o, EINVAL, "negative nregions");
	o.nregions = UFFD_IMAGE_MAX_REGIONS + 1;
	expect_fail(&o, EINVAL, "too many regions");

	o = GOOD;
	o.regions = &bad;
	bad = regs[0];
	bad.addr += 512;
	expect_fail(&o, EINVAL, "unaligned address");
	bad = regs[0];
	bad.len -= 512;
	expect_fail(&o, EINVAL, "unaligned length");
	bad = regs[0];
	bad.len = 0;
	expect_fail(&o, EINVAL, "zero length");
	bad = regs[0];
	bad.page_size = HPAGE;		/* 32 KiB is no multiple of 2 MiB */
	expect_fail(&o, EINVAL, "length not a multiple of the page size");
	/* The first region is registered before the second is refused. */
	regs[1].addr += 100;
	o = GOOD;
	o.nregions = 2;
	expect_fail(&o, EINVAL, "good region, then an unaligned one");
	regs[1].addr -= 100;

	o = GOOD;
	o.pause = noop;
	expect_fail(&o, EINVAL, "pause without resume");
	o = GOOD;
	o.resume = noop;
	expect_fail(&o, EINVAL, "resume without pause");

	/* Someone else's write-protect registration. */
	t_open(&other, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);
	CHECK_OK(uffd_register(&other, area2, NPAGES * PAGE, UFFD_REG_WP, NULL));
	o = GOOD;
	o.nregions = 2;
	expect_fail(&o, EBUSY, "a region registered on another userfaultfd");
	CHECK_OK(uffd_unregister(&other, area2, NPAGES * PAGE));
	uffd_close(&other);

	/* Nothing was left registered by the failures: this one works. */
	o = GOOD;
	o.nregions = 2;
	s = uffd_snap_begin(&o);
	if (!s)
		FAIL("uffd_snap_begin after the failures: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 4000));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK_EQ(st.pages, 2 * NPAGES);
	uffd_snap_free(s);
	CHECK_EQ(t_file_size(path) > 0, 1);

	uffd_snap_free(NULL);
	return T_EXIT_PASS;
}
