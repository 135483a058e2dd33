// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The two pure modes of the same call, with the writers running:
 *
 *   precopy only   rounds until the dirty set fits the downtime budget (or
 *                  the round limit), then stop-and-copy: every page is at
 *                  the destination before the program runs there, so the
 *                  switchover names none and nothing is requested;
 *   postcopy only  no round: the switchover names every page, and each is
 *                  mapped exactly once at the destination, by an answer or
 *                  by the stream - over two connections, and over one
 *                  (requests and answers sharing the stream).
 *
 * Each destination table is exactly the source's at the pause.
 */
#include "lib/harness.h"
#include "lib/migrate-pair.h"

#define TABLE (16u << 20)
#define NPAGES (TABLE / 4096)

static void run(enum uffd_mig_mode mode, bool one_channel)
{
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = TABLE, .writers = 2,
			.seed = 11, .fill = 0.5, .hot_bytes = 2 << 20, .rate = 100000 },
		.mode = mode,
		.one_channel = one_channel,
	};
	struct uffd_mig_stats ss, ds;
	int ret;

	t_mig_start(&m);
	ret = t_mig_wait(&m, 30000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("migration: %s (source: %s; destination: %s)", strerror(-ret), ss.message,
		     ds.message);
	CHECK_EQ(ss.phase, UFFD_MIG_COMPLETE);
	CHECK_EQ(ds.phase, UFFD_MIG_COMPLETE);
	CHECK_EQ(ss.switchover_pages, ds.switchover_pages);
	if (mode == UFFD_MIG_PRECOPY_ONLY) {
		CHECK(ss.round >= 1);
		CHECK_EQ(ds.switchover_pages, 0);
		CHECK_EQ(ds.pages_requested, 0);
		CHECK_EQ(ds.pages_answered + ds.pages_background, 0);
		CHECK_EQ(ss.postcopy_ns > 0, 1);
	} else {
		CHECK_EQ(ss.round, 0);
		CHECK_EQ(ds.switchover_pages, NPAGES);
		/* Nothing crossed before the pause. */
		CHECK_EQ(ds.pages_answered + ds.pages_background, NPAGES);
		CHECK_EQ(ss.pages_sent, ds.pages_received);
		CHECK_EQ(ds.pages_received, NPAGES + ds.duplicates);
	}
	CHECK_EQ(ds.dropped, 0);
	t_mig_verify(&m);
	t_mig_free(&m);
}

int main(void)
{
	t_require(UFFD_FEAT_WP_ASYNC);
	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	run(UFFD_MIG_PRECOPY_ONLY, false);
	run(UFFD_MIG_POSTCOPY_ONLY, false);
	run(UFFD_MIG_POSTCOPY_ONLY, true);
	return T_EXIT_PASS;
}
