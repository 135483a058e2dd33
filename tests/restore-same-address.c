/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Restoring an image without UFFD_RESTORE_ANYWHERE puts the memory back
 * where it was.  A 16 MiB mapping at a fixed address (data pages with a
 * pattern each, every fifth page never touched) is snapshotted with
 * nothing writing, then unmapped; then:
 *  - eager: uffd_restore_open(path, 0) maps region 0 at the same address
 *    with the same contents (holes read as zeros); stats: pages = the
 *    region's, zero = the holes, nothing faulted or prefetched, done; wait
 *    returns 0; after uffd_restore_close(r, false) the memory stays.
 *  - lazy (unmapped again first): the region is at the same address; the
 *    first read of a page in the middle returns that page's bytes while the
 *    prefetch (which walks from page 0) has not reached it, served by a
 *    fault (stats.faulted is 1 right after; if the prefetch won the race
 *    the attempt is repeated); uffd_restore_wait() returns 0; then exactly
 *    one page was faulted and every other recorded one prefetched
 *    (faulted + prefetched = pages - holes: holes are left to the kernel,
 *    which fills them with zeros once the prefetch unregisters the
 *    region), zero = the holes, and every page reads right.
 *  - something mapped at one page inside the range: NULL with errno
 *    EEXIST, eagerly and lazily; that page is untouched, and nothing of
 *    the image was left mapped around it.
 * All in a child, so that no thread of the test's own maps into the hole
 * the restore is to fill.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"

/* Low enough to be application memory under the sanitizers too. */
#define KNOWN_ADDR	((char *)0x1000000000UL)
#define NPAGES		4096
#define LEN		(NPAGES * PAGE)
#define MIDDLE		(NPAGES / 2)	/* a data page: 2048 % 5 != 4 */
#define ATTEMPTS	5

static bool hole(size_t p)
{
	return p % 5 == 4;
}

static void check_contents(const char *mem, const char *what)
{
	size_t p;

	for (p = 0; p < NPAGES; p++)
		if (hole(p) ? !t_is_zero(mem + p * PAGE, PAGE) :
			      !t_is_filled(mem + p * PAGE, PAGE, p + 1))
			FAIL("%s: page %zu differs", what, p);
}

static void *map_fixed(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (p != addr) {	/* a kernel without NOREPLACE */
		munmap(p, len);
		return NULL;
	}
	return p;
}

static void take_snapshot(const char *path, size_t *holes)
{
	struct uffd_image_region reg = { (uintptr_t)KNOWN_ADDR, LEN, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1);
	struct uffd_snap *s;
	char *area = map_fixed(KNOWN_ADDR, LEN);
	size_t p;

	if (!area)
		SKIP("cannot map at %p: %s", (void *)KNOWN_ADDR, strerror(errno));
	CHECK_OK(madvise(area, LEN, MADV_NOHUGEPAGE) ? -errno : 0);
	for (p = 0, *holes = 0; p < NPAGES; p++) {
		if (hole(p))
			(*holes)++;
		else
			t_fill(area + p * PAGE, PAGE, p + 1);
	}
	s = uffd_snap_begin(&so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, 4000));
	uffd_snap_free(s);
	CHECK_OK(munmap(area, LEN));
}

static void eager(const char *path, size_t holes)
{
	struct uffd_restore_stats st;
	struct uffd_restore *r = uffd_restore_open(path, 0);

	if (!r)
		FAIL("eager uffd_restore_open: %s", strerror(errno));
	CHECK_EQ(uffd_restore_regions(r), 1);
	CHECK_EQ((uintptr_t)uffd_restore_addr(r, 0), (uintptr_t)KNOWN_ADDR);
	CHECK(!uffd_restore_addr(r, 1));
	CHECK_OK(uffd_restore_wait(r, 0));
	CHECK_OK(uffd_restore_stats(r, &st));
	CHECK(st.done);
	CHECK_EQ(st.pages, NPAGES);
	CHECK_EQ(st.zero, holes);
	CHECK_EQ(st.faulted, 0);
	CHECK_EQ(st.prefetched, 0);
	check_contents(KNOWN_ADDR, "eager");
	uffd_restore_close(r, false);
	check_contents(KNOWN_ADDR, "eager, after close");
	CHECK_OK(munmap(KNOWN_ADDR, LEN));
}

/* The first touch of MIDDLE: true if a fault served it. */
static bool touch_middle_first(struct uffd_restore *r)
{
	struct uffd_restore_stats st;
	const char *page = KNOWN_ADDR + MIDDLE * PAGE;

	if (!t_is_filled(page, PAGE, MIDDLE + 1))
		FAIL("lazy: the first read of page %d returned other bytes", MIDDLE);
	CHECK_OK(uffd_restore_stats(r, &st));
	CHECK(st.faulted <= 1);
	return st.faulted == 1;
}

static void lazy(const char *path, size_t holes)
{
	struct uffd_restore_stats st;
	struct uffd_restore *r;
	int attempt;

	for (attempt = 1;; attempt++) {
		r = uffd_restore_open(path, UFFD_RESTORE_LAZY);
		if (!r)
			FAIL("lazy uffd_restore_open: %s", strerror(errno));
		CHECK_EQ((uintptr_t)uffd_restore_addr(r, 0), (uintptr_t)KNOWN_ADDR);
		if (touch_middle_first(r))
			break;
		if (attempt == ATTEMPTS)
			FAIL("the prefetch reached page %d first %d times", MIDDLE, ATTEMPTS);
		uffd_restore_close(r, true);
	}
	CHECK_OK(uffd_restore_wait(r, 4000));
	CHECK_OK(uffd_restore_stats(r, &st));
	check_contents(KNOWN_ADDR, "lazy");
	CHECK(st.done);
	CHECK_EQ(st.pages, NPAGES);
	CHECK_EQ(st.faulted, 1);
	CHECK_EQ(st.prefetched, NPAGES - holes - 1);
	uffd_restore_close(r, false);
	check_contents(KNOWN_ADDR, "lazy, after close");
	CHECK_OK(munmap(KNOWN_ADDR, LEN));
	/* Last, as the contents matter more: holes come back as zeros. */
	if (st.zero != holes)
		FAIL("lazy: stats.zero %" PRIu64 ", want %zu (the holes; an eager "
		     "restore of the same image says %zu)", st.zero, holes, holes);
}

static void occupied(const char *path)
{
	char *squatter = map_fixed(KNOWN_ADDR + 7 * PAGE, PAGE), *probe;
	unsigned flags[2] = { 0, UFFD_RESTORE_LAZY };
	int i;

	CHECK(squatter);
	memset(squatter, 0x5a, PAGE);
	for (i = 0; i < 2; i++) {
		errno = 0;
		if (uffd_restore_open(path, flags[i]))
			FAIL("%s restore over a mapping succeeded", i ? "lazy" : "eager");
		CHECK_EQ(errno, EEXIST);
	}
	CHECK_EQ(squatter[0], 0x5a);
	CHECK_EQ(squatter[PAGE - 1], 0x5a);
	/* Nothing left behind before or after the squatter. */
	probe = map_fixed(KNOWN_ADDR, 7 * PAGE);
	CHECK(probe);
	CHECK_OK(munmap(probe, 7 * PAGE));
	probe = map_fixed(KNOWN_ADDR + 8 * PAGE, LEN - 8 * PAGE);
	CHECK(probe);
	CHECK_OK(munmap(probe, LEN - 8 * PAGE));
	CHECK_OK(munmap(squatter, PAGE));
}

static int run(const char *path)
{
	size_t holes;

	take_snapshot(path, &holes);
	eager(path, holes);
	occupied(path);
	lazy(path, holes);
	return T_EXIT_PASS;
}

int main(void)
{
	const char *path;
	pid_t pid;

	t_require(UFFD_FEAT_REG_WP_ANON);
	path = t_img_path(0, t_img_dir(), "same.img");
	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		_exit(run(path));
	return t_wait_child(pid, 4500);
}
