// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Events still come as messages in in-thread mode, and the handler's
 * thread keeps the regions the faulting threads see right:
 *
 *   - mremap(2) of part of a MISSING region, and at once a fault at the
 *     new address: the fault comes before the REMAP is applied (its event
 *     callback takes 2 ms), and is retried until it is, never handed to
 *     the default action; its callback sees the moved piece (f->region at
 *     the new address);
 *   - MADV_DONTNEED of a filled page: the next access is a MISSING fault
 *     again, resolved in-thread;
 *   - munmap(2) of part of a region (no UNMAP event asked for): the rest
 *     still resolves, and the counters show each event.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 16

static char *src;
static void *last_region_addr, *last_fault_addr;

/* Applying a REMAP takes a while: the fault at the new address comes
 * first, and must wait for it rather than be taken for someone else's. */
static void slow_remap(struct uffd_region *r, const struct uffd_event *ev)
{
	if (ev->type == UFFD_EV_REMAP)
		t_sleep_ms(2);
}

static int fill(struct uffd_fault *f)
{
	last_region_addr = uffd_region_addr(f->region);
	last_fault_addr = f->addr;
	return uffd_fault_copy(f, src, PAGE);
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = fill, .event = slow_remap };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	char *area, *dest, *moved;
	struct uffd u;
	int i;

	t_require_in_thread();
	/* No EVENT_UNMAP: a moving mremap(2) would wait for the UNMAP of its
	 * old range too, queued after the REMAP, and so for the REMAP to be
	 * applied; without it the mremap returns once the REMAP is read. */
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS) | UFFD_F(UFFD_FEAT_EVENT_REMAP) |
	       UFFD_F(UFFD_FEAT_EVENT_REMOVE), UFFD_NONBLOCK);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 9);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(uffd_handler_start(h));

	/* mremap pages 4..7 over a mapping of the test's, then touch them at
	 * once; emptied again, and on to the next place. */
	for (moved = area + 4 * PAGE, i = 0; i < 20; i++) {
		dest = t_map_anon(4 * PAGE);
		moved = mremap(moved, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
		CHECK(moved == dest);
		CHECK_EQ(moved[PAGE + 3], src[3]);
		CHECK(last_fault_addr == moved + PAGE);
		CHECK(last_region_addr == moved);
		t_check_bytes("moved page", moved + PAGE, src, PAGE);
		CHECK_OK(madvise(moved, 4 * PAGE, MADV_DONTNEED) ? -errno : 0);
	}

	/* DONTNEED: a MISSING fault again. */
	area[0] = 1;
	CHECK_EQ(area[0], 1);
	CHECK_OK(madvise(area, PAGE, MADV_DONTNEED) ? -errno : 0);
	CHECK_EQ(area[5], src[5]);

	/* munmap of the tail: the head still resolves. */
	CHECK_OK(munmap(area + 12 * PAGE, 4 * PAGE) ? -errno : 0);
	CHECK_EQ(area[11 * PAGE + 2], src[2]);
	CHECK(last_region_addr == area + 8 * PAGE);	/* the piece after the hole */

	CHECK_OK(uffd_handler_sync(h));
	CHECK_OK(uffd_handler_stats(h, &s));
	CHECK_EQ(s.events[1], 20);	/* remap */
	CHECK_EQ(s.events[2], 21);	/* remove */
	CHECK_EQ(s.events[3], 0);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING] - s.retries, 20 + 2 + 1);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
