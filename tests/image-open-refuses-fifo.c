/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Only regular files are images, and looking at anything else never
 * blocks: a FIFO with no writer (whose open(2) would wait for one) is
 * refused by uffd_image_open() with EINVAL at once, a directory with
 * EISDIR; a chain whose parent is a FIFO fails with EINVAL, and
 * uffd_image_chain_check() names the parent.  An alarm turns a blocked
 * open into a failure that says so.
 */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

static const struct uffd_image_region region = {
	.addr = 0x100000, .len = 4 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON,
};

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL: an open blocked for 10 s\n";

	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(T_EXIT_FAIL);
}

static void write_image(const char *path, const char *parent)
{
	uint8_t data[PAGE];
	struct uffd_image_writer *w = uffd_image_create(path, &region, 1, parent, 0);

	CHECK(w);
	t_fill(data, PAGE, 5);
	CHECK_OK(uffd_image_put_page(w, 0, 1, data));
	CHECK_OK(uffd_image_commit(w));
}

int main(void)
{
	const char *dir = t_img_dir();
	const char *fifo = t_img_path(0, dir, "fifo.img");
	const char *base = t_img_path(1, dir, "base.img");
	const char *delta = t_img_path(2, dir, "delta.img");
	struct uffd_image_chain *c;
	char file[512];
	uint64_t bad = 0;

	signal(SIGALRM, on_alarm);
	alarm(10);
	CHECK_OK(mkfifo(fifo, 0600));
	CHECK(!uffd_image_open(fifo, &bad));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_image_chain_open(fifo, &bad));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_image_open(dir, &bad));
	CHECK_EQ(errno, EISDIR);

	/* a delta whose parent becomes a FIFO */
	write_image(base, NULL);
	write_image(delta, base);
	c = uffd_image_chain_open(delta, NULL);
	CHECK(c);
	uffd_image_chain_close(c);
	CHECK_OK(unlink(base));
	CHECK_OK(mkfifo(base, 0600));
	CHECK(!uffd_image_chain_open(delta, &bad));
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(uffd_image_chain_check(delta, file, sizeof(file), &bad), -EINVAL);
	if (strcmp(file, base))
		FAIL("chain check names '%s', want '%s'", file, base);
	alarm(0);
	return T_EXIT_PASS;
}
