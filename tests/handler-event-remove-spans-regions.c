/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A REMOVE event (MADV_DONTNEED) whose range covers parts of two adjacent
 * regions reaches the event callback of each of them, once, with the
 * kernel's exact range; both regions stay registered (the removed pages
 * fault again and are served by their own region's callback).
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uffd_region *seen[4];
static struct uffd_event seen_ev[4];
static int nseen;
static int fills;		/* atomic */

static void on_event(struct uffd_region *r, const struct uffd_event *ev)
{
	pthread_mutex_lock(&log_lock);
	if (nseen < 4) {
		seen[nseen] = r;
		seen_ev[nseen] = *ev;
	}
	nseen++;
	pthread_mutex_unlock(&log_lock);
}

static int fill_ones(struct uffd_fault *f)
{
	static const char ones[PAGE] = { [0 ... PAGE - 1] = 1 };

	__atomic_fetch_add(&fills, 1, __ATOMIC_RELAXED);
	return uffd_fault_copy(f, ones, PAGE);
}

static const struct uffd_region_ops ops = { .missing = fill_ones, .event = on_event };

static void read_page(char *p)
{
	struct t_access a;

	t_access_start(&a, p, false, 0);
	if (!t_access_wait(&a, 2000))
		FAIL("read at %p not served within 2 s", (void *)p);
	t_access_join(&a);
	CHECK_EQ(a.value, 1);
}

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_handler_stats s;
	struct uffd_region *a, *b;
	struct uffd_handler *h;
	struct t_mm_job j;
	struct uffd u;
	int i, waited, n;
	char *p;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	p = t_map_anon(4 * PAGE);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	a = uffd_handler_add(h, p, 2 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL);
	b = uffd_handler_add(h, p + 2 * PAGE, 2 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL);
	CHECK(a && b);
	CHECK_OK(uffd_handler_start(h));
	for (i = 0; i < 4; i++)
		read_page(p + i * PAGE);

	/* Drop pages 1 and 2: the last page of a, the first of b. */
	t_mm_job_start(&j, T_MM_DONTNEED, p + PAGE, 2 * PAGE, NULL);
	if (!t_mm_job_wait(&j, 2000))
		FAIL("madvise blocked for 2 s: REMOVE not read?");
	t_mm_job_join(&j);
	CHECK_EQ(j.err, 0);

	/* The event is applied right after it is read: allow 1 s. */
	for (waited = 0; waited < 1000; waited++) {
		pthread_mutex_lock(&log_lock);
		n = nseen;
		pthread_mutex_unlock(&log_lock);
		if (n >= 2)
			break;
		t_sleep_ms(1);
	}
	t_sleep_ms(20);		/* and no third call */
	pthread_mutex_lock(&log_lock);
	CHECK_EQ(nseen, 2);
	CHECK((seen[0] == a && seen[1] == b) || (seen[0] == b && seen[1] == a));
	for (i = 0; i < 2; i++) {
		CHECK_EQ(seen_ev[i].type, UFFD_EV_REMOVE);
		CHECK_EQ(seen_ev[i].range.start, (uintptr_t)(p + PAGE));
		CHECK_EQ(seen_ev[i].range.end, (uintptr_t)(p + 3 * PAGE));
	}
	pthread_mutex_unlock(&log_lock);

	/* Both dropped pages fault again and are served. */
	read_page(p + PAGE);
	read_page(p + 2 * PAGE);
	CHECK_EQ(__atomic_load_n(&fills, __ATOMIC_RELAXED), 6);
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.events[2], 1);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], 6);

	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
