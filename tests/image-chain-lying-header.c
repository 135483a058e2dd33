/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A chunk header that lies is never believed.  The chain: a base with
 * pages 0 and 1 = A, delta 1 setting page 0 to B, delta 2 setting page 1
 * to C.  One bit flipped in delta 1's chunk header makes it claim page 1:
 * delta 2 covers page 1, so the damaged chunk is never read, and page 0
 * would fall back to the base's A - a wrong page with success.  Instead:
 *  - version 3 (what is written now; every header again before the
 *    trailer, and the reader takes them from there): the files open, with
 *    the copy's true headers, and the damaged chunk fails its CRC at its
 *    first read - uffd_image_read_page() and uffd_image_chain_read_page()
 *    of page 0 give -EBADMSG, an eager restore fails with EBADMSG, a lazy
 *    one raises SIGBUS on page 0 - and uffd_image_chain_check() names
 *    delta 1 and the offset.  Damaged in the copy as well (both tell the
 *    same lie), open fails as for version 2;
 *  - version 2: uffd_image_open() of delta 1,
 *    uffd_image_chain_open() and uffd_restore_open() (eager and lazy) all
 *    fail with EBADMSG at the chunk's offset (the trailer's CRC of chunk
 *    headers), and uffd_image_chain_check() names delta 1 and the offset;
 *  - version 1 (no CRC of headers; still read): the sound chain reads B
 *    and C; damaged, the files open (nothing to check a header against
 *    yet), but the first read - of any page, through the image or the chain
 *    - checks every chunk and fails with -EBADMSG, an eager restore fails
 *    with EBADMSG, a lazy one raises SIGBUS on page 0 instead of serving A
 *    and ends with -EBADMSG, and uffd_image_chain_check() names the file.
 *
 *   image-chain-lying-header --make-chain DIR [--v1|--v2]
 *        write DIR/base.img, d1.img, d2.img, damage d1.img, and print
 *        "chunk OFFSET" (for the CLI test, restore-lying-header.sh)
 */
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/sigbus.h"
#include "util/crc32c.h"

enum { A = 11, B = 22, C = 33 };	/* page contents, as t_fill seeds */

static const struct uffd_image_region region = {
	.addr = 0x100000, .len = 2 * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON,
};

static void write_image(const char *path, const char *parent, int page0, int page1)
{
	uint8_t data[PAGE];
	struct uffd_image_writer *w = uffd_image_create(path, &region, 1, parent, 0);

	if (!w)
		FAIL("create %s: %s", path, strerror(errno));
	if (page0) {
		t_fill(data, PAGE, page0);
		CHECK_OK(uffd_image_put_page(w, 0, 0, data));
	}
	if (page1) {
		t_fill(data, PAGE, page1);
		CHECK_OK(uffd_image_put_page(w, 0, 1, data));
	}
	CHECK_OK(uffd_image_commit(w));
}

struct chain {
	char base[512], d1[512], d2[512];
	uint64_t chunk;		/* offset of d1's only chunk */
};

/* The sound chain in dir, file names starting with prefix, as version
 * files (3: as written). */
static void make_chain(struct chain *ch, const char *dir, const char *prefix, int version)
{
	struct t_chunk c[2];

	snprintf(ch->base, sizeof(ch->base), "%s/%sbase.img", dir, prefix);
	snprintf(ch->d1, sizeof(ch->d1), "%s/%sd1.img", dir, prefix);
	snprintf(ch->d2, sizeof(ch->d2), "%s/%sd2.img", dir, prefix);
	write_image(ch->base, NULL, A, A);
	write_image(ch->d1, ch->base, B, 0);
	write_image(ch->d2, ch->d1, 0, C);
	if (version < 3) {
		t_img_make_version(ch->base, version, crc32c);
		t_img_make_version(ch->d1, version, crc32c);
		t_img_make_version(ch->d2, version, crc32c);
	}
	CHECK_EQ(t_img_chunks(ch->d1, c, 2), 1);
	CHECK_EQ(c[0].first, 0);
	ch->chunk = c[0].offset;
}

/* Delta 1's chunk now claims page 1: bit 0 of its first-page field. */
static void damage(const struct chain *ch)
{
	struct t_chunk c[2];

	t_flip_byte(ch->d1, ch->chunk + 8, 0x01);
	CHECK_EQ(t_img_chunks(ch->d1, c, 2), 1);
	CHECK_EQ(c[0].first, 1);
}

static void expect_page(struct uffd_image_chain *c, uint64_t page, int seed)
{
	uint8_t buf[PAGE];

	CHECK_EQ(uffd_image_chain_read_page(c, 0, page, buf), 1);
	CHECK(t_is_filled(buf, PAGE, seed));
}

static void expect_check_names(const struct chain *ch)
{
	char file[512];
	uint64_t bad = ~0ULL;

	CHECK_EQ(uffd_image_chain_check(ch->d2, file, sizeof(file), &bad), -EBADMSG);
	if (strcmp(file, ch->d1))
		FAIL("chain check names '%s', want '%s'", file, ch->d1);
	CHECK_EQ(bad, ch->chunk);
}

static void expect_open_fails(const char *path, uint64_t want)
{
	uint64_t bad = ~0ULL;
	struct uffd_image *img = uffd_image_open(path, &bad);

	if (img)
		FAIL("%s opened despite its lying chunk header", path);
	CHECK_EQ(errno, EBADMSG);
	CHECK_EQ(bad, want);
}

/* The chain before any damage: delta 1 of that version, page 0 B, page 1 C. */
static void make_sound_chain(struct chain *ch, const char *dir, const char *prefix, int version)
{
	struct uffd_image_chain *c;
	struct uffd_image_info info;
	struct uffd_image *img;

	make_chain(ch, dir, prefix, version);
	img = uffd_image_open(ch->d1, NULL);
	CHECK(img);
	CHECK_OK(uffd_image_info(img, &info));
	CHECK_EQ(info.version, (uint32_t)version);
	uffd_image_close(img);
	c = uffd_image_chain_open(ch->d2, NULL);
	CHECK(c);
	expect_page(c, 0, B);
	expect_page(c, 1, C);
	uffd_image_chain_close(c);
}

static void version2(const char *dir)
{
	struct uffd_image_chain *c;
	struct chain ch;
	uint64_t bad;

	make_sound_chain(&ch, dir, "v2-", 2);
	CHECK_OK(uffd_image_chain_check(ch.d2, NULL, 0, NULL));

	damage(&ch);
	expect_open_fails(ch.d1, ch.chunk);
	bad = ~0ULL;
	c = uffd_image_chain_open(ch.d2, &bad);
	if (c) {
		uint8_t buf[PAGE];
		int ret = uffd_image_chain_read_page(c, 0, 0, buf);

		FAIL("the chain opened; page 0 reads %d (%s)", ret,
		     ret == 1 && t_is_filled(buf, PAGE, A) ? "A: the wrong page" : "?");
	}
	CHECK_EQ(errno, EBADMSG);
	CHECK_EQ(bad, ch.chunk);
	expect_check_names(&ch);
	CHECK(!uffd_restore_open(ch.d2, UFFD_RESTORE_ANYWHERE));
	CHECK_EQ(errno, EBADMSG);
	CHECK(!uffd_restore_open(ch.d2, UFFD_RESTORE_ANYWHERE | UFFD_RESTORE_LAZY));
	CHECK_EQ(errno, EBADMSG);
}

/* In a child (SIGBUS handler, restore threads): a lazy restore. */
static int lazy_sigbus(const struct chain *ch)
{
	struct t_sigbus_read rd;
	struct uffd_restore *r;
	char *mem;

	t_sigbus_catch();
	r = uffd_restore_open(ch->d2, UFFD_RESTORE_ANYWHERE | UFFD_RESTORE_LAZY);
	if (!r)
		FAIL("lazy restore: %s (the chain opens; the read fails)",
		     strerror(errno));
	mem = uffd_restore_addr(r, 0);
	t_sigbus_read_start(&rd, mem + 5);
	if (!t_sigbus_read_wait(&rd, 5000))
		FAIL("the read of page 0 is still blocked after 5 s");
	t_sigbus_read_join(&rd);
	if (!rd.got_sigbus)
		FAIL("page 0 read without SIGBUS: %s", t_is_filled(mem, PAGE, A) ?
		     "A, the base's page: wrong" : "?");
	CHECK_EQ((uintptr_t)rd.bus.addr, (uintptr_t)(mem + 5));
	CHECK_EQ(uffd_restore_wait(r, 5000), -EBADMSG);
	uffd_restore_close(r, true);
	return T_EXIT_PASS;
}

static void expect_lazy_sigbus(const struct chain *ch)
{
	int status;
	pid_t pid;

	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		_exit(lazy_sigbus(ch));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), T_EXIT_PASS);
}

static void version3(const char *dir)
{
	struct uffd_image_chain *c;
	struct uffd_image *img;
	uint8_t buf[PAGE];
	struct chain ch;
	uint64_t size;

	make_sound_chain(&ch, dir, "v3-", 3);

	damage(&ch);
	img = uffd_image_open(ch.d1, NULL);
	CHECK(img);
	CHECK_EQ(uffd_image_read_page(img, 0, 0, buf), -EBADMSG);
	uffd_image_close(img);
	c = uffd_image_chain_open(ch.d2, NULL);
	CHECK(c);
	CHECK_EQ(uffd_image_chain_read_page(c, 0, 0, buf), -EBADMSG);
	expect_page(c, 1, C);
	uffd_image_chain_close(c);
	expect_check_names(&ch);
	CHECK(!uffd_restore_open(ch.d2, UFFD_RESTORE_ANYWHERE));
	CHECK_EQ(errno, EBADMSG);
	expect_lazy_sigbus(&ch);

	/* the same lie in the copy: d1's one header, just before the trailer */
	size = t_file_size(ch.d1);
	t_flip_byte(ch.d1, size - T_IMG_TRAILER - T_IMG_CHUNK_HDR + 8, 0x01);
	expect_open_fails(ch.d1, ch.chunk);
	CHECK(!uffd_image_chain_open(ch.d2, NULL));
	CHECK_EQ(errno, EBADMSG);
	expect_check_names(&ch);
}

static void version1(const char *dir)
{
	struct uffd_image_chain *c;
	struct uffd_image_info info;
	struct uffd_image *img;
	uint8_t buf[PAGE];
	struct chain ch;

	make_chain(&ch, dir, "v1-", 1);
	c = uffd_image_chain_open(ch.d2, NULL);
	CHECK(c);
	CHECK_OK(uffd_image_info(uffd_image_chain_get(c, 1), &info));
	CHECK_EQ(info.version, 1);
	expect_page(c, 0, B);
	expect_page(c, 1, C);
	uffd_image_chain_close(c);

	damage(&ch);
	img = uffd_image_open(ch.d1, NULL);
	CHECK(img);
	CHECK_EQ(uffd_image_read_page(img, 0, 1, buf), -EBADMSG);
	CHECK_EQ(uffd_image_read_page(img, 0, 0, buf), -EBADMSG);
	uffd_image_close(img);
	img = uffd_image_open(ch.d1, NULL);
	CHECK(img);
	CHECK_EQ(uffd_image_read_page(img, 0, 0, buf), -EBADMSG);	/* not -ENOENT */
	uffd_image_close(img);

	c = uffd_image_chain_open(ch.d2, NULL);
	CHECK(c);
	CHECK_EQ(uffd_image_chain_read_page(c, 0, 0, buf), -EBADMSG);
	CHECK_EQ(uffd_image_chain_read_page(c, 0, 1, buf), -EBADMSG);
	uffd_image_chain_close(c);
	expect_check_names(&ch);
	CHECK(!uffd_restore_open(ch.d2, UFFD_RESTORE_ANYWHERE));
	CHECK_EQ(errno, EBADMSG);

	expect_lazy_sigbus(&ch);
}

int main(int argc, char **argv)
{
	struct chain ch;
	const char *dir;

	if (argc >= 3 && !strcmp(argv[1], "--make-chain")) {
		int version = 3;

		if (argc > 3)
			version = !strcmp(argv[3], "--v1") ? 1 : !strcmp(argv[3], "--v2") ? 2 : 0;
		if (!version)
			FAIL("usage: --make-chain DIR [--v1|--v2]");
		make_chain(&ch, argv[2], "", version);
		damage(&ch);
		printf("chunk %" PRIu64 "\n", ch.chunk);
		return T_EXIT_PASS;
	}
	dir = t_img_dir();
	version3(dir);
	version2(dir);
	version1(dir);
	return T_EXIT_PASS;
}
