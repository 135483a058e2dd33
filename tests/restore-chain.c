/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Restoring a chain (a delta and its base) gives the newest contents, and a
 * damaged chain never restores wrong bytes.
 *
 * The chain is written by hand with the image API, one page per chunk, two
 * regions: the base holds data pages, holes and a zero record; the delta
 * changes some data pages, zeroes others (zero records), fills a page that
 * was a hole in the base, and leaves the rest to the base.  Then:
 *  - eager and lazy restores into new mappings (UFFD_RESTORE_ANYWHERE) hold,
 *    page by page, what the delta says, else what the base says, else
 *    zeros (the lazy one read last page first, so faults serve pages
 *    ahead of the prefetch); the eager one's stats count the pages that
 *    come back zero; uffd_restore_wait() returns 0;
 *  - one data byte of a delta chunk flipped (its CRC no longer matches):
 *    a lazy restore opens, and a thread touching that page gets SIGBUS at
 *    the address it touched (the restore negotiates POISON, and the
 *    runtime poisons a page whose callback fails), another page still
 *    reads right, and uffd_restore_wait() returns -EBADMSG (in a child:
 *    the poisoned mapping and the signal stay there); an eager restore
 *    fails with EBADMSG.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/sigbus.h"

#define R0_PAGES	64
#define R1_PAGES	8
#define BAD_PAGE	16	/* region 0: data in the delta */

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x10000000, .len = R0_PAGES * PAGE, .page_size = PAGE,
	  .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x20000000, .len = R1_PAGES * PAGE, .page_size = PAGE,
	  .flags = UFFD_IMAGE_ANON },
};
static const uint64_t npages[2] = { R0_PAGES, R1_PAGES };

/* What an image records of a page: 'D' data, 'Z' zero, '-' nothing. */
static char base_of(int region, uint64_t p)
{
	if (region == 1)
		return 'D';
	if (p == 2)
		return 'Z';
	return p % 4 == 3 ? '-' : 'D';
}

static char delta_of(int region, uint64_t p)
{
	if (region == 1)
		return p == 5 ? 'D' : '-';
	if (p == 3)			/* a hole in the base */
		return 'D';
	return p % 8 == 0 ? 'D' : p % 8 == 1 ? 'Z' : '-';
}

static unsigned seed(int image, int region, uint64_t p)
{
	return 1 + image * 1000 + region * 100 + (unsigned)p;
}

/* The newest contents of a page: 0 for zeros, else the pattern's seed. */
static unsigned newest(int region, uint64_t p)
{
	char d = delta_of(region, p), b = base_of(region, p);

	if (d != '-')
		return d == 'D' ? seed(1, region, p) : 0;
	return b == 'D' ? seed(0, region, p) : 0;
}

static void write_image(const char *path, const char *parent, int image)
{
	struct uffd_image_writer *w = uffd_image_create(path, regions, 2, parent, 0);
	uint8_t page[PAGE];
	int region;
	uint64_t p;

	if (!w)
		FAIL("uffd_image_create(%s): %s", path, strerror(errno));
	for (region = 0; region < 2; region++) {
		for (p = 0; p < npages[region]; p++) {
			char k = image ? delta_of(region, p) : base_of(region, p);

			if (k == '-')
				continue;
			t_fill(page, PAGE, seed(image, region, p));
			CHECK_OK(uffd_image_put_page(w, region, p, k == 'D' ? page : NULL));
		}
	}
	CHECK_OK(uffd_image_commit(w));
}

static void check_page(const char *mem, int region, uint64_t p, const char *what)
{
	unsigned s = newest(region, p);

	if (s ? !t_is_filled(mem, PAGE, s) : !t_is_zero(mem, PAGE))
		FAIL("%s: region %d page %" PRIu64 " is not the newest contents", what,
		     region, p);
}

static void restore_good(const char *path)
{
	struct uffd_restore_stats st;
	struct uffd_restore *r;
	uint64_t p, zeros = 0;
	int region;

	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE);
	if (!r)
		FAIL("eager restore: %s", strerror(errno));
	CHECK_EQ(uffd_restore_regions(r), 2);
	for (region = 0; region < 2; region++) {
		const char *mem = uffd_restore_addr(r, region);

		CHECK(mem);
		for (p = 0; p < npages[region]; p++) {
			check_page(mem + p * PAGE, region, p, "eager");
			zeros += !newest(region, p);
		}
	}
	CHECK_OK(uffd_restore_wait(r, 0));
	CHECK_OK(uffd_restore_stats(r, &st));
	CHECK_EQ(st.pages, R0_PAGES + R1_PAGES);
	CHECK_EQ(st.zero, zeros);
	uffd_restore_close(r, true);

	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE | UFFD_RESTORE_LAZY);
	if (!r)
		FAIL("lazy restore: %s", strerror(errno));
	CHECK_EQ(uffd_restore_regions(r), 2);
	for (region = 1; region >= 0; region--) {
		const char *mem = uffd_restore_addr(r, region);

		CHECK(mem);
		for (p = npages[region]; p-- > 0;)
			check_page(mem + p * PAGE, region, p, "lazy");
	}
	CHECK_OK(uffd_restore_wait(r, 4000));
	CHECK_OK(uffd_restore_stats(r, &st));
	CHECK(st.done);
	CHECK_EQ(st.pages, R0_PAGES + R1_PAGES);
	uffd_restore_close(r, true);
}

/* In a child: a lazy restore of the damaged chain. */
static int lazy_damaged(const char *path)
{
	struct t_sigbus_read bad, good;
	struct uffd_restore *r;
	char *mem;

	t_sigbus_catch();
	r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE | UFFD_RESTORE_LAZY);
	if (!r)
		FAIL("lazy restore of the damaged chain: %s (want it to open and fail "
		     "the page)", strerror(errno));
	mem = uffd_restore_addr(r, 0);
	t_sigbus_read_start(&bad, mem + BAD_PAGE * PAGE + 77);
	if (!t_sigbus_read_wait(&bad, 2000))
		FAIL("the read of the damaged page is still blocked after 2 s");
	t_sigbus_read_join(&bad);
	if (!bad.got_sigbus) {
		bool intact = t_is_filled(mem + BAD_PAGE * PAGE, PAGE, newest(0, BAD_PAGE));

		uffd_restore_close(r, true);
		FAIL("the damaged page (region 0 page %d) read without SIGBUS: %s", BAD_PAGE,
		     intact ? "the intact bytes?" : "the corrupt bytes were restored");
	}
	CHECK_EQ(bad.bus.code, t_poison_sigbus_code());
	CHECK_EQ((uintptr_t)bad.bus.addr, (uintptr_t)(mem + BAD_PAGE * PAGE + 77));

	t_sigbus_read_start(&good, mem + 8 * PAGE);	/* another delta page */
	CHECK(t_sigbus_read_wait(&good, 2000));
	t_sigbus_read_join(&good);
	CHECK(!good.got_sigbus);
	check_page(mem + 8 * PAGE, 0, 8, "lazy, damaged chain");

	CHECK_EQ(uffd_restore_wait(r, 4000), -EBADMSG);
	uffd_restore_close(r, true);
	return T_EXIT_PASS;
}

int main(void)
{
	const char *dir = t_img_dir();
	const char *base = t_img_path(0, dir, "base.img");
	const char *delta = t_img_path(1, dir, "delta.img");
	struct t_chunk chunks[R0_PAGES + R1_PAGES];
	struct uffd_restore *r;
	int n, i, rc;
	bool eager_ok;
	pid_t pid;

	write_image(base, NULL, 0);
	write_image(delta, base, 1);
	restore_good(delta);

	/* Flip a byte in the middle of BAD_PAGE's data in the delta. */
	CHECK_EQ(delta_of(0, BAD_PAGE), 'D');
	n = t_img_chunks(delta, chunks, R0_PAGES + R1_PAGES);
	for (i = 0; i < n; i++)
		if (chunks[i].region == 0 && chunks[i].first == BAD_PAGE)
			break;
	CHECK(i < n);
	CHECK_EQ(chunks[i].count, 1);
	CHECK_EQ(chunks[i].present, 1);
	t_flip_byte(delta, chunks[i].offset + T_IMG_CHUNK_HDR + PAGE / 2, 0x40);

	/*
	 * Both halves run, then both verdicts.  Eager first: the child's exit
	 * removes the image directory (an atexit of the harness).
	 */
	errno = 0;
	r = uffd_restore_open(delta, UFFD_RESTORE_ANYWHERE);
	eager_ok = !r && errno == EBADMSG;
	uffd_restore_close(r, true);
	if (!eager_ok)
		fprintf(stderr, "%s:%d: FAIL: eager restore of the damaged chain: %s, "
			"want EBADMSG\n", __FILE__, __LINE__,
			errno ? strerror(errno) : "succeeded");
	if (uffd_feature_supported(UFFD_FEAT_POISON) == 1) {
		pid = fork();
		CHECK(pid >= 0);
		if (!pid)
			_exit(lazy_damaged(delta));
		rc = t_wait_child(pid, 4000);
	} else {
		fprintf(stderr, "note: lazy part skipped: no UFFD_FEAT_POISON here\n");
		rc = T_EXIT_PASS;
	}
	if (rc != T_EXIT_PASS || !eager_ok)
		return T_EXIT_FAIL;
	return T_EXIT_PASS;
}
