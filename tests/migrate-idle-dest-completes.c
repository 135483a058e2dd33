// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A destination whose program touches nothing after the switchover still
 * completes.  Precopied pages wait in a shadow and the destination's fault
 * thread moves them into place once every page the switchover named is
 * in; with no fault to wake it, that thread sleeps.  When the background
 * stream settled the last named page, nothing woke it: the shadow's pages
 * never moved, COMPLETE was never sent, and both sides waited for ever
 * (seen once in `uffd bench migrate`, one channel over the shaped link,
 * where the writers had finished with their hot set).  Both channel
 * layouts: the writers dirty a hot set on the source during precopy, the
 * destination adopts them idle, and the migration must end within 20 s a side
 * with every page exact.
 */
#include "lib/harness.h"
#include "lib/migrate-pair.h"

static void one(bool one_channel)
{
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = 32 << 20, .writers = 2,
			.seed = 11, .fill = 0.75, .hot_bytes = 8 << 20, .rate = 200000 },
		.mode = UFFD_MIG_HYBRID,
		.one_channel = one_channel,
		.dst_idle = true,
	};
	struct uffd_mig_stats ss, ds;
	int ret;

	t_mig_start(&m);
	ret = t_mig_wait(&m, 20000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("%s: migration: %s (source: %s; destination: %s; %llu named, %llu moved)",
		     one_channel ? "one channel" : "two channels", strerror(-ret), ss.message,
		     ds.message, (unsigned long long)ds.switchover_pages,
		     (unsigned long long)ds.pages_moved);
	CHECK_EQ(ss.phase, UFFD_MIG_COMPLETE);
	CHECK_EQ(ds.phase, UFFD_MIG_COMPLETE);
	/* The case in question: pages named at the switchover, fetched with
	 * no fault (nothing ran there), and a shadow to empty afterwards. */
	CHECK(ds.switchover_pages > 0);
	CHECK_EQ(ds.pages_requested, 0);
	CHECK_EQ(ds.pages_background, ds.switchover_pages);
	CHECK(ds.pages_moved > 0);
	t_mig_verify(&m);
	t_mig_free(&m);
}

int main(void)
{
	t_require(UFFD_FEAT_WP_ASYNC);
	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	t_require(UFFD_FEAT_MOVE);
	one(true);
	one(false);
	return T_EXIT_PASS;
}
