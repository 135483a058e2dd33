/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pager map over a Redis server that goes away: killed, a page not yet
 * read raises SIGBUS at its address, a flush of a dirty page returns -EIO,
 * the resident pages still read, unmap and free return; stopped (SIGSTOP:
 * it accepts connections and never answers), the same SIGBUS comes once
 * the store's timeout has passed, and the program never hangs.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/kv-server.h"
#include "lib/sigbus.h"
#include "lib/test-store.h"

#define NPAGES		64
#define LEN		(NPAGES * PAGE)
#define TIMEOUT_MS	300

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A map over a server of its own, the first 10 pages read and page 5
 * written (resident, dirty). */
static char *map_some(struct uffd_pager *p, struct t_kv *r)
{
	UFFD_OPTS(uffd_store_redis_opts, o, .port = r->port, .size = LEN,
		  .timeout_ms = TIMEOUT_MS);
	struct uffd_store *s;
	char prefix[64], *map;
	int i;

	snprintf(prefix, sizeof(prefix), "dies-%d", (int)getpid());
	o.prefix = prefix;
	s = uffd_store_redis(&o);
	if (!s && errno == EOPNOTSUPP)
		SKIP("libuffd built without hiredis");
	CHECK(s);
	map = uffd_pager_map(p, s, 0, LEN, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	CHECK(map);
	for (i = 0; i < 10; i++)
		CHECK_EQ(map[i * PAGE + 3], 0);
	map[5 * PAGE + 7] = 'd';
	return map;
}

/* Touch an unread page: SIGBUS at it.  How long it took, in ms. */
static double expect_sigbus(char *map, int page)
{
	struct t_sigbus bus;
	double t0 = now_ms();
	char v;

	CHECK(t_access_catching_sigbus(map + page * PAGE + 9, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr & ~(PAGE - 1), (uintptr_t)(map + page * PAGE));
	return now_ms() - t0;
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 16 * PAGE,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	char dir[256], *map;
	struct t_kv r;
	double ms;

	t_require_redis_store();
	t_sigbus_catch();
	t_kv_mkdir(dir, sizeof(dir));
	/* Killed. */
	t_redis_start(&r, dir);
	p = t_pager_new(&o);
	map = map_some(p, &r);
	CHECK_OK(kill(r.pid, SIGKILL));
	t_kv_stop(&r);
	ms = expect_sigbus(map, 40);
	printf("killed: SIGBUS after %.0f ms\n", ms);
	CHECK_EQ(map[5 * PAGE + 7], 'd');
	CHECK_EQ(map[2 * PAGE], 0);
	CHECK_EQ(uffd_pager_flush(p, map + 5 * PAGE, PAGE), -EIO);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.read_errors >= 1);
	CHECK(st.write_errors >= 1);
	CHECK_EQ(uffd_pager_unmap(p, map), -EIO);
	CHECK_OK(uffd_pager_free(p));

	/* Stopped: connections accepted, nothing answered. */
	t_redis_start(&r, dir);
	p = t_pager_new(&o);
	map = map_some(p, &r);
	CHECK_OK(kill(r.pid, SIGSTOP));
	ms = expect_sigbus(map, 50);
	printf("stopped: SIGBUS after %.0f ms (timeout %d ms)\n", ms, TIMEOUT_MS);
	CHECK(ms >= TIMEOUT_MS);
	CHECK_EQ(uffd_pager_flush(p, map + 5 * PAGE, PAGE), -EIO);
	CHECK_EQ(uffd_pager_unmap(p, map), -EIO);
	CHECK_OK(uffd_pager_free(p));
	kill(r.pid, SIGCONT);
	t_kv_stop(&r);
	t_kv_rmdir(dir);
	return 0;
}
