/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A full disk never leaves a file that claims to be complete.  On a 64 KiB
 * tmpfs (mounted in a private mount namespace, so nothing outside sees it):
 * puts fail with -ENOSPC once the space is gone, every later put fails the
 * same way, commit returns -ENOSPC, and neither NAME nor NAME.tmp-PID
 * exists afterwards.  And when the chunks fit but the trailer does not,
 * commit itself fails with -ENOSPC and removes the temporary file.
 */
#include <sys/mount.h>
#include <sys/wait.h>
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x100000, .len = 256 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x800000, .len = 256 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON },
};

/* Puts run out of space: the error sticks, commit fails, nothing is left. */
static void puts_fail(const char *dir)
{
	const char *path = t_img_path(0, dir, "full.img");
	struct uffd_image_writer *w;
	uint8_t page[PAGE];
	int ret = 0, i;

	t_fill(page, PAGE, 1);
	w = uffd_image_create(path, regions, 2, NULL, 0);
	if (!w)
		FAIL("create: %s", strerror(errno));
	for (i = 0; i < 256 && !ret; i++)
		ret = uffd_image_put_page(w, 0, i, page);
	CHECK_EQ(ret, -ENOSPC);
	CHECK(i <= 16);				/* 64 KiB hold at most 16 pages */
	CHECK_EQ(uffd_image_put_page(w, 1, 0, NULL), -ENOSPC);
	CHECK_EQ(uffd_image_put_page(w, 0, i, page), -ENOSPC);
	CHECK_EQ(uffd_image_commit(w), -ENOSPC);
	CHECK_EQ(t_count_files(dir), 0);
}

/*
 * The chunks end exactly at 4096 bytes (388 bytes of header and region
 * table, 103 one-page zero chunks of 36 bytes), then a filler takes the
 * rest of the filesystem: the 32-byte trailer needs a block there is not.
 */
static void trailer_fails(const char *dir)
{
	const char *path = t_img_path(0, dir, "full.img");
	const char *filler = t_img_path(1, dir, "filler");
	struct uffd_image_writer *w;
	uint8_t block[PAGE] = { 1 };
	int fd, i;

	w = uffd_image_create(path, regions, 2, NULL, 0);
	if (!w)
		FAIL("create: %s", strerror(errno));
	for (i = 0; i < 103; i++)
		CHECK_OK(uffd_image_put_page(w, 1, i, NULL));
	CHECK_EQ(uffd_image_bytes(w), 4096);
	fd = open(filler, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	while (write(fd, block, sizeof(block)) == sizeof(block))
		;
	CHECK_EQ(errno, ENOSPC);
	close(fd);
	CHECK_EQ(uffd_image_commit(w), -ENOSPC);
	CHECK_EQ(t_count_files(dir), 1);	/* the filler only */
	CHECK_OK(unlink(filler));
}

/* In a child: the tmpfs and its mount namespace go away with it. */
static int run_in_namespace(const char *dir)
{
	int ret;

	ret = t_private_tmpfs(dir, "64k");
	if (ret)
		return ret;
	puts_fail(dir);
	trailer_fails(dir);
	ret = umount(dir);
	return ret ? T_EXIT_FAIL : T_EXIT_PASS;
}

int main(void)
{
	const char *dir = t_img_dir();		/* the mount point, removed at exit */
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (!pid)
		_exit(run_in_namespace(dir));
	return t_wait_child(pid, 30000);
}
