/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A callback may resolve more than its page (read-ahead): uffd_fault_copy()
 * with 16 pages fills the faulting page and the 15 after it.  A sequential
 * scan of 256 pages by one thread then raises exactly 16 MISSING faults,
 * every page holds the source bytes at its offset, and pages_resolved is
 * 256.  The length is clipped to the region: in a 20-page region registered
 * inside a larger mapping, the scan raises 2 faults (pages 0 and 16), the
 * second copy fills just the 4 pages left (pages_resolved == 20, no error),
 * and the unregistered pages after the region are untouched.
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

#define AHEAD 16

/* Set before uffd_handler_start(). */
struct source {
	char *area, *src;
};

static int errors;		/* atomic: callback saw a failed copy */
static int calls;		/* atomic */

static int copy_ahead(struct uffd_fault *f)
{
	struct source *s = f->data;
	size_t off = (char *)f->addr - s->area;
	int ret = uffd_fault_copy(f, s->src + off, AHEAD * PAGE);

	__atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	if (ret)
		__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
	return ret;
}

struct scan {
	pthread_t thread;
	volatile unsigned char *p;
	size_t npages;
	unsigned sum;
	int done;		/* atomic */
};

static void *scan_main(void *arg)
{
	struct scan *sc = arg;
	size_t i;

	for (i = 0; i < sc->npages; i++)
		sc->sum += sc->p[i * PAGE + 1];
	__atomic_store_n(&sc->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Scan npages of area from one thread, within 3 s. */
static void scan_all(char *area, size_t npages)
{
	struct scan sc = { .p = (unsigned char *)area, .npages = npages };

	if (pthread_create(&sc.thread, NULL, scan_main, &sc))
		FAIL("pthread_create");
	if (!t_wait_flag(&sc.done, 3000))
		FAIL("scan of %zu pages not done within 3 s", npages);
	pthread_join(sc.thread, NULL);
}

/* A region of npages inside a mapping of map_pages; scan it; check. */
static void run(size_t npages, size_t map_pages, uint64_t want_faults)
{
	struct uffd_region_ops ops = { .missing = copy_ahead };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 1);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct source so;
	struct uffd u;

	__atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&errors, 0, __ATOMIC_RELAXED);
	t_open(&u, 0, 0);
	so.area = t_map_anon(map_pages * PAGE);
	/* The source is as long as the mapping: clipping, not a short
	 * source, is what must keep the copy inside the region. */
	so.src = t_map_anon(map_pages * PAGE);
	t_fill(so.src, map_pages * PAGE, 8);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	CHECK(uffd_handler_add(h, so.area, npages * PAGE, 0, UFFD_REG_MISSING, &ops, &so));
	CHECK_OK(uffd_handler_start(h));

	scan_all(so.area, npages);
	CHECK(memcmp(so.area, so.src, npages * PAGE) == 0);
	WAIT_STATS(h, s, s.pages_resolved == npages);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], want_faults);
	CHECK_EQ(s.messages, want_faults);
	CHECK_EQ(s.pages_resolved, npages);
	CHECK_EQ(s.coalesced, 0);
	CHECK_EQ(s.eexist, 0);
	CHECK_EQ(s.enoent, 0);
	CHECK_EQ(s.callback_errors, 0);
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), want_faults);
	CHECK_EQ(__atomic_load_n(&errors, __ATOMIC_RELAXED), 0);
	CHECK_OK(uffd_handler_stop(h));
	/* Past the region: never filled by the handler (unregistered, so
	 * reading it now maps ordinary zero pages). */
	if (map_pages > npages)
		CHECK(t_is_zero(so.area + npages * PAGE, (map_pages - npages) * PAGE));
	uffd_handler_free(h);
	uffd_close(&u);
	munmap(so.area, map_pages * PAGE);
	munmap(so.src, map_pages * PAGE);
}

int main(void)
{
	run(256, 256, 256 / AHEAD);
	run(20, 36, 2);
	return T_EXIT_PASS;
}
