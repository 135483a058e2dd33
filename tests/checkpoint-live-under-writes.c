/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live checkpoints: the checker's 2 writers are stopped only inside the
 * pause callback (the instant) and keep writing while each delta is
 * written, and every chain is still exactly the memory at its instant,
 * page by page.  A tiny copy-before-write buffer makes writes to pages not
 * yet saved take both ways (copied into the buffer, written from memory
 * when it is full), and some do.  A delta holds no more pages than writes
 * were made between its instant and the previous one.  A checkpoint that
 * fails after its instant (the disk fills) leaves no file, and the next
 * one - on room again - covers its pages: that chain is exact too.  A page
 * given back with MADV_DONTNEED between checkpoints is a zero page in the
 * next delta.  The chain restores to the last instant.  Skips the full
 * disk part if a tmpfs cannot be mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/checkpoint.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"

#define TABLE	(32UL << 20)
#define NCKPT	4

struct instant {
	struct uffd_checker *c;
	uint64_t writes;		/* at the last instant */
};

static void pause_cb(void *arg)
{
	struct instant *in = arg;

	uffd_checker_pause_cb(in->c);
	in->writes = uffd_checker_writes(in->c);
}

static void resume_cb(void *arg)
{
	uffd_checker_resume_cb(((struct instant *)arg)->c);
}

static void verify_chain(struct uffd_checker *c, const char *path, int length)
{
	struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);
	char msg[256];

	CHECK(chain);
	CHECK_EQ(uffd_image_chain_length(chain), length);
	if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
		FAIL("chain of %d is not the instant: %s", length, msg);
	uffd_image_chain_close(chain);
}

static void let_writers_run(struct uffd_checker *c, uint64_t n)
{
	uint64_t start = uffd_checker_writes(c);

	while (uffd_checker_writes(c) - start < n)
		usleep(50);
}

static char full_dir[] = "/tmp/libuffd-ckptfull-XXXXXX";
static bool mounted;

static void unmount(void)
{
	if (mounted)
		umount2(full_dir, MNT_DETACH);
	mounted = false;
	rmdir(full_dir);
}

/* Checkpoints on a full disk, then with room again. */
static void full_disk(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = 8UL << 20, .writers = 2, .seed = 5,
		  .fill = 1.0);
	char *dir = full_dir, path[3][96], filler[96];
	struct uffd_ckpt_stats st;
	struct instant in = { 0 };
	UFFD_OPTS(uffd_ckpt_opts, opts, .pause = pause_cb, .resume = resume_cb, .arg = &in);
	struct uffd_image_region reg;
	struct uffd_ckpt *k;
	char block[65536];
	int fd, i;

	CHECK(mkdtemp(dir));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=20m")) {
		fprintf(stderr, "no tmpfs (%s): the full-disk part is skipped\n", strerror(errno));
		rmdir(dir);
		return;
	}
	mounted = true;
	atexit(unmount);		/* also when a check fails */
	in.c = uffd_checker_new(&co);
	CHECK(in.c);
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(in.c), 8UL << 20, 4096,
					  UFFD_IMAGE_ANON };
	k = uffd_ckpt_new(&reg, 1, &opts);
	CHECK(k);
	for (i = 0; i < 3; i++)
		snprintf(path[i], sizeof(path[i]), "%s/ckpt-%d", dir, i);
	CHECK_OK(uffd_checker_start(in.c));
	CHECK_OK(uffd_ckpt_take(k, path[0], &st));		/* 8 MiB: fits */
	/* fill the rest of the 20 MiB: the next delta cannot fit */
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	fd = open(filler, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	memset(block, 1, sizeof(block));
	while (write(fd, block, sizeof(block)) == sizeof(block))
		;
	/* room for the image's header, not for its pages: it fails after the
	 * instant, while its pages are written */
	CHECK(ftruncate(fd, lseek(fd, 0, SEEK_CUR) - 128 * 1024) == 0);
	close(fd);
	let_writers_run(in.c, 20000);
	CHECK_EQ(uffd_ckpt_take(k, path[1], &st), -ENOSPC);
	CHECK(access(path[1], F_OK) != 0);
	/* room again: the next delta has the failed one's pages too */
	unlink(filler);
	let_writers_run(in.c, 100);
	CHECK_OK(uffd_ckpt_take(k, path[2], &st));
	CHECK_EQ(st.sequence, 1);
	uffd_checker_pause(in.c);
	verify_chain(in.c, path[2], 2);
	uffd_checker_stop(in.c);
	uffd_ckpt_free(k);
	uffd_checker_free(in.c);
	for (i = 0; i < 3; i++)
		unlink(path[i]);
	unmount();
}

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 9, .fill = 0.5);
	char dir[] = "/tmp/libuffd-ckptlive-XXXXXX", path[NCKPT + 2][64], msg[256];
	struct uffd_ckpt_stats st[NCKPT + 2];
	uint64_t writes[NCKPT], saved = 0, zero[512];
	struct instant in = { 0 };
	/* 2 pages of buffer: writes to unsaved pages fill it at once */
	UFFD_OPTS(uffd_ckpt_opts, opts, .pause = pause_cb, .resume = resume_cb, .arg = &in,
		  .buffer_bytes = 2 * 4096);
	struct uffd_image_region reg;
	struct uffd_image_chain *chain;
	struct uffd_restore *r;
	struct uffd_ckpt *k;
	char *page;
	int i;

	t_require(UFFD_FEAT_WP_UNPOPULATED);
	CHECK(mkdtemp(dir));
	in.c = uffd_checker_new(&co);
	CHECK(in.c);
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(in.c), TABLE, 4096,
					  UFFD_IMAGE_ANON };
	k = uffd_ckpt_new(&reg, 1, &opts);
	CHECK(k);
	CHECK_OK(uffd_checker_start(in.c));
	for (i = 0; i < NCKPT; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/ckpt-%d", dir, i);
		if (i)
			let_writers_run(in.c, 20000);
		CHECK_OK(uffd_ckpt_take(k, path[i], &st[i]));
		writes[i] = in.writes;
		CHECK_EQ(st[i].sequence, i);
		/* the writers run: verifying reads the checker's own records */
		verify_chain(in.c, path[i], i + 1);
		saved += st[i].copied_before_write + st[i].sync_writes;
		if (i)
			CHECK(st[i].pages_written <= writes[i] - writes[i - 1]);
	}
	CHECK(saved > 0);

	/* the chain restores to the last instant */
	uffd_checker_stop(in.c);
	r = uffd_restore_open(path[NCKPT - 1], UFFD_RESTORE_LAZY | UFFD_RESTORE_ANYWHERE);
	CHECK(r);
	if (uffd_checker_verify_memory(in.c, uffd_restore_addr(r, 0), msg, sizeof(msg)))
		FAIL("restored chain differs: %s", msg);
	CHECK_OK(uffd_restore_wait(r, 20000));
	uffd_restore_close(r, true);

	/* a page given back between checkpoints: zero in the next delta, and
	 * that chain is the table as it is now (the writers stopped) */
	snprintf(path[NCKPT], sizeof(path[NCKPT]), "%s/ckpt-%d", dir, NCKPT);
	snprintf(path[NCKPT + 1], sizeof(path[NCKPT + 1]), "%s/ckpt-%d", dir, NCKPT + 1);
	CHECK_OK(uffd_ckpt_take(k, path[NCKPT], &st[NCKPT]));	/* the writers' last */
	page = (char *)uffd_checker_area(in.c) + 100 * 4096;
	CHECK(!t_is_zero(page, 4096));
	CHECK(madvise(page, 4096, MADV_DONTNEED) == 0);
	CHECK_OK(uffd_ckpt_take(k, path[NCKPT + 1], &st[NCKPT + 1]));
	CHECK_EQ(st[NCKPT + 1].pages_written, 1);
	chain = uffd_image_chain_open(path[NCKPT + 1], NULL);
	CHECK(chain);
	memset(zero, 0xff, sizeof(zero));
	CHECK_EQ(uffd_image_read_page(uffd_image_chain_get(chain, 0), 0, 100, zero), 0);
	CHECK(t_is_zero(zero, 4096));
	uffd_image_chain_close(chain);
	r = uffd_restore_open(path[NCKPT + 1], UFFD_RESTORE_ANYWHERE);
	CHECK(r);
	t_check_bytes("the restored table", uffd_restore_addr(r, 0), uffd_checker_area(in.c),
		      TABLE);
	uffd_restore_close(r, true);

	uffd_ckpt_free(k);
	uffd_checker_free(in.c);
	for (i = 0; i <= NCKPT + 1; i++)
		unlink(path[i]);
	rmdir(dir);
	full_disk();
	return T_EXIT_PASS;
}
