/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A MADV_DONTNEED whose zap lands after the collect that reported it is
 * reported again, and a write after that zap is reported too (issue 15,
 * item 3: SYNC_WP missed such writes).
 *
 * madvise(2) sends the REMOVE event first, waits until it has been read,
 * then takes mmap_lock again and zaps.  A collect that runs in between
 * reports the pages (their REMOVE was read) while they still hold their
 * old contents, and re-arms them; then the zap takes them away - and on
 * anonymous memory their uffd-wp bits with them, leaving no marker.
 *
 * To land collects in that gap, each attempt DONTNEEDs a whole populated
 * 16 MiB range from a helper thread, and the main thread collects (REARM)
 * as soon as the REMOVE has been applied: the zap walks the range freeing
 * pages, the re-arm walks it faster, overtakes the zap and reaches the
 * last pages first.  /proc/self/pagemap, read just before and just after
 * that collect, tells which pages it ran ahead of.  Then, the zap done:
 *
 *   1. the DONTNEED's collect reports exactly the range;
 *   2. in "write" attempts the last page is written;
 *   3. the next collect reports every page that was still there after
 *      the first one (zeroed since that answer), the written page, and
 *      nothing that was already gone before it (it was reported then);
 *   4. the one after reports nothing.
 *
 * Pages zapped while the first collect ran may be reported in 3 or not.
 * Both userfaultfd backends, 16 attempts each, in a child of their own.
 * The number of attempts that landed in the gap is printed; without the
 * fix SYNC_WP fails at 3 whenever one did.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/track.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NPAGES		16384
#define ATTEMPTS	12
#define WORDS		(NPAGES / 64)

static const char *be;

/* Bit i set: page i of area is present, per pagemap (a uffd-wp marker
 * reads as swapped: it is not a page). */
static void populated(int pagemap, const char *area, uint64_t *bits)
{
	static uint64_t e[NPAGES];
	size_t i;

	if (pread(pagemap, e, sizeof(e), (uintptr_t)area / PAGE * 8) != sizeof(e))
		FAIL("pread /proc/self/pagemap: %s", strerror(errno));
	memset(bits, 0, WORDS * 8);
	for (i = 0; i < NPAGES; i++)
		if (e[i] >> 63)
			bits[i / 64] |= 1ULL << (i % 64);
}

/* A collect (REARM) of the tracker whose only range is area. */
static void collect_bits(struct uffd_tracker *t, const char *area, uint64_t *bits,
			 const char *step, int attempt)
{
	struct uffd_track_result res = { 0 };
	size_t i;
	int ret;

	ret = uffd_track_collect(t, UFFD_TRACK_REARM, &res);
	if (ret)
		FAIL("%s attempt %d, %s: collect: %d (%s)", be, attempt, step, ret,
		     t_errname(ret));
	memset(bits, 0, WORDS * 8);
	for (i = 0; i < res.nranges; i++) {
		uint64_t a;

		if (res.ranges[i].start < (uintptr_t)area ||
		    res.ranges[i].end > (uintptr_t)area + NPAGES * PAGE)
			FAIL("%s attempt %d, %s: a range outside the tracked one", be, attempt,
			     step);
		for (a = res.ranges[i].start; a < res.ranges[i].end; a += PAGE) {
			size_t pg = (a - (uintptr_t)area) / PAGE;

			bits[pg / 64] |= 1ULL << (pg % 64);
		}
	}
	uffd_track_result_free(&res);
}

/* must <= got <= may, or fail naming the first page that is not. */
static void check_between(const uint64_t *got, const uint64_t *must, const uint64_t *may,
			  const char *step, int attempt)
{
	size_t i;

	for (i = 0; i < NPAGES; i++) {
		bool g = got[i / 64] >> (i % 64) & 1;

		if (!g && (must[i / 64] >> (i % 64) & 1))
			FAIL("%s attempt %d, %s: page %zu not reported", be, attempt, step, i);
		if (g && !(may[i / 64] >> (i % 64) & 1))
			FAIL("%s attempt %d, %s: page %zu reported", be, attempt, step, i);
	}
}

static bool any(const uint64_t *bits)
{
	size_t i;

	for (i = 0; i < WORDS; i++)
		if (bits[i])
			return true;
	return false;
}

static int run(enum uffd_track_backend b)
{
	static uint64_t all[WORDS], none[WORDS], before[WORDS], after[WORDS], got[WORDS];
	UFFD_OPTS(uffd_track_opts, o, .backend = b, .no_thp = true);
	struct uffd_track_stats st;
	struct uffd_tracker *t;
	int pagemap, a, in_gap = 0;

	be = uffd_track_backend_name(b);
	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap < 0)
		SKIP("/proc/self/pagemap: %s", strerror(errno));
	t = uffd_track_new(&o);
	if (!t) {
		if (errno == EOPNOTSUPP)
			return T_EXIT_SKIP;
		FAIL("%s: uffd_track_new: %s", be, strerror(errno));
	}
	memset(all, 0xff, sizeof(all));
	for (a = 0; a < ATTEMPTS; a++) {
		bool write = a % 2;
		char *area = t_map_anon(NPAGES * PAGE), *last = area + (NPAGES - 1) * PAGE;
		uint64_t removed;
		struct t_mm_job j;

		memset(area, 1, NPAGES * PAGE);
		CHECK_OK(uffd_track_add(t, area, NPAGES * PAGE));
		CHECK_OK(uffd_track_stats(t, &st));
		removed = st.removed_pages;
		t_mm_job_start(&j, T_MM_DONTNEED, area, NPAGES * PAGE, NULL);
		do
			CHECK_OK(uffd_track_stats(t, &st));
		while (st.removed_pages == removed);
		populated(pagemap, area, before);
		collect_bits(t, area, got, "the DONTNEED's collect", a);
		populated(pagemap, area, after);
		check_between(got, all, all, "the DONTNEED's collect", a);
		in_gap += any(after);
		if (!t_mm_job_wait(&j, 5000))
			FAIL("%s attempt %d: madvise blocked for 5 s", be, a);
		t_mm_job_join(&j);
		CHECK_EQ(j.err, 0);
		if (write) {
			((volatile char *)last)[9] = 2;
			after[WORDS - 1] |= 1ULL << 63;
			before[WORDS - 1] |= 1ULL << 63;
		}
		collect_bits(t, area, got, "after the zap", a);
		check_between(got, after, before, write ? "written after the zap" :
			      "after the zap", a);
		collect_bits(t, area, got, "then", a);
		check_between(got, none, none, "then", a);
		CHECK_EQ(munmap(area, NPAGES * PAGE), 0);
	}
	fprintf(stderr, "%-22s %d of %d attempts collected before the zap was done\n", be,
		in_gap, ATTEMPTS);
	uffd_track_free(t);
	close(pagemap);
	return T_EXIT_PASS;
}

static int run_backend(void *b)
{
	return run(*(const enum uffd_track_backend *)b);
}

int main(void)
{
	static const enum uffd_track_backend backends[] = {
		UFFD_TRACK_WP_ASYNC, UFFD_TRACK_SYNC_WP,
	};
	int failed, ran;

	failed = t_run_each_in_child(run_backend, backends, sizeof(backends[0]),
				     sizeof(backends) / sizeof(backends[0]), 30000, &ran);
	if (failed)
		FAIL("%d backend(s) failed (see above)", failed);
	if (!ran)
		SKIP("no userfaultfd tracking backend here");
	return T_EXIT_PASS;
}
