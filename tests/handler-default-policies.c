/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The runtime's default resolution, per fault kind, when a region has no
 * callback (ops NULL): a MISSING read maps a zero page, a write to a
 * write-protected page is un-protected and lands, a MINOR fault on the
 * second mapping of a memfd is CONTINUEd and shows the page-cache contents.
 * And when a callback returns 0 without resolving its page, the same
 * default is applied: the faulting thread completes.  The counters say
 * exactly what happened: one fault of each kind, one page resolved each,
 * no callback errors.
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

static int lazy_calls;		/* atomic */

/* Returns "done" without resolving anything. */
static int forget(struct uffd_fault *f)
{
	__atomic_fetch_add(&lazy_calls, 1, __ATOMIC_RELAXED);
	return UFFD_FAULT_RESOLVED;
}

/* One access from another thread that must complete within 2 s. */
static char access_once(void *addr, bool write, char value)
{
	struct t_access a;

	t_access_start(&a, addr, write, value);
	if (!t_access_wait(&a, 2000))
		FAIL("access at %p did not complete within 2 s", addr);
	t_access_join(&a);
	return a.value;
}

int main(void)
{
	struct uffd_region_ops lazy_ops = {
		.missing = forget, .wp = forget, .minor = forget,
	};
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 1);
	struct uffd_handler_stats s;
	struct uffd_region *rm, *rw, *rn, *rl, *rlw;
	struct uffd_handler *h;
	char *miss, *wp, *lazy, *lazy_wp, *cache, *minor, *ref;
	struct uffd u;
	int memfd;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_MINOR_SHMEM), 0);
	miss = t_map_anon(2 * PAGE);
	wp = t_map_anon(2 * PAGE);
	lazy = t_map_anon(PAGE);
	lazy_wp = t_map_anon(PAGE);
	/* A memfd: "cache" fills the page cache, "minor" is registered. */
	cache = t_map_memfd(2 * PAGE, &memfd);
	minor = t_map_shared(memfd, 2 * PAGE);
	t_fill(cache, 2 * PAGE, 9);
	/* Populated pages to write-protect. */
	t_fill(wp, 2 * PAGE, 4);
	ref = t_map_anon(2 * PAGE);
	t_fill(ref, 2 * PAGE, 4);
	t_fill(lazy_wp, PAGE, 6);

	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	rm = uffd_handler_add(h, miss, 2 * PAGE, 0, UFFD_REG_MISSING, NULL, NULL);
	CHECK(rm);
	rw = uffd_handler_add(h, wp, 2 * PAGE, 0, UFFD_REG_WP, NULL, NULL);
	CHECK(rw);
	rn = uffd_handler_add(h, minor, 2 * PAGE, 0, UFFD_REG_MINOR, NULL, NULL);
	CHECK(rn);
	rl = uffd_handler_add(h, lazy, PAGE, 0, UFFD_REG_MISSING, &lazy_ops, NULL);
	CHECK(rl);
	rlw = uffd_handler_add(h, lazy_wp, PAGE, 0, UFFD_REG_WP, &lazy_ops, NULL);
	CHECK(rlw);
	CHECK_OK(uffd_writeprotect(uffd_region_uffd(rw), wp, 2 * PAGE, true, 0));
	CHECK_OK(uffd_writeprotect(uffd_region_uffd(rlw), lazy_wp, PAGE, true, 0));
	CHECK_OK(uffd_handler_start(h));

	/* MISSING, no callback: a zero page. */
	CHECK_EQ(access_once(miss + PAGE + 3, false, 0), 0);
	CHECK(t_is_zero(miss + PAGE, PAGE));
	WAIT_STATS(h, s, s.pages_resolved == 1);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 1);
	CHECK_EQ(s.pages_resolved, 1);

	/* WP, no callback: un-protected, the write lands, the rest is kept. */
	access_once(wp + PAGE + 10, true, (char)0xa5);
	ref[PAGE + 10] = (char)0xa5;
	CHECK(memcmp(wp, ref, 2 * PAGE) == 0);
	WAIT_STATS(h, s, s.pages_resolved == 2);
	CHECK_EQ(s.faults[UFFD_FAULT_WP], 1);
	CHECK_EQ(s.pages_resolved, 2);
	/* Page 0 of the WP region is still protected: its write faults too. */
	access_once(wp + 1, true, (char)0x5a);
	ref[1] = 0x5a;
	CHECK(memcmp(wp, ref, 2 * PAGE) == 0);
	WAIT_STATS(h, s, s.pages_resolved == 3);
	CHECK_EQ(s.faults[UFFD_FAULT_WP], 2);
	CHECK_EQ(s.pages_resolved, 3);

	/* MINOR, no callback: CONTINUE maps the page cache's page. */
	CHECK_EQ((unsigned char)access_once(minor + PAGE + 100, false, 0),
		 (unsigned char)cache[PAGE + 100]);
	CHECK(memcmp(minor + PAGE, cache + PAGE, PAGE) == 0);
	WAIT_STATS(h, s, s.pages_resolved == 4);
	CHECK_EQ(s.faults[UFFD_FAULT_MINOR], 1);
	CHECK_EQ(s.pages_resolved, 4);

	/* A callback that returns 0 without resolving: the default applies. */
	CHECK_EQ(access_once(lazy + 7, false, 0), 0);
	CHECK(t_is_zero(lazy, PAGE));
	CHECK_EQ(__atomic_load_n(&lazy_calls, __ATOMIC_RELAXED), 1);
	access_once(lazy_wp + 8, true, 0x11);
	CHECK_EQ(lazy_wp[8], 0x11);
	CHECK(t_is_filled(lazy_wp, 8, 6));
	CHECK_EQ(__atomic_load_n(&lazy_calls, __ATOMIC_RELAXED), 2);
	WAIT_STATS(h, s, s.pages_resolved == 6);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 2);
	CHECK_EQ(s.faults[UFFD_FAULT_WP], 3);
	CHECK_EQ(s.faults[UFFD_FAULT_MINOR], 1);
	CHECK_EQ(s.pages_resolved, 6);
	CHECK_EQ(s.callback_errors, 0);
	CHECK_EQ(s.coalesced, 0);
	CHECK_EQ(s.eexist, 0);
	CHECK_EQ(s.enoent, 0);
	CHECK_EQ(s.retries, 0);
	CHECK_EQ(s.unknown_addr, 0);
	CHECK_EQ(s.messages, 6);

	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
