// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy recovery: the stream connection breaks in postcopy (a relay
 * shuts it down after 1 MiB went through), while the writers run at the
 * destination.  Both sides report the break (-ENOTCONN, phase BROKEN) and
 * nothing wrong is mapped meanwhile: the writers block on the pages they
 * lack and stay blocked (their count stops).  Resumed on new sockets, the
 * source learns which pages are still needed and the destination asks
 * again for those it had requested; the migration completes, the table is
 * exactly the source's at the pause, and every page the switchover named
 * was mapped exactly once (pages that came twice, in flight across the
 * break, were dropped as duplicates, never mapped again).
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"

#define TABLE (32u << 20)
#define NPAGES (TABLE / 4096)

int main(void)
{
	struct t_relay relay = { .cut_after = 1 << 20 };
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = TABLE, .writers = 2,
			.seed = 9, .fill = 1.0 },
		.mode = UFFD_MIG_POSTCOPY_ONLY,
		.stream_relay = &relay,
	};
	struct uffd_mig_stats ss, ds;
	int s[2], u[2], ret;
	uint64_t w0, w1;

	t_require(UFFD_FEAT_POISON);
	t_mig_start(&m);
	CHECK_EQ(uffd_mig_dest_wait(m.dst, 10000), -ENOTCONN);
	CHECK_EQ(uffd_mig_source_wait(m.src, 10000), -ENOTCONN);
	t_mig_stats(&m, &ss, &ds);
	CHECK_EQ(ss.phase, UFFD_MIG_BROKEN);
	CHECK_EQ(ds.phase, UFFD_MIG_BROKEN);
	CHECK(__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE));
	CHECK(ds.pages_answered + ds.pages_background < NPAGES);
	/* The writers wait for pages that cannot come. */
	t_sleep_ms(50);
	w0 = uffd_checker_writes(m.dst_c);
	t_sleep_ms(100);
	w1 = uffd_checker_writes(m.dst_c);
	CHECK_EQ(w1, w0);

	t_tcp_pair(&s[0], &s[1]);
	t_tcp_pair(&u[0], &u[1]);
	CHECK_OK(uffd_mig_dest_resume(m.dst, s[1], u[1]));
	CHECK_OK(uffd_mig_source_resume(m.src, s[0], u[0]));
	ret = t_mig_wait(&m, 30000);
	t_mig_stats(&m, &ss, &ds);
	if (ret)
		FAIL("after the resume: %s (source: %s; destination: %s)", strerror(-ret),
		     ss.message, ds.message);
	CHECK_EQ(ss.resumes, 1);
	CHECK_EQ(ds.resumes, 1);
	CHECK(uffd_checker_writes(m.dst_c) > w1);
	CHECK_EQ(ds.switchover_pages, NPAGES);
	CHECK_EQ(ds.pages_answered + ds.pages_background, NPAGES);
	CHECK_EQ(ds.dropped, 0);
	CHECK_EQ(ds.poisoned, 0);
	t_mig_verify(&m);
	t_mig_free(&m);
	close(s[0]);
	close(s[1]);
	close(u[0]);
	close(u[1]);
	return T_EXIT_PASS;
}
