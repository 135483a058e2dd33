// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A lazy restore whose first touches are served by the touching threads
 * themselves (uffd_restore_opts.in_thread) restores every page exactly,
 * with several threads touching at once and the prefetch racing them.
 *
 * The image: 8192 pages (32 MiB) in 64-page chunks; every page its own
 * pattern, every ninth page recorded as zero, two chunks left out
 * (holes).  Right after uffd_restore_open_opts() returns, four threads
 * touch every page, checking each: two walk down from the end (meeting
 * the prefetch, which walks up, and each other on the same pages at the
 * same time), one walks up behind the prefetch, one strides by 7.  Then
 * uffd_restore_wait() returns 0, the whole region is exact, and the
 * counters add up: every page filled by a fault or the prefetch (a page
 * both raced for counts in both), zero = holes + zero pages.
 *
 * In-thread for real: before anything touches it, a write(2) from a hole
 * fails with EFAULT (a system call does not wait for an in-thread fault),
 * unless the prefetch was done by then (it leaves holes to the kernel
 * once done): the run says how often it saw which.  The hand-off restore
 * of the same image is run once too, where that write(2) succeeds.
 *
 * Rounds: twice on the image as written (a chunk's first read checks its
 * CRC in the faulting thread, a page at a time), once on the image
 * rewritten as version 1 (its index checked at open, before the regions
 * are registered: the fault may take no lock).
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "util/crc32c.h"

#define NPAGES		8192
#define CHUNK		64
#define SEED		31
#define NTHREADS	4
#define HOLE_A		5		/* chunks not recorded */
#define HOLE_B		77
#define ZERO_EVERY	9

enum page_kind { DATA, ZERO, HOLE };

static enum page_kind kind_of(uint64_t i)
{
	if (i / CHUNK == HOLE_A || i / CHUNK == HOLE_B)
		return HOLE;
	return i % ZERO_EVERY == 0 ? ZERO : DATA;
}

static void write_image(const char *path)
{
	struct uffd_image_region reg = { 0x7d0000000000ULL, NPAGES * PAGE, PAGE,
					 UFFD_IMAGE_ANON };
	struct uffd_image_writer *w = uffd_image_create(path, &reg, 1, NULL, 0);
	static char data[PAGE * CHUNK];
	uint64_t c, i;

	if (!w)
		FAIL("uffd_image_create: %s", strerror(errno));
	for (c = 0; c < NPAGES / CHUNK; c++) {
		uint64_t zero_mask = 0;
		char *p = data;

		if (kind_of(c * CHUNK) == HOLE)
			continue;
		for (i = c * CHUNK; i < (c + 1) * CHUNK; i++) {
			if (kind_of(i) == ZERO) {
				zero_mask |= 1ULL << (i - c * CHUNK);
				continue;
			}
			t_fill(p, PAGE, SEED + i);
			p += PAGE;
		}
		CHECK_OK(uffd_image_put(w, 0, c * CHUNK, CHUNK, data, zero_mask));
	}
	CHECK_OK(uffd_image_commit(w));
}

static bool page_right(const char *mem, uint64_t i)
{
	const char *p = mem + i * PAGE;

	return kind_of(i) == DATA ? t_is_filled(p, PAGE, SEED + i) : t_is_zero(p, PAGE);
}

static const char *mem;
static int go;			/* atomic */
static int wrong[NTHREADS];	/* pages a thread saw wrong */

static void *toucher(void *arg)
{
	int k = (int)(intptr_t)arg;
	uint64_t j, i;

	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	for (j = 0; j < NPAGES; j++) {
		switch (k) {
		case 0:
		case 1:
			i = NPAGES - 1 - j;
			break;
		case 2:
			i = j;
			break;
		default:
			i = j * 7 % NPAGES;
			break;
		}
		wrong[k] += !page_right(mem, i);
	}
	return NULL;
}

/* A write(2) from the first hole: -errno (0 if it went through). */
static int write_from_hole(void)
{
	int fds[2], ret = 0;

	CHECK_OK(pipe(fds) ? -errno : 0);
	CHECK_OK(fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) < 0 ? -errno : 0);
	if (write(fds[1], mem + HOLE_A * CHUNK * PAGE, PAGE) != PAGE)
		ret = -errno;
	close(fds[0]);
	close(fds[1]);
	return ret;
}

/* One restore: 1 if the write from a hole failed with EFAULT. */
static int round_once(const char *path, bool in_thread, const char *what)
{
	UFFD_OPTS(uffd_restore_opts, o, .flags = UFFD_RESTORE_LAZY | UFFD_RESTORE_ANYWHERE,
		  .in_thread = in_thread);
	uint64_t i, holes = 2 * CHUNK, zero = 0;
	struct uffd_restore_stats st;
	pthread_t t[NTHREADS];
	struct uffd_restore *r;
	int k, w, efault;

	for (i = 0; i < NPAGES; i++)
		zero += kind_of(i) == ZERO;
	r = uffd_restore_open_opts(path, &o);
	if (!r)
		FAIL("%s: uffd_restore_open_opts: %s", what, strerror(errno));
	mem = uffd_restore_addr(r, 0);
	w = write_from_hole();
	CHECK_OK(uffd_restore_stats(r, &st));
	efault = w == -EFAULT;
	if (in_thread && !efault && !(w == 0 && st.done))
		FAIL("%s: write(2) from a hole: %d (%s), want EFAULT while the restore runs "
		     "(done: %d)", what, w, t_errname(w), st.done);
	if (!in_thread && w)
		FAIL("%s: write(2) from a hole: %d (%s), want it to wait for the page", what,
		     w, t_errname(w));

	__atomic_store_n(&go, 0, __ATOMIC_RELAXED);
	memset(wrong, 0, sizeof(wrong));
	for (k = 0; k < NTHREADS; k++)
		CHECK_OK(pthread_create(&t[k], NULL, toucher, (void *)(intptr_t)k));
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (k = 0; k < NTHREADS; k++)
		CHECK_OK(pthread_join(t[k], NULL));
	for (k = 0; k < NTHREADS; k++)
		if (wrong[k])
			FAIL("%s: thread %d saw %d pages wrong", what, k, wrong[k]);

	CHECK_OK(uffd_restore_wait(r, 30000));
	for (i = 0; i < NPAGES; i++)
		if (!page_right(mem, i))
			FAIL("%s: page %" PRIu64 " wrong after the restore", what, i);
	CHECK_OK(uffd_restore_stats(r, &st));
	CHECK(st.done);
	CHECK_EQ(st.pages, NPAGES);
	CHECK_EQ(st.zero, holes + zero);
	/* Every recorded page counted once, by one or the other; holes
	 * touched before the end were faults too. */
	if (st.faulted + st.prefetched < NPAGES - holes || st.faulted + st.prefetched > NPAGES)
		FAIL("%s: faulted %" PRIu64 " + prefetched %" PRIu64 " not within %" PRIu64
		     "..%d", what, st.faulted, st.prefetched, NPAGES - holes, NPAGES);
	fprintf(stderr, "%-22s faulted %5" PRIu64 ", prefetched %5" PRIu64 ", write from a "
		"hole: %s\n", what, st.faulted, st.prefetched, efault ? "EFAULT" : "went through");
	uffd_restore_close(r, true);
	return efault;
}

int main(void)
{
	const char *dir = t_img_dir();
	const char *v2 = t_img_path(0, dir, "lazy.img"), *v1 = t_img_path(1, dir, "lazy-v1.img");
	int efaults = 0;

	t_require(UFFD_FEAT_SIGBUS);
	t_require_in_thread();
	write_image(v2);
	write_image(v1);
	t_img_make_v1(v1, crc32c);

	round_once(v2, false, "hand-off");
	efaults += round_once(v2, true, "in-thread");
	efaults += round_once(v2, true, "in-thread again");
	efaults += round_once(v1, true, "in-thread, version 1");
	fprintf(stderr, "write(2) from a hole failed with EFAULT in %d of 3 in-thread rounds\n",
		efaults);
	return T_EXIT_PASS;
}
