// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The source is gone for good in postcopy: the destination poisons what
 * it lacks, and every touch of such a page raises SIGBUS - the thread that
 * was blocked on one, and any later access - never a zero page, while the
 * pages that did arrive read as they were.
 *
 * Postcopy only, no writers, the background stream held back by a relay:
 * page 10 is fetched by a touch (an urgent answer), then the connection is
 * cut, a reader blocks on page 20, the source is freed, and the
 * destination poisons: every page but page 10.
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"
#include "lib/sigbus.h"
#include "migrate/wire.h"

#define TABLE (4u << 20)
#define NPAGES (TABLE / 4096)

int main(void)
{
	struct t_relay relay = { .hold_after = MIG_SWITCHOVER };
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = TABLE, .writers = 1,
			.seed = 4, .fill = 1.0 },
		.mode = UFFD_MIG_POSTCOPY_ONLY,
		.no_writers = true,
		.stream_relay = &relay,
	};
	const char *src = NULL, *dst;
	struct t_sigbus_read reader;
	struct uffd_mig_stats ds;
	struct t_sigbus bus;
	char v;

	t_require(UFFD_FEAT_POISON);
	t_sigbus_catch();
	t_mig_start(&m);
	src = uffd_checker_area(m.src_c);
	dst = m.dst_area;
	while (!__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	/* A page fetched on demand. */
	t_check_bytes("page 10", dst + 10 * 4096, src + 10 * 4096, 4096);
	/* The link dies; a thread touching a missing page waits. */
	t_relay_cut(&relay);
	CHECK_EQ(uffd_mig_dest_wait(m.dst, 10000), -ENOTCONN);
	t_sigbus_read_start(&reader, (char *)dst + 20 * 4096);
	CHECK(!t_sigbus_read_wait(&reader, 100));
	/* The source is gone for good. */
	uffd_mig_source_free(m.src);
	m.src = NULL;
	CHECK_EQ(uffd_mig_dest_poison(m.dst), NPAGES - 1);
	CHECK(t_sigbus_read_wait(&reader, 5000));
	t_sigbus_read_join(&reader);
	CHECK(reader.got_sigbus);
	CHECK(reader.bus.addr == dst + 20 * 4096);
	CHECK_EQ(reader.bus.code, t_poison_sigbus_code());
	/* Any later touch of a missing page: SIGBUS, read or write. */
	CHECK(t_access_catching_sigbus((volatile char *)dst + 30 * 4096, false, &v, &bus));
	CHECK(bus.addr == dst + 30 * 4096);
	v = 1;
	CHECK(t_access_catching_sigbus((volatile char *)dst + NPAGES * 4096 - 1, true, &v, &bus));
	/* What came stays. */
	t_check_bytes("page 10 after", dst + 10 * 4096, src + 10 * 4096, 4096);
	CHECK_OK(uffd_mig_dest_stats(m.dst, &ds));
	CHECK_EQ(ds.phase, UFFD_MIG_FAILED);
	CHECK_EQ(ds.error, -ENOTCONN);
	CHECK_EQ(ds.poisoned, NPAGES - 1);
	CHECK(strstr(ds.message, "1023 pages poisoned"));
	/* The poison outlives the migration's handle. */
	uffd_mig_dest_free(m.dst);
	m.dst = NULL;
	CHECK(t_access_catching_sigbus((volatile char *)dst + 40 * 4096, false, &v, &bus));
	t_mig_free(&m);
	return T_EXIT_PASS;
}
