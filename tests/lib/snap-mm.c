/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <libgen.h>
#include <unistd.h>
#include <uffd/image.h>

#include "snap-mm.h"

void t_snap_fill(void *p, size_t npages, unsigned seed)
{
	size_t i;

	for (i = 0; i < npages; i++)
		t_fill((char *)p + i * PAGE, PAGE, seed + i);
}

/* No file in path's directory whose name starts with path's name. */
static void expect_no_file(const char *path)
{
	char dir[512], base[256];
	struct dirent *d;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", basename(dir));
	snprintf(dir, sizeof(dir), "%s", path);
	dp = opendir(dirname(dir));
	CHECK(dp);
	while ((d = readdir(dp)))
		if (!strncmp(d->d_name, base, strlen(base)))
			FAIL("a failed snapshot left %s behind", d->d_name);
	closedir(dp);
}

bool t_snap_outcome(const char *path, int ret, int region, size_t npages, unsigned seed)
{
	static char buf[PAGE];
	struct uffd_image_chain *c;
	size_t i;
	int got;

	if (ret == -EFAULT) {
		expect_no_file(path);
		return false;
	}
	if (ret)
		FAIL("snapshot: %d (%s), want 0 or -EFAULT", ret, t_errname(ret));
	c = uffd_image_chain_open(path, NULL);
	if (!c)
		FAIL("uffd_image_chain_open %s: %s", path, strerror(errno));
	CHECK_OK(uffd_image_verify(uffd_image_chain_get(c, 0), NULL));
	for (i = 0; i < npages; i++) {
		got = uffd_image_chain_read_page(c, region, i, buf);
		if (got != 1 || !t_is_filled(buf, PAGE, seed + i))
			FAIL("the image reports success but page %zu of region %d is not the "
			     "instant's (read: %d)", i, region, got);
	}
	uffd_image_chain_close(c);
	unlink(path);
	return true;
}

void t_snap_rounds(const char *what, int (*round)(const void *arg, int k), const void *arg,
		   int n, int ms, int *saved, int *lost)
{
	int k, rc;

	for (k = 0; k < n; k++) {
		pid_t pid;

		fflush(stderr);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			_exit(round(arg, k));
		rc = t_wait_child(pid, ms);
		if (rc != T_SNAP_SAVED && rc != T_SNAP_LOST)
			FAIL("%s, round %d: child exited %d", what, k, rc);
		*saved += rc == T_SNAP_SAVED;
		*lost += rc == T_SNAP_LOST;
	}
}

static void *writer_main(void *arg)
{
	struct t_snap_writer *w = arg;
	unsigned v = 0;

	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		size_t i;

		for (i = 0; i < w->pages; i += 7)
			((volatile char *)w->area)[i * PAGE + 1] = (char)++v;
	}
	return NULL;
}

void t_snap_writer_start(struct t_snap_writer *w, char *area, size_t pages)
{
	w->area = area;
	w->pages = pages;
	w->stop = 0;
	CHECK_OK(pthread_create(&w->thread, NULL, writer_main, w));
}

void t_snap_writer_stop(struct t_snap_writer *w)
{
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
	CHECK_OK(pthread_join(w->thread, NULL));
}
