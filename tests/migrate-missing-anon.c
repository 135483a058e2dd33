// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Post-copy migration of private anonymous memory over loopback TCP, with
 * the program running throughout: two checker writers dirty a hot set on
 * the source during two precopy rounds, the switchover hands them (their
 * state in the blob) to the destination, where they fault the pages they
 * touch in through the urgent connection while the rest streams in the
 * background.  The destination's table is then exactly the source's at the
 * pause (every page the destination wrote held the source's version when
 * first written there), and every page the switchover named was mapped
 * exactly once: by an answer or by the stream, none twice.
 */
#include "lib/harness.h"
#include "lib/migrate-pair.h"

int main(void)
{
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = 32 << 20, .writers = 2,
			.seed = 7, .fill = 0.75, .hot_bytes = 4 << 20, .rate = 200000 },
		.mode = UFFD_MIG_HYBRID,
	};
	struct uffd_mig_stats ss, ds;
	int ret;

	t_require(UFFD_FEAT_WP_ASYNC);
	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	t_mig_start(&m);
	ret = t_mig_wait(&m, 30000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("migration: %s (source: %s; destination: %s)", strerror(-ret), ss.message,
		     ds.message);
	if (getenv("T_VERBOSE")) {
		fprintf(stderr, "dst: continued %llu moved %llu\n", (unsigned long long)ds.pages_continued,
			(unsigned long long)ds.pages_moved);
		fprintf(stderr, "src: round %u sent %llu zero %llu dirty %llu switch %llu req %llu bg %llu bytes %llu down %.3f ms pre %.1f post %.1f total %.1f ms\n",
			ss.round, (unsigned long long)ss.pages_sent, (unsigned long long)ss.zero_pages,
			(unsigned long long)ss.dirty_pages, (unsigned long long)ss.switchover_pages,
			(unsigned long long)ss.pages_requested, (unsigned long long)ss.pages_background,
			(unsigned long long)ss.bytes_sent, ss.downtime_ns / 1e6, ss.precopy_ns / 1e6,
			ss.postcopy_ns / 1e6, ss.total_ns / 1e6);
		fprintf(stderr, "dst: recv %llu switch %llu req %llu ans %llu bg %llu cont %llu lzero %llu dup %llu drop %llu down %.3f ms blocked %.1f ms req p50 %.0f us p99 %.0f us max %.0f us n %llu\n",
			(unsigned long long)ds.pages_received, (unsigned long long)ds.switchover_pages,
			(unsigned long long)ds.pages_requested, (unsigned long long)ds.pages_answered,
			(unsigned long long)ds.pages_background, (unsigned long long)ds.pages_continued,
			(unsigned long long)ds.pages_local_zero, (unsigned long long)ds.duplicates,
			(unsigned long long)ds.dropped, ds.downtime_ns / 1e6, ds.blocked_ns / 1e6,
			ds.req_p50_ns / 1e3, ds.req_p99_ns / 1e3, ds.req_ns_max / 1e3,
			(unsigned long long)ds.req_count);
	}
	CHECK_EQ(ss.phase, UFFD_MIG_COMPLETE);
	CHECK_EQ(ds.phase, UFFD_MIG_COMPLETE);
	/* Precopy, then a switchover that left pages for after. */
	CHECK(ss.round >= 1);
	CHECK(ds.switchover_pages > 0);
	CHECK_EQ(ss.switchover_pages, ds.switchover_pages);
	/* The writers ran at the destination and faulted pages in. */
	CHECK(__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE));
	CHECK(m.dst_c);
	CHECK(ds.pages_requested > 0);
	CHECK(ds.req_count > 0);
	/* Each page the destination lacked was mapped exactly once. */
	CHECK_EQ(ds.pages_answered + ds.pages_background, ds.switchover_pages);
	CHECK_EQ(ds.dropped, 0);
	CHECK_EQ(ds.poisoned, 0);
	if (uffd_feature_supported(UFFD_FEAT_MOVE) == 1)
		CHECK(ds.pages_continued + ds.pages_moved > 0);
	CHECK(ds.pages_continued + ds.pages_moved + ds.pages_answered + ds.pages_background +
	      ds.pages_local_zero <= (32 << 20) / 4096);
	CHECK_EQ(ss.bytes_sent, ds.bytes_received);
	CHECK_EQ(ds.bytes_sent, ss.bytes_received);
	t_mig_verify(&m);
	t_mig_free(&m);
	return T_EXIT_PASS;
}
