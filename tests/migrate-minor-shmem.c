// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Post-copy migration into memfd memory: precopied pages go into the
 * destination's page cache through a second mapping, and after the
 * switchover a first touch of a page that is still current is resolved by
 * UFFDIO_CONTINUE alone, with no request to the source.
 *
 * First with nothing written during the precopy: after one round every
 * page is current at the destination, the switchover names none, nothing
 * is registered, requested, streamed or continued - the pages are simply
 * there.  Then with two writers dirtying a hot set during the precopy:
 * the switchover names what they wrote since it was sent, and the
 * destination reads every page once at its switchover (in its resume
 * callback, so that the background stream, received by that thread, waits
 * meanwhile): each page the switchover did not name is mapped by CONTINUE
 * (exactly those: every page holds data), each one it named is requested
 * and answered exactly once.  The tables are exact either way.
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"

#define TABLE (8u << 20)
#define NPAGES (TABLE / 4096)

/* Read one word of every page of the destination's table. */
static uint64_t touch_all(const void *area)
{
	const volatile uint64_t *w = area;
	uint64_t sum = 0;
	size_t p;

	for (p = 0; p < NPAGES; p++)
		sum += w[p * 512];
	return sum;
}

static void touch_at_resume(struct t_mig *m)
{
	touch_all(m->dst_area);
}

static void run(bool writers)
{
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = TABLE, .writers = 2,
			.seed = 3, .fill = 1.0, .hot_bytes = 512 << 10, .rate = 100000 },
		.shmem = true,
		.no_writers = !writers,
		.dst_idle = true,
		.mode = UFFD_MIG_HYBRID,
		.max_rounds = 1,
		.on_resume = touch_at_resume,
	};
	struct uffd_mig_stats ss, ds;
	int ret;

	t_mig_start(&m);
	while (!__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE) &&
	       uffd_mig_dest_wait(m.dst, 0) == -ETIMEDOUT)
		usleep(1000);
	CHECK(m.dst_c);
	ret = t_mig_wait(&m, 30000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("migration: %s (source: %s; destination: %s)", strerror(-ret), ss.message,
		     ds.message);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "switch %llu req %llu ans %llu bg %llu cont %llu lzero %llu dup %llu recv %llu\n",
			(unsigned long long)ds.switchover_pages, (unsigned long long)ds.pages_requested,
			(unsigned long long)ds.pages_answered, (unsigned long long)ds.pages_background,
			(unsigned long long)ds.pages_continued, (unsigned long long)ds.pages_local_zero,
			(unsigned long long)ds.duplicates, (unsigned long long)ds.pages_received);
	CHECK_EQ(ss.round, 1);
	CHECK_EQ(ds.pages_received, NPAGES + ds.pages_answered + ds.pages_background +
		 ds.duplicates + ds.dropped);
	if (!writers) {
		CHECK_EQ(ds.switchover_pages, 0);
		CHECK_EQ(ds.pages_requested, 0);
		CHECK_EQ(ds.pages_background, 0);
		CHECK_EQ(ds.pages_continued, 0);
	} else {
		CHECK(ds.switchover_pages > 0);
		CHECK(ds.switchover_pages <= (512 << 10) / 4096);
		CHECK_EQ(ds.pages_continued, NPAGES - ds.switchover_pages);
		CHECK_EQ(ds.pages_requested, ds.switchover_pages);
		CHECK_EQ(ds.pages_answered, ds.switchover_pages);
		CHECK_EQ(ds.pages_background, 0);
	}
	CHECK_EQ(ds.dropped, 0);
	t_mig_verify(&m);
	t_mig_free(&m);
}

int main(void)
{
	t_require(UFFD_FEAT_WP_ASYNC);
	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	t_require(UFFD_FEAT_MINOR_SHMEM);
	run(false);
	run(true);
	return T_EXIT_PASS;
}
