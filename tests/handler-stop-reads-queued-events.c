/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_handler_stop() reads the events nobody read: with EVENT_REMOVE the
 * kernel keeps a thread in madvise(MADV_DONTNEED) until its event is read,
 * and unregistering the region does not let it go.  A stop that only
 * joined its threads and unregistered left such a thread waiting until the
 * userfaultfd was closed - for ever where the fd outlives the handler (a
 * page server's client holds a child's).  Each event read at the stop is
 * applied as a servicing thread would have: the region's event callback
 * sees it, stats.events counts it.
 *
 *  - UFFD_WAIT_EPOLL, nobody dispatching: the madvise waits; the stop
 *    lets it return within 2 s;
 *  - one servicing thread, held in the event callback of a first madvise
 *    while a second madvise queues its event; the stop begins, the thread
 *    is let go and ends without reading again: the second madvise returns
 *    within 2 s of the stop.
 *
 * Without the reading the madvise stays blocked and the test fails (the
 * first case every time; the second unless the servicing thread reads
 * the event before it sees the stop, which the 100 ms head start of the
 * stop makes unlikely).
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"

#define STAT_REMOVE	2	/* stats.events: fork, remap, remove, unmap, unknown */
#define MAX_SEEN	4

struct events_seen {
	int n;			/* atomic */
	uint64_t start[MAX_SEEN], end[MAX_SEEN];
	int hold;		/* atomic: the first callback waits for release */
	int held, release;	/* atomic */
};

static void on_event(struct uffd_region *r, const struct uffd_event *ev)
{
	struct events_seen *s = uffd_region_data(r);
	int i;

	if (ev->type != UFFD_EV_REMOVE)
		FAIL("event %d, want REMOVE only", ev->type);
	i = __atomic_load_n(&s->n, __ATOMIC_RELAXED);
	if (i == MAX_SEEN)
		FAIL("more than %d REMOVE events", MAX_SEEN);
	s->start[i] = ev->range.start;
	s->end[i] = ev->range.end;
	__atomic_store_n(&s->n, i + 1, __ATOMIC_RELEASE);
	if (i == 0 && __atomic_load_n(&s->hold, __ATOMIC_RELAXED)) {
		__atomic_store_n(&s->held, 1, __ATOMIC_RELEASE);
		/* bounded: a test that went wrong must not hang here */
		if (!t_wait_flag(&s->release, 10000))
			FAIL("the event callback was never released");
	}
}

struct madviser {
	pthread_t thread;
	void *addr;
	int ret;
	int done;		/* atomic */
};

static void *madvise_main(void *arg)
{
	struct madviser *m = arg;

	m->ret = madvise(m->addr, PAGE, MADV_DONTNEED) ? -errno : 0;
	__atomic_store_n(&m->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* MADV_DONTNEED of the page at addr from a thread of its own. */
static void madvise_start(struct madviser *m, void *addr)
{
	*m = (struct madviser){ .addr = addr };
	if (pthread_create(&m->thread, NULL, madvise_main, m))
		FAIL("pthread_create");
}

static void madvise_join_within(struct madviser *m, int ms, const char *when)
{
	if (!t_wait_flag(&m->done, ms))
		FAIL("madvise(MADV_DONTNEED) still blocked %d ms %s", ms, when);
	pthread_join(m->thread, NULL);
	CHECK_OK(m->ret);
}

struct stopper {
	pthread_t thread;
	struct uffd_handler *h;
	int ret;
	int begun, done;	/* atomic */
};

static void *stop_main(void *arg)
{
	struct stopper *st = arg;

	__atomic_store_n(&st->begun, 1, __ATOMIC_RELEASE);
	st->ret = uffd_handler_stop(st->h);
	__atomic_store_n(&st->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct setup {
	struct uffd u;
	struct uffd_handler *h;
	char *area;
	struct events_seen seen;
};

static void set_up(struct setup *s, enum uffd_wait wait)
{
	struct uffd_region_ops ops = { .event = on_event };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 1, .wait = wait);

	memset(&s->seen, 0, sizeof(s->seen));
	t_open(&s->u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	s->area = t_map_anon(4 * PAGE);
	memset(s->area, 0x5a, 4 * PAGE);
	s->h = uffd_handler_new(&s->u, &opts);
	CHECK(s->h);
	CHECK(uffd_handler_add(s->h, s->area, 4 * PAGE, 0, UFFD_REG_MISSING, &ops,
			       &s->seen));
	CHECK_OK(uffd_handler_start(s->h));
}

/* The i-th REMOVE the callback saw: of the page at addr. */
static void check_seen(const struct events_seen *seen, int i, const char *addr)
{
	CHECK_EQ(seen->start[i], (uintptr_t)addr);
	CHECK_EQ(seen->end[i], (uintptr_t)addr + PAGE);
}

static void check_removes(struct setup *s, int want)
{
	struct uffd_handler_stats st;

	CHECK_EQ(__atomic_load_n(&s->seen.n, __ATOMIC_ACQUIRE), want);
	CHECK_OK(uffd_handler_stats(s->h, &st));
	CHECK_EQ(st.events[STAT_REMOVE], want);
}

static void tear_down(struct setup *s)
{
	uffd_handler_free(s->h);
	uffd_close(&s->u);
	munmap(s->area, 4 * PAGE);
}

static void nobody_dispatching(void)
{
	struct madviser m;
	struct setup s;

	set_up(&s, UFFD_WAIT_EPOLL);
	madvise_start(&m, s.area + PAGE);
	/* nobody calls uffd_handler_dispatch(): the event stays queued */
	CHECK(!t_wait_flag(&m.done, 100));
	CHECK_EQ(__atomic_load_n(&s.seen.n, __ATOMIC_ACQUIRE), 0);

	CHECK_OK(uffd_handler_stop(s.h));
	madvise_join_within(&m, 2000, "after uffd_handler_stop() (EPOLL)");
	check_removes(&s, 1);
	check_seen(&s.seen, 0, s.area + PAGE);
	CHECK(t_is_zero(s.area + PAGE, PAGE));
	CHECK_EQ(s.area[0], 0x5a);
	tear_down(&s);
}

static void servicing_thread_busy(void)
{
	struct stopper st = { 0 };
	struct madviser first, second;
	struct setup s;

	set_up(&s, UFFD_WAIT_BLOCK);
	__atomic_store_n(&s.seen.hold, 1, __ATOMIC_RELAXED);
	/* read at once: the one servicing thread then waits in the callback */
	madvise_start(&first, s.area);
	madvise_join_within(&first, 2000, "with a servicing thread reading");
	CHECK(t_wait_flag(&s.seen.held, 2000));
	/* nobody is left to read this one */
	madvise_start(&second, s.area + 2 * PAGE);
	CHECK(!t_wait_flag(&second.done, 100));
	CHECK_EQ(__atomic_load_n(&s.seen.n, __ATOMIC_ACQUIRE), 1);

	/* The stop sets its flag first thing: give it a head start, so the
	 * thread, once released, ends instead of reading again. */
	st.h = s.h;
	if (pthread_create(&st.thread, NULL, stop_main, &st))
		FAIL("pthread_create");
	CHECK(t_wait_flag(&st.begun, 2000));
	t_sleep_ms(100);
	__atomic_store_n(&s.seen.release, 1, __ATOMIC_RELEASE);

	if (!t_wait_flag(&st.done, 2000))
		FAIL("uffd_handler_stop() did not return within 2 s");
	pthread_join(st.thread, NULL);
	CHECK_OK(st.ret);
	madvise_join_within(&second, 2000, "after uffd_handler_stop() (one thread)");
	check_removes(&s, 2);
	check_seen(&s.seen, 0, s.area);
	check_seen(&s.seen, 1, s.area + 2 * PAGE);
	CHECK(t_is_zero(s.area, PAGE));
	CHECK(t_is_zero(s.area + 2 * PAGE, PAGE));
	CHECK_EQ(s.area[PAGE], 0x5a);
	tear_down(&s);
}

int main(void)
{
	nobody_dispatching();
	servicing_thread_busy();
	return T_EXIT_PASS;
}
