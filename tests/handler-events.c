/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The region table stays true across the kernel's non-cooperative events
 * (EVENT_REMAP, EVENT_UNMAP, EVENT_REMOVE; two servicing threads; the
 * mremap/munmap/madvise runs in an application thread, which the kernel
 * blocks until a servicing thread has read the event):
 *  (a) mremap of a whole region: the event callback gets REMAP with the
 *      exact from/to/len on the same region object, now starting at "to";
 *      present pages moved along; a fault at the new address reaches the
 *      callback with f->region == that same pointer and its new address.
 *      The kernel follows REMAP with UNMAP of the old range: that must not
 *      reach or shrink the moved region (events[3] == 1, no UNMAP callback).
 *  (b) mremap of the middle third: the region splits into three pieces;
 *      the head keeps the original object, the moved piece and the tail are
 *      new objects with the right address and length, and a fault in each
 *      is served for the address that faulted.
 *  (c) MADV_DONTNEED of a populated page: REMOVE with the exact range, the
 *      next read faults again (faults[MISSING] grows by one) and gets fresh
 *      contents.
 *  (d) munmap of the middle of a region: UNMAP with the exact range, seen
 *      by the region before it shrinks; events[3] == 1; the head keeps the
 *      object, the tail is a new one, and faults in both still work.
 *
 * The missing callback fills a page with its own address (word 1 holds a
 * serial number), so the contents prove which address was served and when.
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"
#include "lib/mm-job.h"

#define MAXLOG 16

struct ev_rec {
	struct uffd_region *r;
	uint64_t r_start, r_len;	/* r's range when the callback ran */
	struct uffd_event ev;
};

struct fault_rec {
	struct uffd_region *r;
	uint64_t r_start, r_len;
	uint64_t addr;
	void *data;
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ev_rec evlog[MAXLOG];
static int nev;
static struct fault_rec flog[MAXLOG];
static int nfault;
static uint64_t serial;		/* atomic */
static int cookie;

static int fill_with_address(struct uffd_fault *f)
{
	uint64_t page[PAGE / 8];
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		page[i] = (uintptr_t)f->addr;
	page[1] = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&log_lock);
	if (nfault < MAXLOG)
		flog[nfault++] = (struct fault_rec){
			f->region, (uintptr_t)uffd_region_addr(f->region),
			uffd_region_len(f->region), (uintptr_t)f->addr, f->data };
	pthread_mutex_unlock(&log_lock);
	return uffd_fault_copy(f, page, PAGE);
}

static void on_event(struct uffd_region *r, const struct uffd_event *ev)
{
	pthread_mutex_lock(&log_lock);
	if (nev < MAXLOG)
		evlog[nev++] = (struct ev_rec){ r, (uintptr_t)uffd_region_addr(r),
						uffd_region_len(r), *ev };
	pthread_mutex_unlock(&log_lock);
}

static const struct uffd_region_ops ops = {
	.missing = fill_with_address, .event = on_event,
};

/* Wait (2 s at most) until the logs hold n events / n faults; copy one. */
static struct ev_rec event_at(int i)
{
	struct ev_rec e;
	int waited, n = 0;

	for (waited = 0; waited < 2000; waited++) {
		pthread_mutex_lock(&log_lock);
		n = nev;
		e = evlog[i];
		pthread_mutex_unlock(&log_lock);
		if (n > i)
			return e;
		t_sleep_ms(1);
	}
	FAIL("event callback %d not called within 2 s (got %d)", i + 1, n);
}

static int events_logged(void)
{
	int n;

	pthread_mutex_lock(&log_lock);
	n = nev;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static struct fault_rec last_fault(void)
{
	struct fault_rec fr;

	pthread_mutex_lock(&log_lock);
	CHECK(nfault > 0);
	fr = flog[nfault - 1];
	pthread_mutex_unlock(&log_lock);
	return fr;
}

static void reset_logs(void)
{
	pthread_mutex_lock(&log_lock);
	nev = nfault = 0;
	pthread_mutex_unlock(&log_lock);
}

/* Read addr from another thread (2 s deadline); return the fault record. */
static struct fault_rec fault_in(char *addr)
{
	struct t_access a;
	int before;

	pthread_mutex_lock(&log_lock);
	before = nfault;
	pthread_mutex_unlock(&log_lock);
	t_access_start(&a, addr, false, 0);
	if (!t_access_wait(&a, 2000))
		FAIL("read at %p not served within 2 s", (void *)addr);
	t_access_join(&a);
	pthread_mutex_lock(&log_lock);
	CHECK_EQ(nfault, before + 1);
	pthread_mutex_unlock(&log_lock);
	return last_fault();
}

/* Page at p was served for address want (and has that serial if != 0). */
static void check_page(const char *p, uint64_t want, uint64_t want_serial)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		if (i != 1 && w[i] != want)
			FAIL("page %p word %zu: %#" PRIx64 ", want %#" PRIx64,
			     (void *)p, i, w[i], want);
	if (want_serial)
		CHECK_EQ(w[1], want_serial);
}

/* An mremap/munmap/madvise in an application thread, 2 s deadline. */
static void run_job(enum t_mm_op op, char *addr, size_t len, char *to)
{
	struct t_mm_job j;

	t_mm_job_start(&j, op, addr, len, to);
	if (!t_mm_job_wait(&j, 2000))
		FAIL("op %d on %p blocked for 2 s: event not read?", op, (void *)addr);
	t_mm_job_join(&j);
	CHECK_EQ(j.err, 0);
	if (op == T_MM_MREMAP)
		CHECK(j.res == to);
}

struct setup {
	struct uffd u;
	struct uffd_handler *h;
};

static void setup(struct setup *s)
{
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);

	reset_logs();
	t_open(&s->u, UFFD_F(UFFD_FEAT_EVENT_REMAP) | UFFD_F(UFFD_FEAT_EVENT_UNMAP) |
		      UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	s->h = uffd_handler_new(&s->u, &opts);
	CHECK(s->h);
}

static void teardown(struct setup *s)
{
	CHECK_OK(uffd_handler_stop(s->h));
	uffd_handler_free(s->h);
	uffd_close(&s->u);
}

/* Counters once pages_resolved has reached want_resolved. */
static void stats(struct setup *s, struct uffd_handler_stats *st, uint64_t want_resolved)
{
	WAIT_STATS(s->h, *st, st->pages_resolved == want_resolved);
	CHECK_EQ(st->pages_resolved, want_resolved);
	CHECK_EQ(st->unknown_addr, 0);
	CHECK_EQ(st->callback_errors, 0);
	CHECK_EQ(st->enoent, 0);
	CHECK_EQ(st->events[0], 0);
	CHECK_EQ(st->events[4], 0);
}

static char *reserve(size_t len)
{
	char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED);
	return p;
}

static void remap_whole(void)
{
	struct uffd_handler_stats st;
	struct uffd_region *r;
	struct fault_rec fr;
	struct ev_rec e;
	struct setup s;
	char *a, *b;

	setup(&s);
	a = t_map_anon(8 * PAGE);
	b = reserve(8 * PAGE);
	r = uffd_handler_add(s.h, a, 8 * PAGE, 0, UFFD_REG_MISSING, &ops, &cookie);
	CHECK(r);
	CHECK_OK(uffd_handler_start(s.h));
	fr = fault_in(a + PAGE);
	CHECK(fr.r == r);
	CHECK_EQ(fr.addr, (uintptr_t)(a + PAGE));
	check_page(a + PAGE, (uintptr_t)(a + PAGE), 0);

	run_job(T_MM_MREMAP, a, 8 * PAGE, b);
	e = event_at(0);
	CHECK_EQ(e.ev.type, UFFD_EV_REMAP);
	CHECK_EQ(e.ev.remap.from, (uintptr_t)a);
	CHECK_EQ(e.ev.remap.to, (uintptr_t)b);
	CHECK_EQ(e.ev.remap.len, 8 * PAGE);
	CHECK(e.r == r);
	CHECK_EQ(e.r_start, (uintptr_t)b);
	CHECK_EQ(e.r_len, 8 * PAGE);

	/* The present page moved along and does not fault again. */
	check_page(b + PAGE, (uintptr_t)(a + PAGE), 0);
	fr = fault_in(b + 5 * PAGE + 3);
	CHECK(fr.r == r);
	CHECK(fr.data == &cookie);
	CHECK_EQ(fr.r_start, (uintptr_t)b);
	CHECK_EQ(fr.r_len, 8 * PAGE);
	CHECK_EQ(fr.addr, (uintptr_t)(b + 5 * PAGE));
	check_page(b + 5 * PAGE, (uintptr_t)(b + 5 * PAGE), 0);
	CHECK(uffd_region_addr(r) == b);
	CHECK_EQ(uffd_region_len(r), 8 * PAGE);

	stats(&s, &st, 2);
	CHECK_EQ(st.events[1], 1);
	/* The kernel's UNMAP of the old range: counted, not applied to r. */
	CHECK_EQ(st.events[3], 1);
	CHECK_EQ(events_logged(), 1);
	CHECK_EQ(st.events[2], 0);
	CHECK_EQ(st.faults[UFFD_FAULT_MISSING], 2);
	CHECK_EQ(st.pages_resolved, 2);
	teardown(&s);
	munmap(b, 8 * PAGE);
}

static void remap_middle(void)
{
	struct uffd_handler_stats st;
	struct uffd_region *r, *mid;
	struct fault_rec fr;
	struct ev_rec e;
	struct setup s;
	char *c, *d;

	setup(&s);
	c = t_map_anon(12 * PAGE);
	d = reserve(4 * PAGE);
	r = uffd_handler_add(s.h, c, 12 * PAGE, 0, UFFD_REG_MISSING, &ops, &cookie);
	CHECK(r);
	CHECK_OK(uffd_handler_start(s.h));

	run_job(T_MM_MREMAP, c + 4 * PAGE, 4 * PAGE, d);
	e = event_at(0);
	CHECK_EQ(e.ev.type, UFFD_EV_REMAP);
	CHECK_EQ(e.ev.remap.from, (uintptr_t)(c + 4 * PAGE));
	CHECK_EQ(e.ev.remap.to, (uintptr_t)d);
	CHECK_EQ(e.ev.remap.len, 4 * PAGE);
	mid = e.r;
	CHECK(mid != r);
	CHECK_EQ(e.r_start, (uintptr_t)d);
	CHECK_EQ(e.r_len, 4 * PAGE);

	/* Head: the original object, shrunk to the first third. */
	fr = fault_in(c + PAGE + 1);
	CHECK(fr.r == r);
	CHECK_EQ(fr.r_start, (uintptr_t)c);
	CHECK_EQ(fr.r_len, 4 * PAGE);
	CHECK_EQ(fr.addr, (uintptr_t)(c + PAGE));
	check_page(c + PAGE, (uintptr_t)(c + PAGE), 0);
	/* The moved third, at its new address. */
	fr = fault_in(d + 2 * PAGE);
	CHECK(fr.r == mid);
	CHECK(fr.data == &cookie);
	CHECK_EQ(fr.r_start, (uintptr_t)d);
	CHECK_EQ(fr.r_len, 4 * PAGE);
	CHECK_EQ(fr.addr, (uintptr_t)(d + 2 * PAGE));
	check_page(d + 2 * PAGE, (uintptr_t)(d + 2 * PAGE), 0);
	/* The tail: a third object. */
	fr = fault_in(c + 11 * PAGE + 4095);
	CHECK(fr.r != r && fr.r != mid);
	CHECK(fr.data == &cookie);
	CHECK_EQ(fr.r_start, (uintptr_t)(c + 8 * PAGE));
	CHECK_EQ(fr.r_len, 4 * PAGE);
	CHECK_EQ(fr.addr, (uintptr_t)(c + 11 * PAGE));
	check_page(c + 11 * PAGE, (uintptr_t)(c + 11 * PAGE), 0);
	CHECK(uffd_region_addr(r) == c);
	CHECK_EQ(uffd_region_len(r), 4 * PAGE);

	stats(&s, &st, 3);
	CHECK_EQ(st.events[1], 1);
	CHECK_EQ(st.events[3], 1);
	CHECK_EQ(events_logged(), 1);
	CHECK_EQ(st.faults[UFFD_FAULT_MISSING], 3);
	CHECK_EQ(st.pages_resolved, 3);
	teardown(&s);
	munmap(c, 12 * PAGE);
	munmap(d, 4 * PAGE);
}

static void remove_dontneed(void)
{
	struct uffd_handler_stats st;
	struct uffd_region *r;
	struct fault_rec fr;
	struct ev_rec e;
	struct setup s;
	uint64_t first;
	char *p;

	setup(&s);
	p = t_map_anon(4 * PAGE);
	r = uffd_handler_add(s.h, p, 4 * PAGE, 0, UFFD_REG_MISSING, &ops, &cookie);
	CHECK(r);
	CHECK_OK(uffd_handler_start(s.h));
	fault_in(p + PAGE);
	first = ((uint64_t *)(p + PAGE))[1];
	check_page(p + PAGE, (uintptr_t)(p + PAGE), first);
	stats(&s, &st, 1);
	CHECK_EQ(st.faults[UFFD_FAULT_MISSING], 1);

	run_job(T_MM_DONTNEED, p + PAGE, PAGE, NULL);
	e = event_at(0);
	CHECK_EQ(e.ev.type, UFFD_EV_REMOVE);
	CHECK_EQ(e.ev.range.start, (uintptr_t)(p + PAGE));
	CHECK_EQ(e.ev.range.end, (uintptr_t)(p + 2 * PAGE));
	CHECK(e.r == r);
	CHECK_EQ(e.r_start, (uintptr_t)p);
	CHECK_EQ(e.r_len, 4 * PAGE);

	/* Still registered: the page is missing again and faults afresh. */
	fr = fault_in(p + PAGE + 8);
	CHECK(fr.r == r);
	CHECK_EQ(fr.addr, (uintptr_t)(p + PAGE));
	CHECK(((uint64_t *)(p + PAGE))[1] != first);
	check_page(p + PAGE, (uintptr_t)(p + PAGE), first + 1);
	stats(&s, &st, 2);
	CHECK_EQ(st.faults[UFFD_FAULT_MISSING], 2);
	CHECK_EQ(st.pages_resolved, 2);
	CHECK_EQ(st.events[2], 1);
	CHECK_EQ(st.events[1], 0);
	CHECK_EQ(st.events[3], 0);
	CHECK_EQ(events_logged(), 1);
	CHECK(uffd_region_addr(r) == p);
	CHECK_EQ(uffd_region_len(r), 4 * PAGE);
	teardown(&s);
	munmap(p, 4 * PAGE);
}

static void unmap_middle(void)
{
	struct uffd_handler_stats st;
	struct uffd_region *r;
	struct fault_rec fr;
	struct ev_rec e;
	struct setup s;
	char *p;

	setup(&s);
	p = t_map_anon(8 * PAGE);
	r = uffd_handler_add(s.h, p, 8 * PAGE, 0, UFFD_REG_MISSING, &ops, &cookie);
	CHECK(r);
	CHECK_OK(uffd_handler_start(s.h));

	run_job(T_MM_MUNMAP, p + 3 * PAGE, 2 * PAGE, NULL);
	e = event_at(0);
	CHECK_EQ(e.ev.type, UFFD_EV_UNMAP);
	CHECK_EQ(e.ev.range.start, (uintptr_t)(p + 3 * PAGE));
	CHECK_EQ(e.ev.range.end, (uintptr_t)(p + 5 * PAGE));
	/* Called before the region shrinks. */
	CHECK(e.r == r);
	CHECK_EQ(e.r_start, (uintptr_t)p);
	CHECK_EQ(e.r_len, 8 * PAGE);

	fr = fault_in(p + 6 * PAGE);
	CHECK(fr.r != r);
	CHECK(fr.data == &cookie);
	CHECK_EQ(fr.r_start, (uintptr_t)(p + 5 * PAGE));
	CHECK_EQ(fr.r_len, 3 * PAGE);
	check_page(p + 6 * PAGE, (uintptr_t)(p + 6 * PAGE), 0);
	fr = fault_in(p + 2 * PAGE);
	CHECK(fr.r == r);
	CHECK_EQ(fr.r_start, (uintptr_t)p);
	CHECK_EQ(fr.r_len, 3 * PAGE);
	check_page(p + 2 * PAGE, (uintptr_t)(p + 2 * PAGE), 0);
	CHECK_EQ(uffd_region_len(r), 3 * PAGE);

	stats(&s, &st, 2);
	CHECK_EQ(st.events[3], 1);
	CHECK_EQ(st.events[1], 0);
	CHECK_EQ(st.events[2], 0);
	CHECK_EQ(events_logged(), 1);
	CHECK_EQ(st.faults[UFFD_FAULT_MISSING], 2);
	CHECK_EQ(st.pages_resolved, 2);
	teardown(&s);
	munmap(p, 8 * PAGE);
}

int main(void)
{
	remap_whole();
	remap_middle();
	remove_dontneed();
	unmap_middle();
	return T_EXIT_PASS;
}
