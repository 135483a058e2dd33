// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode never waits for a lock to resolve a fault, so a fault
 * taken inside libuffd - by a thread holding one of its locks - or inside
 * a callback does not deadlock:
 *
 *   - an UNMAP event callback, which the handler's thread runs holding
 *     the region table's write lock and the userfaultfd's read lock,
 *     reads a missing page of the same in-thread region: the fault is
 *     resolved in that thread (with the hand-off it would wait for
 *     itself), the callback sees the callback's bytes, and the unmapping
 *     thread's munmap(2) returns;
 *   - a MISSING callback reads another missing page of its region: that
 *     fault is resolved nested in the first, and both pages hold their
 *     bytes;
 *   - uffd_handler_stats() writing into a write-protected page of an
 *     in-thread region: the write is let through in the calling thread.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 16

static char *area, *src;
static int event_saw = -1;	/* the byte the UNMAP callback read */
static int events;		/* atomic */

static int fill(struct uffd_fault *f)
{
	size_t page = ((char *)f->addr - area) / PAGE;

	/* Page 2's callback needs page 3 first: a nested fault. */
	if (page == 2 && ((volatile char *)area)[3 * PAGE + 1] != src[3 * PAGE + 1])
		return -EIO;
	return uffd_fault_copy(f, src + page * PAGE, PAGE);
}

static void on_event(struct uffd_region *r, const struct uffd_event *ev)
{
	if (ev->type != UFFD_EV_UNMAP)
		return;
	/* With the table locked: a missing page of this very region. */
	event_saw = ((volatile unsigned char *)area)[5 * PAGE + 7];
	__atomic_fetch_add(&events, 1, __ATOMIC_RELEASE);
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = fill, .event = on_event };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler_stats *st, check;
	struct uffd_handler *h;
	char *wp;
	struct uffd u;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS) | UFFD_F(UFFD_FEAT_EVENT_UNMAP) |
	       UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), UFFD_NONBLOCK);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 11);
	wp = t_map_anon(2 * PAGE);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK(uffd_handler_add(h, wp, 2 * PAGE, 0, UFFD_REG_WP, NULL, NULL));
	CHECK_OK(uffd_handler_start(h));

	/* A callback's own fault, nested. */
	CHECK_EQ(((volatile char *)area)[2 * PAGE], src[2 * PAGE]);
	t_check_bytes("page 2", area + 2 * PAGE, src + 2 * PAGE, PAGE);
	t_check_bytes("page 3", area + 3 * PAGE, src + 3 * PAGE, PAGE);

	/* A fault in the event thread, under the table's write lock. */
	CHECK_OK(munmap(area + (NPAGES - 1) * PAGE, PAGE) ? -errno : 0);
	CHECK(t_wait_flag(&events, 5000));
	CHECK_EQ(event_saw, (unsigned char)src[5 * PAGE + 7]);
	t_check_bytes("page 5", area + 5 * PAGE, src + 5 * PAGE, PAGE);

	/* libuffd writing into a write-protected page of the caller's. */
	memset(wp, 0, 2 * PAGE);
	CHECK_OK(uffd_writeprotect(&u, wp, 2 * PAGE, true, 0));
	st = (struct uffd_handler_stats *)(wp + PAGE - 64);	/* across both pages */
	CHECK_OK(uffd_handler_stats(h, st));
	CHECK_OK(uffd_handler_stats(h, &check));
	/* Three pages; a fault again for each -EAGAIN (the page in the event
	 * callback may be filled before the munmap has seen its event read). */
	CHECK_EQ(st->faults[UFFD_FAULT_MISSING], 3 + st->retries);
	CHECK_EQ(st->pages_resolved, 3 + 2);	/* + the two pages of st */
	CHECK_EQ(check.faults[UFFD_FAULT_WP], 2);
	CHECK_EQ(check.events[3], 1);

	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
