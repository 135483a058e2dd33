// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode (uffd/pager.h), what fails and how:
 * - set-up: a kernel without UFFD_FEATURE_SIGBUS (hidden from the probe
 *   here) makes uffd_pager_new() fail with EOPNOTSUPP (a default pager
 *   still works); a thread blocking SIGBUS, EBUSY until it unblocks it; a
 *   SIGBUS handler the program installed over libuffd's makes
 *   uffd_pager_map() fail with EBUSY until libuffd's is back; a Redis
 *   store (its reads allocate) is refused with EOPNOTSUPP;
 * - a page the store can not read raises SIGBUS in the thread that
 *   touched it, at the address it touched (the program's handler,
 *   installed before the pager, gets it), on_error is told once, and the
 *   page stays so - in another thread too - until it is evicted, while
 *   its neighbours read fine; the end of the store is where mmap puts it
 *   (a partial page zero-filled, a page wholly past it SIGBUS).
 */
#include <signal.h>
#include <sys/mman.h>

#include <uffd/pager.h>

#include "core/internal.h"
#include "lib/harness.h"
#include "lib/kv-server.h"
#include "lib/sigbus.h"
#include "lib/test-store.h"

#define NPAGES	8
#define SEED	11

static int errors_seen;
static void *error_addr;
static int error_code;

/* Called in the faulting thread's signal handler: atomics only. */
static void on_error(void *addr, size_t len, int err, void *arg)
{
	__atomic_store_n(&error_addr, addr, __ATOMIC_SEQ_CST);
	__atomic_store_n(&error_code, err, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&errors_seen, 1, __ATOMIC_SEQ_CST);
}

static struct uffd_pager *new_inthread(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 1 << 20, .on_error = on_error,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD, .in_thread = true);

	errno = 0;
	return uffd_pager_new(&o);
}

static void setup_refusals(struct t_store *ts)
{
	UFFD_OPTS(uffd_pager_opts, plain, .buffer_bytes = 1 << 20);
	struct sigaction mine = { .sa_handler = SIG_IGN }, saved;
	struct t_sigbus_blocker blocker;
	struct uffd_pager *p;
	char *map;

	/* No SIGBUS feature in the kernel. */
	uffd__hide_features(UFFD_F(UFFD_FEAT_SIGBUS));
	uffd_probe_reset();
	CHECK(!new_inthread());
	CHECK_EQ(errno, EOPNOTSUPP);
	p = t_pager_new(&plain);
	uffd_pager_free(p);
	uffd__hide_features(0);
	uffd_probe_reset();

	/* Another thread blocks SIGBUS. */
	t_sigbus_blocker_start(&blocker);
	CHECK(!new_inthread());
	CHECK_EQ(errno, EBUSY);
	t_sigbus_blocker_unblock(&blocker);
	p = new_inthread();
	CHECK(p);

	/* The program's SIGBUS action over libuffd's. */
	CHECK_OK(sigaction(SIGBUS, &mine, &saved) ? -errno : 0);
	errno = 0;
	CHECK(!uffd_pager_map(p, &ts->store, 0, PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EBUSY);
	CHECK_OK(sigaction(SIGBUS, &saved, NULL) ? -errno : 0);
	map = uffd_pager_map(p, &ts->store, 0, PAGE, PROT_READ, 0, 0);
	CHECK(map);
	CHECK_EQ(*(uint64_t *)(map + 8), t_word(8, SEED));
	CHECK_OK(uffd_pager_free(p));
	t_sigbus_blocker_end(&blocker);
}

/* A Redis store: refused in-thread (when libuffd has the Redis store). */
static void redis_refused(void)
{
	UFFD_OPTS(uffd_store_redis_opts, ro, .prefix = "inthread", .size = 4 * PAGE,
		  .timeout_ms = 5000);
	struct uffd_store *s;
	struct uffd_pager *p;
	struct t_kv k;

	ro.port = 1;	/* nobody there: EIO, unless there is no Redis store */
	s = uffd_store_redis(&ro);
	if (!s && errno == EOPNOTSUPP) {
		fprintf(stderr, "note: no Redis store in this build: its case skipped\n");
		return;
	}
	uffd_store_free(s);
	t_kv_start(&k, NULL, NULL);
	ro.port = k.port;
	s = uffd_store_redis(&ro);
	CHECK(s);
	p = new_inthread();
	CHECK(p);
	errno = 0;
	CHECK(!uffd_pager_map(p, s, 0, 4 * PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EOPNOTSUPP);
	CHECK_OK(uffd_pager_free(p));
	uffd_store_free(s);
	CHECK_EQ(t_kv_stop(&k), 0);
}

int main(void)
{
	/* 5.5 pages of data under a map of 8 pages. */
	struct t_store *ts = t_store_new(5 * PAGE + PAGE / 2, SEED);
	struct uffd_pager_stats st;
	struct t_sigbus_read r;
	struct t_sigbus bus;
	struct uffd_pager *p;
	char v = 0, *map;

	t_require_in_thread();
	t_require(UFFD_FEAT_SIGBUS);
	t_sigbus_catch();	/* before libuffd's: the pager's SIGBUS comes here */
	setup_refusals(ts);
	redis_refused();

	p = new_inthread();
	CHECK(p);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);

	/* A read error: SIGBUS here, at the address, on_error told. */
	__atomic_store_n(&ts->fail_read_page, 2, __ATOMIC_SEQ_CST);
	CHECK(t_access_catching_sigbus(map + 2 * PAGE + 5, false, &v, &bus));
	CHECK_EQ(bus.code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(map + 2 * PAGE + 5));
	CHECK_EQ(__atomic_load_n(&errors_seen, __ATOMIC_SEQ_CST), 1);
	CHECK_EQ((uintptr_t)__atomic_load_n(&error_addr, __ATOMIC_SEQ_CST),
		 (uintptr_t)(map + 2 * PAGE));
	CHECK_EQ(__atomic_load_n(&error_code, __ATOMIC_SEQ_CST), -EIO);
	/* Sticky, for a write and in another thread too; not read again. */
	__atomic_store_n(&ts->fail_read_page, -1, __ATOMIC_SEQ_CST);
	CHECK(t_access_catching_sigbus(map + 3 * PAGE - 8, true, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(map + 3 * PAGE - 8));
	t_sigbus_read_start(&r, map + 2 * PAGE + 100);
	CHECK(t_sigbus_read_wait(&r, 5000));
	t_sigbus_read_join(&r);
	CHECK(r.got_sigbus);
	CHECK_EQ((uintptr_t)r.bus.addr, (uintptr_t)(map + 2 * PAGE + 100));
	CHECK_EQ(t_reads(ts, 2), 0);
	CHECK_EQ(__atomic_load_n(&errors_seen, __ATOMIC_SEQ_CST), 1);
	/* Its neighbours read. */
	CHECK_EQ(*(uint64_t *)(map + PAGE), t_word(PAGE, SEED));
	CHECK_EQ(*(uint64_t *)(map + 3 * PAGE), t_word(3 * PAGE, SEED));
	/* Evicted, it is read again. */
	CHECK_OK(uffd_pager_evict(p, map + 2 * PAGE, PAGE));
	CHECK_EQ(*(uint64_t *)(map + 2 * PAGE + 8), t_word(2 * PAGE + 8, SEED));
	CHECK_EQ(t_reads(ts, 2), 1);

	/* The end of the store. */
	CHECK_EQ(*(uint64_t *)(map + 5 * PAGE + 8), t_word(5 * PAGE + 8, SEED));
	CHECK(t_is_zero(map + 5 * PAGE + PAGE / 2, PAGE / 2));
	CHECK(t_access_catching_sigbus(map + 6 * PAGE + 1, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(map + 6 * PAGE + 1));
	CHECK(t_access_catching_sigbus(map + 7 * PAGE, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr, (uintptr_t)(map + 7 * PAGE));

	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK_EQ(st.read_errors, 1);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_EQ(t_store_writes(ts), 0);
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return T_EXIT_PASS;
}
