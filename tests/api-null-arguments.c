/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every function libuffd exports refuses a NULL handle and a NULL
 * out-pointer the same way (the rule of libuffd(3), "Bad arguments"):
 *   - a function returning int or long returns -EINVAL;
 *   - a function returning a pointer returns NULL with errno EINVAL;
 *   - a function that frees or closes does nothing (as free(NULL)), and
 *     returns 0 if it returns int; other void functions do nothing;
 *   - an accessor returning a size, a count or a mask returns 0 (and a
 *     tracker's backend, UFFD_TRACK_AUTO, which no tracker has);
 * and a few neighbours of NULL are checked too (an unknown enum value, a
 * negative pid, a zero-sized buffer, an index out of range).  Where a
 * refused call could have had an effect (the bytes done, the ioctls mask,
 * a struct uffd's fd) the test checks that it had none.
 *
 * The list of functions is not this file's: it is read from the dynamic
 * symbol table of the libuffd.so built next to this program.  An exported
 * function missing from the table below fails the test (so a new function
 * gets its bad-argument checks), and so does an entry for a function that
 * is not exported.  Each entry runs in a child process of its own, so a
 * crash (the typical failure: a NULL dereference) names the function and
 * the other entries still run.
 */
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/checker.h>
#include <uffd/checkpoint.h>
#include <uffd/handler.h>
#include <uffd/image.h>
#include <uffd/migrate.h>
#include <uffd/pager.h>
#include <uffd/serve.h>
#include <uffd/snapshot.h>
#include <uffd/track.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define CHILD_MS	30000
#define MAX_EXPORTS	1024
#define BAD_ENUM	999
#define DONE_POISON	12345	/* an out-value the call must overwrite */

/* A pointer-returning call: NULL with errno EINVAL. */
#define CHECK_NULL_EINVAL(call) do {					\
	const void *_p;							\
	errno = 0;							\
	_p = (const void *)(call);					\
	if (_p || errno != EINVAL)					\
		FAIL("%s: got %p, errno %s; want NULL, EINVAL", #call,	\
		     _p, errno ? strerrorname_np(errno) : "0");		\
} while (0)

#define CHECK_EINVAL(call) CHECK_EQ((call), -EINVAL)

/* ---- fixtures: real handles for the NULL out-pointer cases ---------------- */

static const char *fixture_image(void)
{
	static const char *path;
	struct uffd_image_region reg = { 0x10000000, 4 * PAGE, PAGE, UFFD_IMAGE_ANON };
	struct uffd_image_writer *w;
	char page[PAGE];

	if (path)
		return path;
	path = t_img_path(0, t_img_dir(), "fixture.img");
	w = uffd_image_create(path, &reg, 1, NULL, 0);
	if (!w)
		FAIL("uffd_image_create: %s", strerror(errno));
	memset(page, 7, sizeof(page));
	CHECK_OK(uffd_image_put_page(w, 0, 1, page));
	CHECK_OK(uffd_image_commit(w));
	return path;
}

static struct uffd_image *fixture_open_image(void)
{
	struct uffd_image *img = uffd_image_open(fixture_image(), NULL);

	if (!img)
		FAIL("uffd_image_open: %s", strerror(errno));
	return img;
}

static struct uffd_image_chain *fixture_chain(void)
{
	struct uffd_image_chain *c = uffd_image_chain_open(fixture_image(), NULL);

	if (!c)
		FAIL("uffd_image_chain_open: %s", strerror(errno));
	return c;
}

static struct uffd_handler *fixture_handler(struct uffd *u)
{
	struct uffd_handler *h;

	t_open(u, 0, 0);
	h = uffd_handler_new(u, NULL);
	if (!h)
		FAIL("uffd_handler_new: %s", strerror(errno));
	return h;
}

static struct uffd_tracker *fixture_tracker(void)
{
	struct uffd_tracker *t = uffd_track_new(NULL);

	if (!t)
		FAIL("uffd_track_new: %s", strerror(errno));
	CHECK_OK(uffd_track_add(t, t_map_anon(4 * PAGE), 4 * PAGE));
	return t;
}

static struct uffd_checker *fixture_checker(void)
{
	UFFD_OPTS(uffd_checker_opts, o, .bytes = 16 * PAGE, .writers = 1);
	struct uffd_checker *c = uffd_checker_new(&o);

	if (!c)
		FAIL("uffd_checker_new: %s", strerror(errno));
	return c;
}

static struct uffd_pager *fixture_pager(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 16 * PAGE);
	struct uffd_pager *p = uffd_pager_new(&o);

	if (!p && errno == EOPNOTSUPP)
		SKIP("no userfaultfd write-protect: no pager");
	if (!p)
		FAIL("uffd_pager_new: %s", strerror(errno));
	return p;
}

/* ---- core: <uffd/uffd.h> -------------------------------------------------- */

static void check_open(void)
{
	struct uffd u;

	CHECK_EINVAL(uffd_open(NULL, 0, 0, 0));
	u.fd = 5;
	CHECK_EINVAL(uffd_open(&u, 0, 0, 1u << 30));	/* unknown flag */
	CHECK_EQ(u.fd, -1);
	CHECK_EINVAL(uffd_open(&u, 0, 0, UFFD_VIA_DEV | UFFD_VIA_SYSCALL));
	CHECK_EQ(u.fd, -1);
}

static void check_adopt(void)
{
	struct uffd u;

	CHECK_EINVAL(uffd_adopt(NULL, 0, 0));
	CHECK_EQ(uffd_adopt(&u, -1, 0), -EBADF);
	CHECK_EQ(u.fd, -1);
}

static void check_close(void)
{
	struct uffd u = { .fd = -1 };

	uffd_close(NULL);
	uffd_close(&u);
	CHECK_EQ(u.fd, -1);
}

static void check_describe_missing(void)
{
	char buf[8] = "x";

	CHECK_NULL_EINVAL(uffd_describe_missing(1, NULL, 16));
	CHECK_NULL_EINVAL(uffd_describe_missing(1, buf, 0));
	CHECK_EQ(buf[0], 'x');
}

static void check_feature_supported(void)
{
	CHECK_EINVAL(uffd_feature_supported((enum uffd_feature)BAD_ENUM));
	CHECK_EINVAL(uffd_feature_supported((enum uffd_feature)-1));
}

static void check_feature_name(void)
{
	CHECK_NULL_EINVAL(uffd_feature_name((enum uffd_feature)BAD_ENUM));
	CHECK_NULL_EINVAL(uffd_feature_name(UFFD_FEAT_KERNEL_BITS_END));
}

static void check_kernel_features(void)
{
	/* No arguments: nothing to refuse; only kernel bits come back. */
	CHECK_EQ(uffd_kernel_features() >> UFFD_FEAT_KERNEL_BITS_END, 0);
}

static void check_probe_reset(void)
{
	uffd_probe_reset();	/* no arguments */
	CHECK_EINVAL(uffd_feature_supported(UFFD_FEAT_COUNT));
}

static void check_tracking_backend(void)
{
	CHECK(uffd_tracking_backend() != UFFD_TRACK_AUTO);	/* no arguments */
}

static void check_track_backend_name(void)
{
	CHECK_NULL_EINVAL(uffd_track_backend_name((enum uffd_track_backend)BAD_ENUM));
}

static void check_page_size(void)
{
	CHECK_EQ(uffd_page_size(), (size_t)sysconf(_SC_PAGESIZE));	/* no arguments */
}

static void check_register(void)
{
	uint64_t ioctls = DONE_POISON;
	char *area = t_map_anon(PAGE);

	CHECK_EINVAL(uffd_register(NULL, area, PAGE, UFFD_REG_MISSING, &ioctls));
	CHECK_EQ(ioctls, 0);
}

static void check_unregister(void)
{
	CHECK_EINVAL(uffd_unregister(NULL, t_map_anon(PAGE), PAGE));
}

/* The resolve calls: NULL uffd, and *done says nothing was done. */
static void check_copy(void)
{
	char *area = t_map_anon(2 * PAGE);
	size_t done = DONE_POISON;

	CHECK_EINVAL(uffd_copy(NULL, area, area + PAGE, PAGE, 0, &done));
	CHECK_EQ(done, 0);
}

static void check_zeropage(void)
{
	size_t done = DONE_POISON;

	CHECK_EINVAL(uffd_zeropage(NULL, t_map_anon(PAGE), PAGE, 0, &done));
	CHECK_EQ(done, 0);
}

static void check_continue(void)
{
	size_t done = DONE_POISON;

	CHECK_EINVAL(uffd_continue(NULL, t_map_anon(PAGE), PAGE, 0, &done));
	CHECK_EQ(done, 0);
}

static void check_move(void)
{
	char *area = t_map_anon(2 * PAGE);
	size_t done = DONE_POISON;

	CHECK_EINVAL(uffd_move(NULL, area, area + PAGE, PAGE, 0, &done));
	CHECK_EQ(done, 0);
}

static void check_poison(void)
{
	size_t done = DONE_POISON;

	CHECK_EINVAL(uffd_poison(NULL, t_map_anon(PAGE), PAGE, 0, &done));
	CHECK_EQ(done, 0);
}

static void check_writeprotect(void)
{
	CHECK_EINVAL(uffd_writeprotect(NULL, t_map_anon(PAGE), PAGE, true, 0));
}

static void check_wake(void)
{
	CHECK_EINVAL(uffd_wake(NULL, t_map_anon(PAGE), PAGE));
}

static void check_read_events(void)
{
	struct uffd_event ev;
	struct uffd u;

	CHECK_EINVAL(uffd_read_events(NULL, &ev, 1, 0));
	t_open(&u, 0, 0);
	CHECK_EINVAL(uffd_read_events(&u, NULL, 1, 0));
	CHECK_EINVAL(uffd_read_events(&u, &ev, 0, 0));
	uffd_close(&u);
}

static void check_event_name(void)
{
	CHECK_NULL_EINVAL(uffd_event_name((enum uffd_event_type)BAD_ENUM));
	CHECK_EQ(strcmp(uffd_event_name(UFFD_EV_UNKNOWN), "unknown"), 0);
}

static void check_fault_kind_name(void)
{
	CHECK_NULL_EINVAL(uffd_fault_kind_name((enum uffd_fault_kind)BAD_ENUM));
}

static void check_pagemap_open(void)
{
	CHECK_EINVAL(uffd_pagemap_open(-1));
}

static void check_pagemap_scan(void)
{
	struct uffd_scan s = { .addr = t_map_anon(PAGE), .len = PAGE,
			       .category_mask = UFFD_PAGE_PRESENT,
			       .return_mask = UFFD_PAGE_PRESENT };
	struct uffd_range out[4];
	int fd = uffd_pagemap_open(0);

	CHECK(fd >= 0);
	CHECK_EINVAL(uffd_pagemap_scan(fd, NULL, out, 4));
	CHECK_EINVAL(uffd_pagemap_scan(fd, &s, NULL, 4));
	CHECK_EINVAL(uffd_pagemap_scan(fd, &s, out, -1));
	close(fd);
}

static void check_pagemap_written(void)
{
	int fd = uffd_pagemap_open(0);

	CHECK(fd >= 0);
	CHECK_EINVAL(uffd_pagemap_written(fd, t_map_anon(PAGE), PAGE, false, NULL, 4, NULL));
	close(fd);
}

/* ---- runtime: <uffd/handler.h> -------------------------------------------- */

static void check_handler_new(void)
{
	struct uffd u = { .fd = -1 };

	CHECK_NULL_EINVAL(uffd_handler_new(NULL, NULL));
	errno = 0;
	CHECK(!uffd_handler_new(&u, NULL));	/* a closed uffd */
	CHECK_EQ(errno, EBADF);
	/* Options out of range: tests/handler-opts-out-of-range.c. */
}

static void check_handler_add(void)
{
	CHECK_NULL_EINVAL(uffd_handler_add(NULL, t_map_anon(PAGE), PAGE, 0,
					   UFFD_REG_MISSING, NULL, NULL));
}

static void check_handler_remove(void) { CHECK_EINVAL(uffd_handler_remove(NULL)); }
static void check_handler_start(void) { CHECK_EINVAL(uffd_handler_start(NULL)); }
static void check_handler_stop(void) { CHECK_EINVAL(uffd_handler_stop(NULL)); }
static void check_handler_sync(void) { CHECK_EINVAL(uffd_handler_sync(NULL)); }
static void check_handler_fd(void) { CHECK_EINVAL(uffd_handler_fd(NULL)); }
static void check_handler_dispatch(void) { CHECK_EINVAL(uffd_handler_dispatch(NULL)); }
static void check_handler_free(void) { uffd_handler_free(NULL); }

static void check_handler_stats(void)
{
	struct uffd_handler_stats st;
	struct uffd u;
	struct uffd_handler *h;

	CHECK_EINVAL(uffd_handler_stats(NULL, &st));
	h = fixture_handler(&u);
	CHECK_EINVAL(uffd_handler_stats(h, NULL));
	uffd_handler_free(h);
	uffd_close(&u);
}

static void check_stats_quantile_ns(void)
{
	struct uffd_handler_stats st = { .hist = { [3] = 1 } };

	CHECK_EQ(uffd_stats_quantile_ns(NULL, 0.5), 0);
	CHECK_EQ(uffd_stats_quantile_ns(&st, NAN), 0);
	CHECK_EQ(uffd_stats_quantile_ns(&st, -1), 0);
	/* The documented edges: 0 is the first sample's bucket, above 1
	 * (however far) is past every bucket. */
	CHECK_EQ(uffd_stats_quantile_ns(&st, 0), 2ULL << 3);
	CHECK_EQ(uffd_stats_quantile_ns(&st, 1), 2ULL << 3);
	CHECK_EQ(uffd_stats_quantile_ns(&st, 1e300), 2ULL << (UFFD_HIST_BUCKETS - 1));
}

static void check_region_addr(void) { CHECK_NULL_EINVAL(uffd_region_addr(NULL)); }
static void check_region_data(void) { CHECK_NULL_EINVAL(uffd_region_data(NULL)); }
static void check_region_set_data(void) { CHECK_EINVAL(uffd_region_set_data(NULL, NULL)); }
static void check_region_uffd(void) { CHECK_NULL_EINVAL(uffd_region_uffd(NULL)); }
static void check_region_len(void) { CHECK_EQ(uffd_region_len(NULL), 0); }
static void check_region_page_size(void) { CHECK_EQ(uffd_region_page_size(NULL), 0); }
static void check_region_read_seq(void) { CHECK_EQ(uffd_region_read_seq(NULL), 0); }

static void check_region_copy(void)
{
	char *area = t_map_anon(2 * PAGE);

	CHECK_EINVAL(uffd_region_copy(NULL, area, area + PAGE, PAGE));
}

static void check_region_copy_wp(void)
{
	char *area = t_map_anon(2 * PAGE);

	CHECK_EINVAL(uffd_region_copy_wp(NULL, area, area + PAGE, PAGE));
}

static void check_region_zero(void)
{
	CHECK_EINVAL(uffd_region_zero(NULL, t_map_anon(PAGE), PAGE));
}

/* The fault helpers: a NULL fault, and a fault that names no region. */
static struct uffd_fault no_region_fault(void)
{
	static char page[PAGE] __attribute__((aligned(PAGE)));

	return (struct uffd_fault){ .addr = page, .exact = (uintptr_t)page };
}

static void check_fault_copy(void)
{
	struct uffd_fault f = no_region_fault();
	char src[PAGE] = { 0 };

	CHECK_EINVAL(uffd_fault_copy(NULL, src, PAGE));
	CHECK_EINVAL(uffd_fault_copy(&f, src, PAGE));
}

static void check_fault_copy_at(void)
{
	struct uffd_fault f = no_region_fault();
	char src[PAGE] = { 0 };

	CHECK_EINVAL(uffd_fault_copy_at(NULL, f.addr, src, PAGE));
	CHECK_EINVAL(uffd_fault_copy_at(&f, f.addr, src, PAGE));
}

static void check_fault_copy_wp(void)
{
	struct uffd_fault f = no_region_fault();
	char src[PAGE] = { 0 };

	CHECK_EINVAL(uffd_fault_copy_wp(NULL, f.addr, src, PAGE));
	CHECK_EINVAL(uffd_fault_copy_wp(&f, f.addr, src, PAGE));
}

static void check_fault_zero(void)
{
	struct uffd_fault f = no_region_fault();

	CHECK_EINVAL(uffd_fault_zero(NULL, PAGE));
	CHECK_EINVAL(uffd_fault_zero(&f, PAGE));
}

static void check_fault_continue(void)
{
	struct uffd_fault f = no_region_fault();

	CHECK_EINVAL(uffd_fault_continue(NULL, PAGE));
	CHECK_EINVAL(uffd_fault_continue(&f, PAGE));
}

static void check_fault_unprotect(void)
{
	struct uffd_fault f = no_region_fault();

	CHECK_EINVAL(uffd_fault_unprotect(NULL, PAGE));
	CHECK_EINVAL(uffd_fault_unprotect(&f, PAGE));
}

/* ---- dirty tracking: <uffd/track.h> --------------------------------------- */

static void check_track_new(void)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = (enum uffd_track_backend)BAD_ENUM);

	CHECK_NULL_EINVAL(uffd_track_new(&o));
}

static void check_track_add(void)
{
	CHECK_EINVAL(uffd_track_add(NULL, t_map_anon(PAGE), PAGE));
}

static void check_track_backend_of(void)
{
	CHECK_EQ(uffd_track_backend_of(NULL), UFFD_TRACK_AUTO);
}

static void check_track_pages(void) { CHECK_EQ(uffd_track_pages(NULL), 0); }
static void check_track_reset(void) { CHECK_EINVAL(uffd_track_reset(NULL)); }
static void check_track_free(void) { uffd_track_free(NULL); }
static void check_track_result_free(void) { uffd_track_result_free(NULL); }

static void check_track_collect(void)
{
	struct uffd_track_result res = { 0 };
	struct uffd_tracker *t;

	CHECK_EINVAL(uffd_track_collect(NULL, 0, &res));
	t = fixture_tracker();
	CHECK_EINVAL(uffd_track_collect(t, 0, NULL));
	uffd_track_free(t);
}

static void check_track_collect_bitmap(void)
{
	uint64_t bits = 0, pages = DONE_POISON;
	struct uffd_tracker *t;

	CHECK_EINVAL(uffd_track_collect_bitmap(NULL, 0, &bits, 64, &pages));
	t = fixture_tracker();
	CHECK_EINVAL(uffd_track_collect_bitmap(t, 0, NULL, 64, &pages));
	CHECK_EQ(pages, DONE_POISON);
	uffd_track_free(t);
}

static void check_track_stats(void)
{
	struct uffd_track_stats st;
	struct uffd_tracker *t;

	CHECK_EINVAL(uffd_track_stats(NULL, &st));
	t = fixture_tracker();
	CHECK_EINVAL(uffd_track_stats(t, NULL));
	uffd_track_free(t);
}

/* ---- images: <uffd/image.h> ----------------------------------------------- */

static void check_image_create(void)
{
	struct uffd_image_region reg = { 0x10000000, PAGE, PAGE, 0 };
	const char *dir = t_img_dir();

	CHECK_NULL_EINVAL(uffd_image_create(NULL, &reg, 1, NULL, 0));
	CHECK_NULL_EINVAL(uffd_image_create(t_img_path(1, dir, "x.img"), NULL, 1, NULL, 0));
	CHECK_EQ(t_count_files(dir), 0);
}

static void check_image_put(void)
{
	struct uffd_image_region reg = { 0x10000000, 4 * PAGE, PAGE, 0 };
	struct uffd_image_writer *w;
	char page[PAGE] = { 1 };

	CHECK_EINVAL(uffd_image_put(NULL, 0, 0, 1, page, 0));
	w = uffd_image_create(t_img_path(1, t_img_dir(), "put.img"), &reg, 1, NULL, 0);
	CHECK(w);
	CHECK_EINVAL(uffd_image_put(w, 0, 0, 2, NULL, 1));	/* page 1 has no data */
	uffd_image_abort(w);
}

static void check_image_putv(void)
{
	struct uffd_image_region reg = { 0x100000000ULL, 4 * PAGE, PAGE, UFFD_IMAGE_ANON };
	static const char page[PAGE] = { 1 };
	const void *pages[2] = { page, NULL };
	struct uffd_image_writer *w;

	CHECK_EINVAL(uffd_image_putv(NULL, 0, 0, 1, pages));
	w = uffd_image_create(t_img_path(1, t_img_dir(), "putv.img"), &reg, 1, NULL, 0);
	CHECK(w);
	CHECK_EINVAL(uffd_image_putv(w, 0, 0, 2, NULL));	/* no page list */
	CHECK_EINVAL(uffd_image_putv(w, 0, 3, 2, pages));	/* past the region */
	CHECK_EINVAL(uffd_image_putv(w, 0, 0, 0, pages));	/* no pages */
	uffd_image_abort(w);
}

static void check_image_put_page(void)
{
	char page[PAGE] = { 1 };

	CHECK_EINVAL(uffd_image_put_page(NULL, 0, 0, page));
}

static void check_image_commit(void) { CHECK_EINVAL(uffd_image_commit(NULL)); }
static void check_image_abort(void) { uffd_image_abort(NULL); }
static void check_image_bytes(void) { CHECK_EQ(uffd_image_bytes(NULL), 0); }
static void check_image_open(void) { CHECK_NULL_EINVAL(uffd_image_open(NULL, NULL)); }
static void check_image_close(void) { uffd_image_close(NULL); }
static void check_image_chain_open(void) { CHECK_NULL_EINVAL(uffd_image_chain_open(NULL, NULL)); }
static void check_image_chain_close(void) { uffd_image_chain_close(NULL); }
static void check_image_chain_length(void) { CHECK_EINVAL(uffd_image_chain_length(NULL)); }

static void check_image_info(void)
{
	struct uffd_image_info info;
	struct uffd_image *img;

	CHECK_EINVAL(uffd_image_info(NULL, &info));
	img = fixture_open_image();
	CHECK_EINVAL(uffd_image_info(img, NULL));
	uffd_image_close(img);
}

static void check_image_verify(void)
{
	uint64_t bad = DONE_POISON;

	CHECK_EINVAL(uffd_image_verify(NULL, &bad));
}

static void check_image_read_page(void)
{
	char buf[PAGE];
	struct uffd_image *img;

	CHECK_EINVAL(uffd_image_read_page(NULL, 0, 1, buf));
	img = fixture_open_image();
	CHECK_EINVAL(uffd_image_read_page(img, 0, 1, NULL));
	uffd_image_close(img);
}

static void check_image_chain_get(void)
{
	struct uffd_image_chain *c;

	CHECK_NULL_EINVAL(uffd_image_chain_get(NULL, 0));
	c = fixture_chain();
	CHECK_NULL_EINVAL(uffd_image_chain_get(c, 1));
	CHECK_NULL_EINVAL(uffd_image_chain_get(c, -1));
	uffd_image_chain_close(c);
}

static void check_image_chain_read_page(void)
{
	struct uffd_image_chain *c;
	char buf[PAGE];

	CHECK_EINVAL(uffd_image_chain_read_page(NULL, 0, 1, buf));
	c = fixture_chain();
	CHECK_EINVAL(uffd_image_chain_read_page(c, 0, 1, NULL));
	CHECK_EINVAL(uffd_image_chain_read_page(c, 0, 2, NULL));	/* a hole */
	uffd_image_chain_close(c);
}

static void check_image_chain_check(void)
{
	char file[64] = "untouched";
	uint64_t bad = DONE_POISON;

	CHECK_EINVAL(uffd_image_chain_check(NULL, file, sizeof(file), &bad));
	CHECK_EQ(file[0], 0);		/* no file at fault */
	CHECK_EQ(bad, DONE_POISON);
	CHECK_OK(uffd_image_chain_check(fixture_image(), NULL, 0, NULL));
}

/* ---- snapshots and restore: <uffd/snapshot.h> ----------------------------- */

static void check_snap_begin(void) { CHECK_NULL_EINVAL(uffd_snap_begin(NULL)); }
static void check_snap_new(void) { CHECK_NULL_EINVAL(uffd_snap_new(NULL)); }
static void check_snap_start(void) { CHECK_EINVAL(uffd_snap_start(NULL)); }
static void check_snap_wait(void) { CHECK_EINVAL(uffd_snap_wait(NULL, 0)); }
static void check_snap_cancel(void) { CHECK_EINVAL(uffd_snap_cancel(NULL)); }
static void check_snap_free(void) { uffd_snap_free(NULL); }

static void check_snap_prepare_write(void)
{
	char page[PAGE];

	CHECK_EINVAL(uffd_snap_prepare_write(NULL, page, sizeof(page)));
}

static void check_snap_stats(void)
{
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, o, .regions = &reg, .nregions = 1);
	struct uffd_snap_stats st;
	struct uffd_snap *s;
	char *area;

	CHECK_EINVAL(uffd_snap_stats(NULL, &st));
	t_require(UFFD_FEAT_REG_WP_ANON);
	area = t_map_anon(4 * PAGE);
	memset(area, 1, 4 * PAGE);
	reg = (struct uffd_image_region){ (uintptr_t)area, 4 * PAGE, PAGE, UFFD_IMAGE_ANON };
	o.path = t_img_path(1, t_img_dir(), "snap.img");
	s = uffd_snap_begin(&o);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_EINVAL(uffd_snap_stats(s, NULL));
	CHECK_OK(uffd_snap_wait(s, 10000));
	uffd_snap_free(s);
}

static void check_snap_all_regions(void)
{
	char skipped[64];

	CHECK_EINVAL(uffd_snap_all_regions(NULL, skipped, sizeof(skipped)));
}

static void check_restore_open(void)
{
	CHECK_NULL_EINVAL(uffd_restore_open(NULL, 0));
	CHECK_NULL_EINVAL(uffd_restore_open(fixture_image(), 1u << 30));
}

static void check_restore_open_opts(void)
{
	UFFD_OPTS(uffd_restore_opts, eager_in_thread, .in_thread = true);
	UFFD_OPTS(uffd_restore_opts, bad_flag, .flags = 1u << 30);

	CHECK_NULL_EINVAL(uffd_restore_open_opts(NULL, NULL));
	CHECK_NULL_EINVAL(uffd_restore_open_opts(fixture_image(), &bad_flag));
	CHECK_NULL_EINVAL(uffd_restore_open_opts(fixture_image(), &eager_in_thread));
}

static void check_restore_addr(void)
{
	struct uffd_restore *r;

	CHECK_NULL_EINVAL(uffd_restore_addr(NULL, 0));
	r = uffd_restore_open(fixture_image(), UFFD_RESTORE_ANYWHERE);
	if (!r)
		FAIL("uffd_restore_open: %s", strerror(errno));
	CHECK_NULL_EINVAL(uffd_restore_addr(r, 1));
	CHECK_NULL_EINVAL(uffd_restore_addr(r, -1));
	CHECK(uffd_restore_addr(r, 0) != NULL);
	uffd_restore_close(r, true);
}

static void check_restore_regions(void) { CHECK_EINVAL(uffd_restore_regions(NULL)); }
static void check_restore_wait(void) { CHECK_EINVAL(uffd_restore_wait(NULL, 0)); }
static void check_restore_close(void) { uffd_restore_close(NULL, true); }

static void check_restore_stats(void)
{
	struct uffd_restore_stats st;
	struct uffd_restore *r;

	CHECK_EINVAL(uffd_restore_stats(NULL, &st));
	r = uffd_restore_open(fixture_image(), UFFD_RESTORE_ANYWHERE);
	if (!r)
		FAIL("uffd_restore_open: %s", strerror(errno));
	CHECK_EINVAL(uffd_restore_stats(r, NULL));
	uffd_restore_close(r, true);
}

/* ---- the page server: <uffd/serve.h> -------------------------------------- */

/* A server of the fixture image on a socket of its own, in this child. */
static struct uffd_serve *fixture_server(const char **sock)
{
	static char path[600];
	UFFD_OPTS(uffd_serve_opts, o, .image = fixture_image());
	struct uffd_serve *s;

	snprintf(path, sizeof(path), "%s/serve-%d.sock", t_img_dir(), (int)getpid());
	o.socket_path = path;
	s = uffd_serve_new(&o);
	if (!s)
		FAIL("uffd_serve_new: %s", strerror(errno));
	*sock = path;
	return s;
}

static void check_serve_new(void)
{
	UFFD_OPTS(uffd_serve_opts, o, .image = "x");

	CHECK_NULL_EINVAL(uffd_serve_new(NULL));
	CHECK_NULL_EINVAL(uffd_serve_new(&o));		/* no socket */
}

static void check_serve_stats(void)
{
	struct uffd_serve_stats st;
	struct uffd_serve *s;
	const char *sock;

	CHECK_EINVAL(uffd_serve_stats(NULL, &st));
	s = fixture_server(&sock);
	CHECK_EINVAL(uffd_serve_stats(s, NULL));
	uffd_serve_free(s);
}

static void check_serve_free(void) { uffd_serve_free(NULL); }

static void check_serve_attach(void)
{
	UFFD_OPTS(uffd_serve_attach_opts, o, .flags = UFFD_SERVE_ANYWHERE);

	CHECK_NULL_EINVAL(uffd_serve_attach(NULL));
	CHECK_NULL_EINVAL(uffd_serve_attach(&o));	/* no socket */
}

static void check_serve_client_regions(void) { CHECK_EINVAL(uffd_serve_client_regions(NULL)); }
static void check_serve_client_len(void) { CHECK_EQ(uffd_serve_client_len(NULL, 0), 0); }
static void check_serve_client_wait(void) { CHECK_EINVAL(uffd_serve_client_wait(NULL, 0)); }
static void check_serve_detach(void) { uffd_serve_detach(NULL, true); }

/* A client of the fixture server, in this child. */
static void with_client(void (*check)(struct uffd_serve_client *c))
{
	UFFD_OPTS(uffd_serve_attach_opts, o, .flags = UFFD_SERVE_ANYWHERE);
	struct uffd_serve_client *c;
	struct uffd_serve *s = fixture_server(&o.socket_path);

	c = uffd_serve_attach(&o);
	if (!c)
		FAIL("uffd_serve_attach: %s", strerror(errno));
	check(c);
	uffd_serve_detach(c, true);
	uffd_serve_free(s);
}

static void client_addr_checks(struct uffd_serve_client *c)
{
	CHECK_NULL_EINVAL(uffd_serve_client_addr(c, 1));
	CHECK_NULL_EINVAL(uffd_serve_client_addr(c, -1));
	CHECK(uffd_serve_client_addr(c, 0) != NULL);
	CHECK_EQ(uffd_serve_client_len(c, 1), 0);
}

static void check_serve_client_addr(void)
{
	CHECK_NULL_EINVAL(uffd_serve_client_addr(NULL, 0));
	with_client(client_addr_checks);
}

static void client_stats_checks(struct uffd_serve_client *c)
{
	CHECK_EINVAL(uffd_serve_client_stats(c, NULL));
}

static void check_serve_client_stats(void)
{
	struct uffd_serve_client_stats st;

	CHECK_EINVAL(uffd_serve_client_stats(NULL, &st));
	with_client(client_stats_checks);
}

/* ---- checkpoints: <uffd/checkpoint.h> ------------------------------------- */

static void check_ckpt_new(void)
{
	CHECK_NULL_EINVAL(uffd_ckpt_new(NULL, 1, NULL));
}

static void check_ckpt_take(void)
{
	struct uffd_image_region reg;
	struct uffd_ckpt_stats st;
	struct uffd_ckpt *c;
	char *area = t_map_anon(4 * PAGE);

	CHECK_EINVAL(uffd_ckpt_take(NULL, t_img_path(1, t_img_dir(), "ck.img"), &st));
	reg = (struct uffd_image_region){ (uintptr_t)area, 4 * PAGE, PAGE, UFFD_IMAGE_ANON };
	c = uffd_ckpt_new(&reg, 1, NULL);
	if (!c)
		FAIL("uffd_ckpt_new: %s", strerror(errno));
	CHECK_EINVAL(uffd_ckpt_take(c, NULL, &st));
	uffd_ckpt_free(c);
}

static void check_ckpt_begin(void)
{
	struct uffd_image_region reg;
	struct uffd_ckpt *c;
	char *area = t_map_anon(4 * PAGE);

	CHECK_EINVAL(uffd_ckpt_begin(NULL, t_img_path(1, t_img_dir(), "ck.img")));
	reg = (struct uffd_image_region){ (uintptr_t)area, 4 * PAGE, PAGE, UFFD_IMAGE_ANON };
	c = uffd_ckpt_new(&reg, 1, NULL);
	if (!c)
		FAIL("uffd_ckpt_new: %s", strerror(errno));
	CHECK_EINVAL(uffd_ckpt_begin(c, NULL));
	uffd_ckpt_free(c);
}

static void check_ckpt_wait(void)
{
	struct uffd_ckpt_stats st;

	CHECK_EINVAL(uffd_ckpt_wait(NULL, 0, &st));
}

static void check_ckpt_prepare_write(void)
{
	char page[PAGE];

	CHECK_EINVAL(uffd_ckpt_prepare_write(NULL, page, sizeof(page)));
}

static void check_ckpt_free(void) { uffd_ckpt_free(NULL); }

/* ---- the checker: <uffd/checker.h> ---------------------------------------- */

static void check_checker_new(void)
{
	UFFD_OPTS(uffd_checker_opts, o, .bytes = PAGE + 1);

	CHECK_NULL_EINVAL(uffd_checker_new(&o));
}

static void check_checker_area(void) { CHECK_NULL_EINVAL(uffd_checker_area(NULL)); }
static void check_checker_len(void) { CHECK_EQ(uffd_checker_len(NULL), 0); }
static void check_checker_start(void) { CHECK_EINVAL(uffd_checker_start(NULL)); }
static void check_checker_pause(void) { uffd_checker_pause(NULL); }
static void check_checker_resume(void) { uffd_checker_resume(NULL); }
static void check_checker_pause_cb(void) { uffd_checker_pause_cb(NULL); }
static void check_checker_resume_cb(void) { uffd_checker_resume_cb(NULL); }
static void check_checker_mark_instant(void) { uffd_checker_mark_instant(NULL); }
static void check_checker_stop(void) { uffd_checker_stop(NULL); }
static void check_checker_writes(void) { CHECK_EQ(uffd_checker_writes(NULL), 0); }
static void check_checker_free(void) { uffd_checker_free(NULL); }

static void check_checker_verify_memory(void)
{
	struct uffd_checker *c;
	char msg[64];

	CHECK_EINVAL(uffd_checker_verify_memory(NULL, t_map_anon(PAGE), msg, sizeof(msg)));
	c = fixture_checker();
	uffd_checker_mark_instant(c);
	CHECK_EINVAL(uffd_checker_verify_memory(c, NULL, msg, sizeof(msg)));
	uffd_checker_free(c);
}

static void check_checker_verify_image(void)
{
	struct uffd_image_chain *chain = fixture_chain();
	struct uffd_checker *c;
	char msg[64];

	CHECK_EINVAL(uffd_checker_verify_image(NULL, chain, 0, msg, sizeof(msg)));
	c = fixture_checker();
	uffd_checker_mark_instant(c);
	CHECK_EINVAL(uffd_checker_verify_image(c, NULL, 0, msg, sizeof(msg)));
	uffd_checker_free(c);
	uffd_image_chain_close(chain);
}

static void check_checker_export(void)
{
	struct uffd_checker *c;
	char buf[256];

	CHECK_EINVAL(uffd_checker_export(NULL, buf, sizeof(buf)));
	c = fixture_checker();
	/* NULL buf asks for the size; too small a buffer is -ENOSPC */
	CHECK(uffd_checker_export(c, NULL, 0) > 0);
	CHECK_EQ(uffd_checker_export(c, buf, 1), -ENOSPC);
	uffd_checker_free(c);
}

static void check_checker_adopt(void)
{
	char state[256] = { 0 };

	CHECK_NULL_EINVAL(uffd_checker_adopt(NULL, PAGE, state, sizeof(state)));
	CHECK_NULL_EINVAL(uffd_checker_adopt(t_map_anon(PAGE), PAGE, NULL, sizeof(state)));
}

static void check_checker_instant_versions(void)
{
	struct uffd_checker *c;
	uint64_t v[4];

	CHECK_EINVAL(uffd_checker_instant_versions(NULL, v, 4));
	c = fixture_checker();
	uffd_checker_mark_instant(c);
	CHECK_EINVAL(uffd_checker_instant_versions(c, NULL, uffd_checker_len(c) / PAGE));
	uffd_checker_free(c);
}

static void check_checker_adopt_versions(void)
{
	struct uffd_checker *c;
	uint64_t v[4] = { 0 };
	char msg[64];

	CHECK_EINVAL(uffd_checker_adopt_versions(NULL, v, 4, msg, sizeof(msg)));
	c = fixture_checker();		/* not adopted: -EINVAL too */
	CHECK_EINVAL(uffd_checker_adopt_versions(c, NULL, uffd_checker_len(c) / PAGE, msg,
						 sizeof(msg)));
	uffd_checker_free(c);
}

/* ---- migration: <uffd/migrate.h> ------------------------------------------ */

static void check_mig_source_start(void) { CHECK_NULL_EINVAL(uffd_mig_source_start(NULL)); }
static void check_mig_source_switchover(void) { CHECK_EINVAL(uffd_mig_source_switchover(NULL)); }
static void check_mig_source_wait(void) { CHECK_EINVAL(uffd_mig_source_wait(NULL, 0)); }
static void check_mig_source_resume(void) { CHECK_EINVAL(uffd_mig_source_resume(NULL, 0, 0)); }
static void check_mig_source_free(void) { uffd_mig_source_free(NULL); }

static void check_mig_source_stats(void)
{
	struct uffd_image_region reg = { (uintptr_t)t_map_anon(4 * PAGE), 4 * PAGE, PAGE,
					 UFFD_IMAGE_ANON };
	struct uffd_mig_stats st;
	struct uffd_mig_source *s;
	int sv[2];

	CHECK_EINVAL(uffd_mig_source_stats(NULL, &st));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	UFFD_OPTS(uffd_mig_source_opts, o, .regions = &reg, .nregions = 1, .stream_fd = sv[0],
		  .one_channel = true, .mode = UFFD_MIG_POSTCOPY_ONLY);
	s = uffd_mig_source_start(&o);
	if (!s)
		FAIL("uffd_mig_source_start: %s", strerror(errno));
	CHECK_EINVAL(uffd_mig_source_stats(s, NULL));
	uffd_mig_source_free(s);
}

static void check_mig_dest_start(void) { CHECK_NULL_EINVAL(uffd_mig_dest_start(NULL)); }
static void check_mig_dest_wait(void) { CHECK_EINVAL(uffd_mig_dest_wait(NULL, 0)); }
static void check_mig_dest_resume(void) { CHECK_EINVAL(uffd_mig_dest_resume(NULL, 0, 0)); }
static void check_mig_dest_poison(void) { CHECK_EINVAL(uffd_mig_dest_poison(NULL)); }
static void check_mig_dest_free(void) { uffd_mig_dest_free(NULL); }

static void check_mig_dest_stats(void)
{
	struct uffd_image_region reg = { (uintptr_t)t_map_anon(4 * PAGE), 4 * PAGE, PAGE,
					 UFFD_IMAGE_ANON };
	struct uffd_mig_stats st;
	struct uffd_mig_dest *d;
	int sv[2];

	CHECK_EINVAL(uffd_mig_dest_stats(NULL, &st));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	UFFD_OPTS(uffd_mig_dest_opts, o, .regions = &reg, .nregions = 1, .stream_fd = sv[1],
		  .one_channel = true);
	d = uffd_mig_dest_start(&o);
	if (!d)
		FAIL("uffd_mig_dest_start: %s", strerror(errno));
	CHECK_EINVAL(uffd_mig_dest_stats(d, NULL));
	uffd_mig_dest_free(d);
}

/* ---- the pager and its stores: <uffd/pager.h> ----------------------------- */

static void check_store_file(void) { CHECK_NULL_EINVAL(uffd_store_file(NULL, O_RDONLY, 0)); }
static void check_store_memory(void) { CHECK_NULL_EINVAL(uffd_store_memory(NULL, 0)); }
static void check_store_socket(void) { CHECK_NULL_EINVAL(uffd_store_socket(NULL)); }
static void check_store_socket_open(void)
{
	UFFD_OPTS(uffd_store_socket_opts, o, .timeout_ms = -1);

	CHECK_NULL_EINVAL(uffd_store_socket_open(NULL, NULL));
	CHECK_NULL_EINVAL(uffd_store_socket_open("/nonexistent/sock", &o));
}
static void check_store_free(void) { uffd_store_free(NULL); }

static void check_store_redis(void)
{
	UFFD_OPTS(uffd_store_redis_opts, noprefix, .size = PAGE);

	CHECK_NULL_EINVAL(uffd_store_redis(NULL));
	CHECK_NULL_EINVAL(uffd_store_redis(&noprefix));
}

static void check_store_fd(void)
{
	errno = 0;
	CHECK(!uffd_store_fd(-1, 0));
	CHECK_EQ(errno, EBADF);
}

static void check_store_serve(void)
{
	volatile bool stop = true;
	char buf[PAGE];

	/* stop may be NULL (serve for ever): documented, not checked here. */
	CHECK_EINVAL(uffd_store_serve(NULL, buf, sizeof(buf), &stop));
	CHECK_EINVAL(uffd_store_serve("/nonexistent/sock", NULL, sizeof(buf), &stop));
}

static void check_pager_new(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .page_size = PAGE + 1);

	CHECK_NULL_EINVAL(uffd_pager_new(&o));
}

static void check_pager_free(void) { CHECK_EQ(uffd_pager_free(NULL), 0); }

static void check_pager_map(void)
{
	struct uffd_store *s = uffd_store_memory(NULL, 4 * PAGE);
	struct uffd_pager *p;

	CHECK(s);
	CHECK_NULL_EINVAL(uffd_pager_map(NULL, s, 0, 4 * PAGE, PROT_READ, 0, 0));
	p = fixture_pager();
	CHECK_NULL_EINVAL(uffd_pager_map(p, NULL, 0, 4 * PAGE, PROT_READ, 0, 0));
	CHECK_OK(uffd_pager_free(p));
	uffd_store_free(s);
}

static void check_pager_map_ex(void)
{
	UFFD_OPTS(uffd_pager_map_opts, o, .len = 4 * PAGE, .prot = PROT_READ);
	struct uffd_store *s = uffd_store_memory(NULL, 4 * PAGE);
	struct uffd_pager *p;

	CHECK(s);
	CHECK_NULL_EINVAL(uffd_pager_map_ex(NULL, s, &o));
	p = fixture_pager();
	CHECK_NULL_EINVAL(uffd_pager_map_ex(p, NULL, &o));
	CHECK_NULL_EINVAL(uffd_pager_map_ex(p, s, NULL));
	CHECK_OK(uffd_pager_free(p));
	uffd_store_free(s);
}

static void check_pager_unmap(void)
{
	struct uffd_pager *p;

	CHECK_EINVAL(uffd_pager_unmap(NULL, t_map_anon(PAGE)));
	p = fixture_pager();
	CHECK_EINVAL(uffd_pager_unmap(p, NULL));
	CHECK_OK(uffd_pager_free(p));
}

static void check_pager_flush(void)
{
	CHECK_EINVAL(uffd_pager_flush(NULL, t_map_anon(PAGE), 0));
}

static void check_pager_evict(void)
{
	CHECK_EINVAL(uffd_pager_evict(NULL, t_map_anon(PAGE), PAGE));
}

static void check_pager_prefetch(void)
{
	struct uffd_pager_range r = { t_map_anon(PAGE), PAGE };
	struct uffd_pager *p;

	CHECK_EINVAL(uffd_pager_prefetch(NULL, &r, 1, 0));
	p = fixture_pager();
	CHECK_EINVAL(uffd_pager_prefetch(p, NULL, 1, 0));
	CHECK_OK(uffd_pager_free(p));
}

static void check_pager_stats(void)
{
	struct uffd_pager_stats st;
	struct uffd_pager *p;

	CHECK_EINVAL(uffd_pager_stats(NULL, &st));
	p = fixture_pager();
	CHECK_EINVAL(uffd_pager_stats(p, NULL));
	CHECK_OK(uffd_pager_free(p));
}

static void check_pager_config(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .fillers = 0x5a5a);
	struct uffd_pager *p;

	CHECK_EINVAL(uffd_pager_config(NULL, &o));
	CHECK_EQ(o.fillers, 0x5a5a);	/* untouched */
	p = fixture_pager();
	CHECK_EINVAL(uffd_pager_config(p, NULL));
	CHECK_OK(uffd_pager_free(p));
}

/* ---- the table ------------------------------------------------------------ */

struct entry {
	const char *name;
	void (*check)(void);
	bool exported;		/* seen in the library's symbol table */
};

#define E(fn) { "uffd_" #fn, check_##fn, false }

static struct entry table[] = {
	/* core */
	E(open), E(adopt), E(close), E(describe_missing), E(feature_supported),
	E(feature_name), E(kernel_features), E(probe_reset), E(tracking_backend),
	E(track_backend_name), E(page_size), E(register), E(unregister), E(copy),
	E(zeropage), E(continue), E(move), E(poison), E(writeprotect), E(wake),
	E(read_events), E(event_name), E(fault_kind_name), E(pagemap_open),
	E(pagemap_scan), E(pagemap_written),
	/* runtime */
	E(handler_new), E(handler_add), E(handler_remove), E(handler_start),
	E(handler_stop), E(handler_sync), E(handler_fd), E(handler_dispatch),
	E(handler_free), E(handler_stats), E(stats_quantile_ns), E(region_addr),
	E(region_data), E(region_set_data), E(region_uffd), E(region_len), E(region_page_size),
	E(region_read_seq), E(region_copy), E(region_copy_wp), E(region_zero),
	E(fault_copy), E(fault_copy_at), E(fault_copy_wp), E(fault_zero),
	E(fault_continue), E(fault_unprotect),
	/* dirty tracking */
	E(track_new), E(track_add), E(track_backend_of), E(track_pages),
	E(track_reset), E(track_free), E(track_result_free), E(track_collect),
	E(track_collect_bitmap), E(track_stats),
	/* images */
	E(image_create), E(image_put), E(image_putv), E(image_put_page), E(image_commit),
	E(image_abort), E(image_bytes), E(image_open), E(image_close),
	E(image_info), E(image_verify), E(image_read_page), E(image_chain_open),
	E(image_chain_close), E(image_chain_length), E(image_chain_get),
	E(image_chain_read_page), E(image_chain_check),
	/* snapshots and restore */
	E(snap_begin), E(snap_new), E(snap_start), E(snap_wait), E(snap_cancel), E(snap_stats), E(snap_free),
	E(snap_prepare_write),
	E(snap_all_regions), E(restore_open), E(restore_open_opts), E(restore_addr), E(restore_regions),
	E(restore_wait), E(restore_stats), E(restore_close),
	/* the page server */
	E(serve_new), E(serve_stats), E(serve_free), E(serve_attach),
	E(serve_client_regions), E(serve_client_addr), E(serve_client_len),
	E(serve_client_wait), E(serve_client_stats), E(serve_detach),
	/* checkpoints */
	E(ckpt_new), E(ckpt_take), E(ckpt_begin), E(ckpt_wait), E(ckpt_prepare_write),
	E(ckpt_free),
	/* the checker */
	E(checker_new), E(checker_area), E(checker_len), E(checker_start),
	E(checker_pause), E(checker_resume), E(checker_pause_cb),
	E(checker_resume_cb), E(checker_mark_instant), E(checker_stop),
	E(checker_writes), E(checker_free), E(checker_verify_memory),
	E(checker_verify_image), E(checker_export), E(checker_adopt),
	E(checker_instant_versions), E(checker_adopt_versions),
	/* migration */
	E(mig_source_start), E(mig_source_switchover), E(mig_source_wait),
	E(mig_source_resume), E(mig_source_stats), E(mig_source_free),
	E(mig_dest_start), E(mig_dest_wait), E(mig_dest_resume), E(mig_dest_poison),
	E(mig_dest_stats), E(mig_dest_free),
	/* the pager */
	E(store_file), E(store_fd), E(store_memory), E(store_socket), E(store_socket_open),
	E(store_redis), E(pager_map_ex),
	E(store_serve), E(store_free), E(pager_new), E(pager_free), E(pager_map),
	E(pager_unmap), E(pager_flush), E(pager_evict), E(pager_prefetch),
	E(pager_stats), E(pager_config),
};

#define NENTRIES (sizeof(table) / sizeof(table[0]))

/* ---- what the library exports --------------------------------------------- */

/* libuffd.so next to the tests directory this program runs from. */
static void library_path(char *buf, size_t len)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0)
		FAIL("readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	slash = strrchr(exe, '/');		/* BUILD/tests/NAME */
	CHECK(slash);
	*slash = '\0';
	slash = strrchr(exe, '/');
	CHECK(slash);
	*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s/libuffd.so", exe) >= len)
		FAIL("path too long: %s", exe);
}

/*
 * The names of the functions defined in the shared library's dynamic
 * symbol table (what a program can link to), read with <elf.h>.
 */
static int exported_functions(const char *path, char **names, int max)
{
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
	struct stat st;
	const char *base;
	int fd, n = 0, i;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		FAIL("%s: %s", path, strerror(errno));
	base = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(base != MAP_FAILED);
	close(fd);
	eh = (const Elf64_Ehdr *)base;
	CHECK(!memcmp(eh->e_ident, ELFMAG, SELFMAG) && eh->e_ident[EI_CLASS] == ELFCLASS64);
	sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	for (i = 0; i < eh->e_shnum; i++) {
		const Elf64_Sym *sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
		const char *strtab = base + sh[sh[i].sh_link].sh_offset;
		size_t k, nsyms = sh[i].sh_size / sizeof(*sym);

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		for (k = 0; k < nsyms; k++) {
			unsigned bind = ELF64_ST_BIND(sym[k].st_info);

			if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC ||
			    sym[k].st_shndx == SHN_UNDEF ||
			    (bind != STB_GLOBAL && bind != STB_WEAK))
				continue;
			CHECK(n < max);
			names[n++] = strdup(strtab + sym[k].st_name);
		}
	}
	return n;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run one entry in a child: 0 passed, 77 skipped, else failed (said why). */
static int run_entry(const struct entry *e)
{
	int status, waited;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		e->check();
		exit(T_EXIT_PASS);
	}
	for (waited = 0; waited < CHILD_MS; waited++) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		CHECK(got >= 0);
		if (got == pid) {
			if (WIFSIGNALED(status)) {
				fprintf(stderr, "%s: killed by %s\n", e->name,
					sigabbrev_np(WTERMSIG(status)));
				return T_EXIT_FAIL;
			}
			if (WEXITSTATUS(status) && WEXITSTATUS(status) != T_EXIT_SKIP)
				fprintf(stderr, "%s: failed (above)\n", e->name);
			return WEXITSTATUS(status);
		}
		t_sleep_ms(1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fprintf(stderr, "%s: still running after %d ms (blocked?)\n", e->name, CHILD_MS);
	return T_EXIT_FAIL;
}

int main(void)
{
	char lib[PATH_MAX], *names[MAX_EXPORTS];
	int n, i, failed = 0, skipped = 0, ret;
	size_t k;

	library_path(lib, sizeof(lib));
	n = exported_functions(lib, names, MAX_EXPORTS);
	if (n < 100)
		FAIL("%s exports %d functions: not libuffd?", lib, n);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (i = 0; i < n; i++) {
		for (k = 0; k < NENTRIES; k++)
			if (!strcmp(names[i], table[k].name))
				break;
		if (k == NENTRIES) {
			fprintf(stderr, "%s is exported but has no entry in the table: "
				"add its bad-argument checks\n", names[i]);
			failed++;
			continue;
		}
		if (table[k].exported)
			FAIL("%s exported twice?", names[i]);
		table[k].exported = true;
		ret = run_entry(&table[k]);
		failed += ret != T_EXIT_PASS && ret != T_EXIT_SKIP;
		skipped += ret == T_EXIT_SKIP;
	}
	for (k = 0; k < NENTRIES; k++)
		if (!table[k].exported) {
			fprintf(stderr, "%s has an entry but is not exported by %s\n",
				table[k].name, lib);
			failed++;
		}
	fprintf(stderr, "%d exported functions checked, %d failed, %d skipped\n", n,
		failed, skipped);
	for (i = 0; i < n; i++)
		free(names[i]);
	return failed ? T_EXIT_FAIL : T_EXIT_PASS;
}
