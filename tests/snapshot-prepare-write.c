/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes announced with uffd_snap_prepare_write() and
 * uffd_ckpt_prepare_write() are saved by the announcing thread, one page
 * each, and the images stay exactly the instant.
 *
 * Snapshot: 256 MiB of pages stamped A; right after the instant, 16 pages
 * near the end (each in its own 256 KiB group, far ahead of the writer
 * streaming from the start) are announced and stamped B, plus one range
 * that straddles two pages.  Exactly those 18 pages were copied before
 * their write - a fault would have saved each page's whole group of 64 -
 * and the image holds A everywhere.  An announcement outside the regions,
 * and one after the end, do nothing and return 0.
 *
 * Live checkpoint: after a base, announced writes (stamp B) are tracked -
 * the next delta holds exactly those pages - and announcing pages of a
 * delta still being written saves their contents at its instant first
 * (stamp B in the image, C in memory after).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/checkpoint.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"

#define SNAP_BYTES	(256UL << 20)
#define NPAGES		(SNAP_BYTES / PAGE)
#define GROUP		64		/* pages saved per fault */
#define NANNOUNCE	16

static void stamp(char *area, size_t page, char c)
{
	memset(area + page * PAGE, c, PAGE);
	/* and which page, so a page at the wrong place shows */
	memcpy(area + page * PAGE, &page, sizeof(page));
}

static void check_image_page(struct uffd_image_chain *chain, size_t page, char c)
{
	static char buf[PAGE], want[PAGE];

	CHECK_EQ(uffd_image_chain_read_page(chain, 0, page, buf), 1);
	memset(want, c, PAGE);
	memcpy(want, &page, sizeof(page));
	if (memcmp(buf, want, PAGE))
		FAIL("page %zu of the image is not stamp '%c'", page, c);
}

static void snapshot_part(const char *path)
{
	char *area = t_map_anon(SNAP_BYTES), other[PAGE];
	struct uffd_image_region reg = { (uintptr_t)area, SNAP_BYTES, 4096, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, o, .path = path, .regions = &reg, .nregions = 1);
	struct uffd_image_chain *chain;
	struct uffd_snap_stats st;
	struct uffd_snap *s;
	size_t p, i;

	for (p = 0; p < NPAGES; p++)
		stamp(area, p, 'A');
	s = uffd_snap_begin(&o);
	CHECK(s);
	/* the instant is past: announce, then write */
	for (i = 0; i < NANNOUNCE; i++) {
		p = NPAGES - 1 - i * GROUP;
		CHECK_OK(uffd_snap_prepare_write(s, area + p * PAGE, PAGE));
		stamp(area, p, 'B');
	}
	p = NPAGES - 1 - NANNOUNCE * GROUP - 1;		/* two pages of one group */
	CHECK_OK(uffd_snap_prepare_write(s, area + p * PAGE + 100, PAGE));
	stamp(area, p, 'B');
	stamp(area, p + 1, 'B');
	CHECK_OK(uffd_snap_prepare_write(s, other, sizeof(other)));	/* not its memory */
	CHECK_OK(uffd_snap_wait(s, 60000));
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK_EQ(st.copied_before_write + st.sync_writes, NANNOUNCE + 2);
	CHECK_OK(uffd_snap_prepare_write(s, area, PAGE));	/* done: nothing to do */
	uffd_snap_free(s);

	chain = uffd_image_chain_open(path, NULL);
	CHECK(chain);
	for (p = 0; p < NPAGES; p++)
		check_image_page(chain, p, 'A');
	uffd_image_chain_close(chain);
	munmap(area, SNAP_BYTES);
	unlink(path);
}

static void checkpoint_part(const char *dir)
{
	char *area = t_map_anon(SNAP_BYTES), path[3][96];
	struct uffd_image_region reg = { (uintptr_t)area, SNAP_BYTES, 4096, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_ckpt_opts, o);
	struct uffd_image_chain *chain;
	struct uffd_ckpt_stats st;
	struct uffd_ckpt *c;
	size_t p, i;

	for (i = 0; i < 3; i++)
		snprintf(path[i], sizeof(path[i]), "%s/ckpt-%zu", dir, i);
	for (p = 0; p < NPAGES; p++)
		stamp(area, p, 'A');
	c = uffd_ckpt_new(&reg, 1, &o);
	CHECK(c);
	CHECK_OK(uffd_ckpt_take(c, path[0], &st));
	/* announced writes are tracked */
	for (i = 0; i < NANNOUNCE; i++) {
		p = NPAGES - 1 - i * GROUP;
		CHECK_OK(uffd_ckpt_prepare_write(c, area + p * PAGE, PAGE));
		stamp(area, p, 'B');
	}
	/* announcing while the delta of those pages is written: saved first */
	CHECK_OK(uffd_ckpt_begin(c, path[1]));
	for (i = 0; i < NANNOUNCE; i++) {
		p = NPAGES - 1 - i * GROUP;
		CHECK_OK(uffd_ckpt_prepare_write(c, area + p * PAGE, PAGE));
		stamp(area, p, 'C');
	}
	CHECK_OK(uffd_ckpt_wait(c, 60000, &st));
	CHECK_EQ(st.pages_written, NANNOUNCE);
	chain = uffd_image_chain_open(path[1], NULL);
	CHECK(chain);
	for (p = 0; p < NPAGES; p++)
		check_image_page(chain, p, (NPAGES - 1 - p) % GROUP == 0 &&
					   (NPAGES - 1 - p) / GROUP < NANNOUNCE ? 'B' : 'A');
	uffd_image_chain_close(chain);
	/* and those writes are in the next one */
	CHECK_OK(uffd_ckpt_take(c, path[2], &st));
	CHECK_EQ(st.pages_written, NANNOUNCE);
	chain = uffd_image_chain_open(path[2], NULL);
	CHECK(chain);
	for (i = 0; i < NANNOUNCE; i++)
		check_image_page(chain, NPAGES - 1 - i * GROUP, 'C');
	uffd_image_chain_close(chain);
	uffd_ckpt_free(c);
	munmap(area, SNAP_BYTES);
	for (i = 0; i < 3; i++)
		unlink(path[i]);
}

static char dir[] = "/tmp/libuffd-prepare-XXXXXX";

/* Also when a check fails (FAIL exits): the images are 256 MiB. */
static void remove_dir(void)
{
	const char *names[] = { "snap", "ckpt-0", "ckpt-1", "ckpt-2" };
	char path[96];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	char path[96];

	t_require(UFFD_FEAT_WP_UNPOPULATED);
	CHECK(mkdtemp(dir));
	atexit(remove_dir);
	snprintf(path, sizeof(path), "%s/snap", dir);
	snapshot_part(path);
	checkpoint_part(dir);
	return T_EXIT_PASS;
}
