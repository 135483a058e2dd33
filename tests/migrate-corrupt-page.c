// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A page whose bytes change on the wire fails the migration loudly, on
 * both sides, naming the page: the destination checks every page's CRC32C
 * before placing it.
 *
 * In precopy (a relay flips a byte of the stream's second page message):
 * the destination fails with EBADMSG before it ever runs the program, the
 * source hears why and fails too, and its program, never paused, keeps
 * running.  In postcopy (the flipped byte is in the first urgent answer,
 * nothing having crossed before the pause): the destination fails, the
 * page is never mapped - the thread that touched it stays blocked - and
 * when the caller poisons what is missing that thread gets SIGBUS, not
 * the corrupted bytes and not zeros.
 */
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"
#include "lib/sigbus.h"
#include "migrate/wire.h"

static void precopy_case(void)
{
	struct t_relay relay = { .corrupt_pages = 2 };
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = 8 << 20, .writers = 2,
			.seed = 5, .fill = 1.0, .hot_bytes = 1 << 20, .rate = 50000 },
		.mode = UFFD_MIG_HYBRID,
		.stream_relay = &relay,
	};
	struct uffd_mig_stats ss, ds;
	uint64_t w0;

	t_mig_start(&m);
	CHECK_EQ(uffd_mig_dest_wait(m.dst, 10000), -EBADMSG);
	uffd_mig_source_wait(m.src, 10000);
	t_mig_stats(&m, &ss, &ds);
	if (ss.error != -EBADMSG)
		FAIL("source: %s (%s)", strerror(-ss.error), ss.message);
	CHECK_EQ(ds.phase, UFFD_MIG_FAILED);
	CHECK_EQ(ss.phase, UFFD_MIG_FAILED);
	if (!strstr(ds.message, "CRC mismatch") || !strstr(ds.message, "of region 0"))
		FAIL("destination's message: '%s'", ds.message);
	if (!strstr(ss.message, "destination: ") || !strstr(ss.message, "CRC mismatch"))
		FAIL("source's message: '%s'", ss.message);
	/* The program never left: it runs on. */
	CHECK_EQ(__atomic_load_n(&m.resumed, __ATOMIC_ACQUIRE), 0);
	w0 = uffd_checker_writes(m.src_c);
	t_sleep_ms(20);
	CHECK(uffd_checker_writes(m.src_c) > w0);
	t_mig_free(&m);
}

static struct t_sigbus_read reader;

static void touch_first_page(struct t_mig *m)
{
	t_sigbus_read_start(&reader, m->dst_area);
}

static void postcopy_case(void)
{
	struct t_relay urelay = { .corrupt_pages = 1 }, srelay = { .hold_after = MIG_SWITCHOVER };
	struct t_mig m = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = 1 << 20, .writers = 1,
			.seed = 5, .fill = 1.0 },
		.mode = UFFD_MIG_POSTCOPY_ONLY,
		.no_writers = true,
		.on_resume = touch_first_page,
		.urgent_relay = &urelay,
		.stream_relay = &srelay,
	};
	struct uffd_mig_stats ss, ds;

	t_sigbus_catch();
	/* The stream is held after the switchover message: no background
	 * page reaches the destination, the urgent answer does. */
	t_mig_start(&m);
	CHECK_EQ(uffd_mig_dest_wait(m.dst, 10000), -EBADMSG);
	t_mig_stats(&m, &ss, &ds);
	if (!strstr(ds.message, "urgent: page 0 of region 0: CRC mismatch"))
		FAIL("destination's message: '%s'", ds.message);
	/* Nothing was mapped there: the reader waits. */
	CHECK(!t_sigbus_read_wait(&reader, 200));
	CHECK(uffd_mig_dest_poison(m.dst) >= 1);
	CHECK(t_sigbus_read_wait(&reader, 5000));
	t_sigbus_read_join(&reader);
	CHECK(reader.got_sigbus);
	CHECK(reader.bus.addr == m.dst_area);
	t_mig_free(&m);
}

int main(void)
{
	t_require(UFFD_FEAT_WP_ASYNC);
	t_require(UFFD_FEAT_PAGEMAP_SCAN);
	t_require(UFFD_FEAT_POISON);
	precopy_case();
	postcopy_case();
	return T_EXIT_PASS;
}
