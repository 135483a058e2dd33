// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Options structs can grow (libuffd(3), OPTIONS STRUCTS): every function
 * that takes one accepts a struct made by UFFD_OPTS, a NULL for defaults
 * where the API allows it, and a larger struct from a "newer program" whose
 * unknown tail is zero; it refuses with EINVAL an sz of 0 (a struct not made
 * by UFFD_OPTS), a garbage sz, and a newer struct that sets a field this
 * library does not know (uffd_restore_open_opts() too, on a one-page
 * image).  uffd_pager_config() fills an older caller's shorter struct
 * only as far as it reaches.
 */
#include <stddef.h>
#include <sys/mman.h>
#include <uffd/checker.h>
#include <uffd/checkpoint.h>
#include <uffd/handler.h>
#include <uffd/pager.h>
#include <uffd/snapshot.h>
#include <uffd/track.h>

#include "lib/harness.h"
#include "lib/image-files.h"

/* What a program built against a later header would pass. */
#define NEWER(type) struct newer_##type { struct type o; uint64_t future; }
NEWER(uffd_track_opts);
NEWER(uffd_handler_opts);
NEWER(uffd_checker_opts);
NEWER(uffd_pager_opts);
NEWER(uffd_ckpt_opts);
NEWER(uffd_snap_opts);
NEWER(uffd_restore_opts);

/* ptr is the outcome of a constructor; want_ok says if it should exist. */
static void expect(const char *what, void *ptr, bool want_ok)
{
	if (want_ok && !ptr)
		FAIL("%s: refused (%s), should be accepted", what, strerrorname_np(errno));
	if (!want_ok && ptr)
		FAIL("%s: accepted, should fail with EINVAL", what);
	if (!want_ok && errno != EINVAL)
		FAIL("%s: errno %s, want EINVAL", what, strerrorname_np(errno));
}

static void tracker_cases(void)
{
	UFFD_OPTS(uffd_track_opts, o, .backend = UFFD_TRACK_WP_ASYNC);
	struct newer_uffd_track_opts n = { 0 };
	struct uffd_tracker *t;

	t = uffd_track_new(&o);
	expect("track: UFFD_OPTS", t, true);
	uffd_track_free(t);
	t = uffd_track_new(NULL);
	expect("track: NULL", t, true);
	uffd_track_free(t);
	o.sz = 0;
	expect("track: sz 0", uffd_track_new(&o), false);
	o.sz = 1 << 20;
	expect("track: sz 1 MiB", uffd_track_new(&o), false);
	/* The first version ended with arg (in_thread came later). */
	o.sz = offsetof(struct uffd_track_opts, arg) + sizeof(o.arg) - 1;
	expect("track: sz short of the first version", uffd_track_new(&o), false);
	o.sz = offsetof(struct uffd_track_opts, arg) + sizeof(o.arg);
	t = uffd_track_new(&o);
	expect("track: sz of the first version", t, true);
	uffd_track_free(t);

	n.o.sz = sizeof(n);
	n.o.backend = UFFD_TRACK_WP_ASYNC;
	t = uffd_track_new(&n.o);
	expect("track: newer, tail zero", t, true);
	uffd_track_free(t);
	n.future = 1;
	expect("track: newer, unknown field set", uffd_track_new(&n.o), false);
}

static void handler_cases(void)
{
	UFFD_OPTS(uffd_handler_opts, o, .threads = 1);
	struct newer_uffd_handler_opts n = { .o = { .sz = sizeof(n), .threads = 1 } };
	struct uffd_handler *h;
	struct uffd u;

	t_open(&u, 0, UFFD_NONBLOCK);
	h = uffd_handler_new(&u, &o);
	expect("handler: UFFD_OPTS", h, true);
	uffd_handler_free(h);
	h = uffd_handler_new(&u, NULL);
	expect("handler: NULL", h, true);
	uffd_handler_free(h);
	h = uffd_handler_new(&u, &n.o);
	expect("handler: newer, tail zero", h, true);
	uffd_handler_free(h);
	n.future = 7;
	expect("handler: newer, unknown field set", uffd_handler_new(&u, &n.o), false);
	o.sz = 0;
	expect("handler: sz 0", uffd_handler_new(&u, &o), false);
	uffd_close(&u);
}

static void checker_cases(void)
{
	UFFD_OPTS(uffd_checker_opts, o, .bytes = 64 * PAGE, .writers = 1);
	struct newer_uffd_checker_opts n = {
		.o = { .sz = sizeof(n), .bytes = 64 * PAGE, .writers = 1 },
	};
	struct uffd_checker *c;

	c = uffd_checker_new(&o);
	expect("checker: UFFD_OPTS", c, true);
	CHECK_EQ(uffd_checker_len(c), 64 * PAGE);
	uffd_checker_free(c);
	c = uffd_checker_new(&n.o);
	expect("checker: newer, tail zero", c, true);
	uffd_checker_free(c);
	n.future = 1;
	expect("checker: newer, unknown field set", uffd_checker_new(&n.o), false);
	o.sz = 0;
	expect("checker: sz 0", uffd_checker_new(&o), false);
}

static void pager_cases(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 64 * PAGE, .fillers = 1);
	struct newer_uffd_pager_opts n = {
		.o = { .sz = sizeof(n), .buffer_bytes = 64 * PAGE },
	};
	UFFD_OPTS(uffd_pager_opts, got);
	struct uffd_pager *p;

	p = uffd_pager_new(&o);
	if (!p && errno == EOPNOTSUPP)
		SKIP("no userfaultfd write-protect for the pager");
	expect("pager: UFFD_OPTS", p, true);
	CHECK_OK(uffd_pager_config(p, &got));
	CHECK_EQ(got.sz, sizeof(got));
	CHECK_EQ(got.buffer_bytes, 64 * PAGE);
	CHECK_EQ(got.fillers, 1);
	CHECK_EQ(got.page_size, PAGE);		/* a default, filled in */
	got.sz = 0;
	CHECK_EQ(uffd_pager_config(p, &got), -EINVAL);
	uffd_pager_free(p);

	p = uffd_pager_new(&n.o);
	expect("pager: newer, tail zero", p, true);
	/* The newer program's struct is longer: only ours is filled. */
	n.future = 0x5a5a;
	CHECK_OK(uffd_pager_config(p, &n.o));
	CHECK_EQ(n.o.sz, sizeof(struct uffd_pager_opts));
	CHECK_EQ(n.future, 0x5a5a);
	uffd_pager_free(p);
	n.o.sz = sizeof(n);
	expect("pager: newer, unknown field set", uffd_pager_new(&n.o), false);
	o.sz = 0;
	expect("pager: sz 0", uffd_pager_new(&o), false);
}

static void snapshot_cases(void)
{
	char *area = t_map_anon(4 * PAGE);
	struct uffd_image_region reg = { (uintptr_t)area, 4 * PAGE, PAGE, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_ckpt_opts, co);
	struct newer_uffd_ckpt_opts cn = { .o = { .sz = sizeof(cn) }, .future = 3 };
	UFFD_OPTS(uffd_snap_opts, so, .path = "/nonexistent-dir/never-written.img",
		  .regions = &reg, .nregions = 1);
	struct newer_uffd_snap_opts sn = { .future = 1 };
	struct uffd_ckpt *c;

	c = uffd_ckpt_new(&reg, 1, &co);
	expect("ckpt: UFFD_OPTS", c, true);
	uffd_ckpt_free(c);
	co.sz = 0;
	expect("ckpt: sz 0", uffd_ckpt_new(&reg, 1, &co), false);
	expect("ckpt: newer, unknown field set", uffd_ckpt_new(&reg, 1, &cn.o), false);

	sn.o = so;
	sn.o.sz = sizeof(sn);
	expect("snap: newer, unknown field set", uffd_snap_begin(&sn.o), false);
	so.sz = 0;
	expect("snap: sz 0", uffd_snap_begin(&so), false);
	munmap(area, 4 * PAGE);
}

/* A one-page image of memory that is gone again (its address free). */
static const char *one_page_image(void)
{
	const char *path = t_img_path(0, t_img_dir(), "one.img");
	char *area = t_map_anon(PAGE);
	struct uffd_image_region reg = { (uintptr_t)area, PAGE, PAGE, UFFD_IMAGE_ANON };
	struct uffd_image_writer *w = uffd_image_create(path, &reg, 1, NULL, 0);

	if (!w)
		FAIL("uffd_image_create: %s", strerror(errno));
	CHECK_OK(uffd_image_put_page(w, 0, 0, area));
	CHECK_OK(uffd_image_commit(w));
	munmap(area, PAGE);
	return path;
}

static void restore_cases(void)
{
	const char *path = one_page_image();
	UFFD_OPTS(uffd_restore_opts, o, .flags = UFFD_RESTORE_ANYWHERE);
	struct newer_uffd_restore_opts n = {
		.o = { .sz = sizeof(n), .flags = UFFD_RESTORE_ANYWHERE },
	};
	struct uffd_restore *r;

	r = uffd_restore_open_opts(path, &o);
	expect("restore: UFFD_OPTS", r, true);
	uffd_restore_close(r, true);
	r = uffd_restore_open_opts(path, NULL);	/* at the recorded address */
	expect("restore: NULL", r, true);
	uffd_restore_close(r, true);
	r = uffd_restore_open_opts(path, &n.o);
	expect("restore: newer, tail zero", r, true);
	uffd_restore_close(r, true);
	n.future = 1;
	expect("restore: newer, unknown field set", uffd_restore_open_opts(path, &n.o), false);
	o.sz = 0;
	expect("restore: sz 0", uffd_restore_open_opts(path, &o), false);
}

int main(void)
{
	t_require(UFFD_FEAT_REG_WP_ANON);
	tracker_cases();
	handler_cases();
	checker_cases();
	snapshot_cases();
	restore_cases();
	pager_cases();
	return T_EXIT_PASS;
}
