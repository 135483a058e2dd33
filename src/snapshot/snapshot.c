/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live snapshots: copy-before-write on userfaultfd write-protect.
 *
 * Every page has a state byte: UNSAVED (its contents at the instant are
 * still in memory, protected), COPYING (someone is saving it now) or SAVED
 * (copied or written: it may be written).  Whoever moves a page from
 * UNSAVED to COPYING - the fault handler on a write after the instant, or
 * the background writer streaming in address order - saves it (a copy
 * into the buffer, or into scratch and from there to the image: nobody
 * can change it meanwhile), marks it SAVED, and only then un-protects
 * it; the other party waits for SAVED.  So no write can land on a page
 * before its instant contents are saved, and no page is saved twice.
 * Both work on aligned groups of pages (one write, one un-protect each):
 * a program that writes everywhere takes one fault per group.
 *
 * Before the instant the same fault handler only remembers which pages
 * were written (dirty) and lets the write through: the program runs while
 * everything is protected, and the pause re-protects just the dirty pages.
 *
 * The program may also change its memory map under the snapshot, and
 * the snapshot follows the kernel's events.  Memory is only ever read
 * with process_vm_readv(2) (util/ownread.h), or in-thread with the
 * runtime's guarded copy, which answer EFAULT where a plain copy would
 * kill the process.  MADV_DONTNEED/REMOVE: the kernel zaps only after the
 * REMOVE event has been read, so the servicing thread saves the pages
 * not saved yet at once, and keeps a copy only if pagemap shows the page
 * still there, with its uffd-wp bit, after it was taken (a zap takes the
 * bit with the page).  munmap and mremap: the UNMAP/REMAP event comes
 * after the memory went; what was saved stays, and a page with data not
 * saved yet is lost.  And since memory that went can be mapped again by
 * another thread before its event is read, a copy is confirmed only by an
 * un-protect that succeeds after it (the kernel answers -EAGAIN from the
 * start of an munmap or mremap until its event is read, -ENOENT where the
 * range is no longer ours), once the events read before are applied: an
 * event that touches a page not confirmed yet fails the snapshot.  A lost
 * page fails it with -EFAULT: never an image that is not the instant.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uffd/handler.h>
#include <uffd/snapshot.h>

#include "abi/userfaultfd.h"
#include "core/pieces.h"
#include "image/internal.h"
#include "runtime/inthread.h"
#include "util/clock.h"
#include "util/crc32c.h"

#include "util/bitmap.h"
#include "util/mmalloc.h"
#include "util/opts.h"
#include "util/ownread.h"
#include "util/pagecopy.h"
#include "util/stats.h"

#define DEFAULT_BUFFER (64UL << 20)
#define MIN_BUFFER (1UL << 20)
#define WINDOW_PAGES 64		/* pages per image chunk / unprotect */
#define FAULT_GROUP_BYTES (256UL << 10)	/* saved and un-protected per fault, */
#define FAULT_GROUP (FAULT_GROUP_BYTES / 4096)	/* or one page if larger: 64 at most */
#define PRECOPY_PASSES 4	/* in_thread: at most, before the pause */
#define PRECOPY_ENOUGH 256	/* pages written during a pass: stop */

enum page_state { UNSAVED = 0, COPYING, SAVED };
/* With SAVED: copied from memory, not confirmed yet (see confirm()). */
#define UNCONFIRMED 4
#define STATE(v) ((v) & 3)
enum phase { PRECOPY, AFTER_INSTANT };

struct snap_region {
	struct uffd_snap *s;
	int index;
	struct uffd_region *region;
	struct uffd_image_region image;	/* as recorded in the image */
	uint64_t start, len;
	size_t page_size, npages;
	uint64_t group;			/* pages saved per fault: a power of 2 */
	uint8_t *state;			/* enum page_state (| UNCONFIRMED) */
	struct bitmap present;		/* not a hole at the instant */
	struct bitmap dirty;		/* written during precopy */
	struct bitmap removed;		/* REMOVE events during precopy */
};

/* A copied page waiting for the writer. */
struct slot {
	struct snap_region *r;
	uint64_t page;
	struct slot *next;		/* in the ready list */
	uint32_t next_free;		/* in the free stack: index + 1, 0 ends */
};

struct uffd_snap {
	struct uffd_snap_opts opts;
	struct uffd u;
	struct uffd_handler *h;
	struct uffd_image_writer *w;
	int nregions;
	struct snap_region *regions;
	int phase;			/* atomic enum phase */
	pthread_mutex_t event_lock;	/* events vs the pause */
	int pagemap_fd;			/* -1: none (REMOVE then loses pages) */

	/* the copy-before-write buffer: lock-free, for in-thread faults */
	size_t slot_size, nslots, scratch_bytes;
	char *buffer;			/* nslots, then two scratch areas: */
	char *sync_scratch, *stream_scratch; /* the handler's, the writer's */
	struct slot *slots;
	uint64_t free_top;		/* atomic: ABA tag << 32 | index + 1 */
	struct slot *ready;		/* atomic: pushed, newest first */
	size_t slots_in_use;		/* atomic */
	uint32_t slots_freed;		/* atomic: a futex, bumped as slots come back */
	int slot_waiters;		/* atomic: in-thread faults asleep on it */
	bool guard;			/* in_thread: holds a guard reference */
	pthread_mutex_t lock;		/* done_cond */

	pthread_t writer;
	void *writer_stack;
	bool writer_started;
	int cancel;			/* atomic */
	int done;			/* atomic */
	pthread_cond_t done_cond;

	uint64_t t_begin;
	int started;			/* atomic: uffd_snap_start() was called */
	struct uffd_snap_stats st;	/* counters updated atomically */
};


static void *page_addr(const struct snap_region *r, uint64_t page)
{
	return (void *)(uintptr_t)(r->start + page * r->page_size);
}

static bool all_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* ---- the buffer --------------------------------------------------------- */

static char *slot_data(struct uffd_snap *s, struct slot *sl)
{
	return s->buffer + (size_t)(sl - s->slots) * s->slot_size;
}

/*
 * The slots are shared by every thread that saves pages, and in-thread
 * those are the program's threads, in signal handlers: no lock.  The free
 * slots are a stack of indices whose top carries a tag against ABA; the
 * copies are pushed on the ready list, newest first, and the writer takes
 * the whole list at once and turns it around.
 */
static void slot_push_free(struct uffd_snap *s, struct slot *sl)
{
	uint64_t top = __atomic_load_n(&s->free_top, __ATOMIC_ACQUIRE), next;

	do {
		__atomic_store_n(&sl->next_free, (uint32_t)top, __ATOMIC_RELAXED);
		next = ((top >> 32) + 1) << 32 | (uint64_t)(sl - s->slots + 1);
	} while (!__atomic_compare_exchange_n(&s->free_top, &top, next, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
}

static struct slot *slot_pop_free(struct uffd_snap *s)
{
	uint64_t top = __atomic_load_n(&s->free_top, __ATOMIC_ACQUIRE), next;
	struct slot *sl;

	do {
		if (!(uint32_t)top)
			return NULL;
		sl = &s->slots[(uint32_t)top - 1];
		next = ((top >> 32) + 1) << 32 |
		       __atomic_load_n(&sl->next_free, __ATOMIC_RELAXED);
	} while (!__atomic_compare_exchange_n(&s->free_top, &top, next, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	return sl;
}

/*
 * The count goes up after slots are popped and down before they are
 * pushed back, so it never counts a slot twice: the peak is never more
 * than the buffer.
 */
static void note_in_use(struct uffd_snap *s, long k)
{
	size_t used = __atomic_add_fetch(&s->slots_in_use, k, __ATOMIC_RELAXED);

	if (used * s->slot_size > __atomic_load_n(&s->st.buffer_peak_bytes, __ATOMIC_RELAXED))
		__atomic_store_n(&s->st.buffer_peak_bytes, used * s->slot_size,
				 __ATOMIC_RELAXED);
}

/* Give back slots that were taken and not used. */
static void slots_put(struct uffd_snap *s, struct slot **v, int k)
{
	int i;

	if (k)
		note_in_use(s, -k);
	for (i = 0; i < k; i++)
		slot_push_free(s, v[i]);
}

/* Up to k free slots (k <= FAULT_GROUP): how many were taken into v;
 * all: only all k or none. */
static int slots_get(struct uffd_snap *s, struct slot **v, int k, bool all)
{
	int i;

	for (i = 0; i < k && (v[i] = slot_pop_free(s)); i++)
		;
	if (i)
		note_in_use(s, i);
	if (all && i < k) {
		slots_put(s, v, i);
		return 0;
	}
	return i;
}

/*
 * An in-thread fault that found the buffer full sleeps until the writer
 * has given slots back (or a few ms, to look again at the snapshot's
 * state): a futex, which a signal handler may wait on.  Spinning instead
 * took the CPU from the writer it waits for.
 */
#define SLOT_WAIT_NS (5 * 1000 * 1000)

static void wait_for_slots(struct uffd_snap *s, uint32_t seen)
{
	struct timespec ts = { 0, SLOT_WAIT_NS };

	__atomic_add_fetch(&s->slot_waiters, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->slots_freed, __ATOMIC_SEQ_CST) == seen)
		syscall(SYS_futex, &s->slots_freed, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
	__atomic_sub_fetch(&s->slot_waiters, 1, __ATOMIC_SEQ_CST);
}

static void wake_slot_waiters(struct uffd_snap *s)
{
	__atomic_add_fetch(&s->slots_freed, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->slot_waiters, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &s->slots_freed, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Queue k copied slots for the writer, in one go. */
static void slots_ready(struct uffd_snap *s, struct slot **v, int k)
{
	struct slot *top;
	int i;

	if (!k)
		return;
	for (i = k - 1; i > 0; i--)
		v[i]->next = v[i - 1];
	top = __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE);
	do
		v[0]->next = top;
	while (!__atomic_compare_exchange_n(&s->ready, &top, v[k - 1], true, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE));
}

/* ---- saving pages --------------------------------------------------------- */

static void fail(struct uffd_snap *s, int err)
{
	int zero = 0;

	__atomic_compare_exchange_n(&s->st.error, &zero, err, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static bool failed(struct uffd_snap *s)
{
	return __atomic_load_n(&s->st.error, __ATOMIC_RELAXED);
}

/* With a guard (in_thread): memcpy, a 4 KiB page at a time, that stops
 * at a page unmapped meanwhile.  Returns the bytes copied. */
static size_t read_guarded(const struct iovec *iov, int n, uint64_t src)
{
	size_t done = 0, pages, k, m, j, got;
	void *dst[64];
	int i;

	for (i = 0; i < n; i++) {
		pages = iov[i].iov_len / 4096;
		for (k = 0; k < pages; k += got) {
			m = pages - k < 64 ? pages - k : 64;
			for (j = 0; j < m; j++)
				dst[j] = (char *)iov[i].iov_base + (k + j) * 4096;
			got = uffd__guarded_copy(dst, (const void *)(uintptr_t)(src + done), m,
						 4096);
			done += got * 4096;
			if (got < m)
				return done;
		}
	}
	return done;
}

/*
 * Read [src, src + len) of this process into the buffers of iov (whose
 * lengths add up to len): memory the program has unmapped meanwhile is
 * not a crash but a short read.  Returns the bytes read; fewer than len:
 * the rest is gone.  util/ownread.h (process_vm_readv(2)), as the
 * checkpoint's writer reads; in-thread, the runtime's guard is installed
 * anyway, and a guarded memcpy does the same for a third of the cost
 * (see save_group_in_thread()).
 */
static size_t read_memory(struct uffd_snap *s, const struct iovec *iov, int n, uint64_t src,
			  size_t len)
{
	if (s->guard)
		return read_guarded(iov, n, src);
	return uffd__read_own(iov, n, (const void *)(uintptr_t)src, len);
}

/* Wait for a page another thread is copying. */
static void wait_saved(struct snap_region *r, uint64_t page)
{
	while (STATE(__atomic_load_n(&r->state[page], __ATOMIC_ACQUIRE)) != SAVED)
		sched_yield();
}

/*
 * Claim the unsaved pages of [first, first + n) (n <= 64) for this
 * thread: bit i of the result is page first + i, now COPYING.
 */
static uint64_t claim(struct snap_region *r, uint64_t first, uint64_t n)
{
	uint64_t claimed = 0, i;

	for (i = 0; i < n; i++) {
		uint8_t unsaved = UNSAVED;

		if (__atomic_compare_exchange_n(&r->state[first + i], &unsaved, COPYING, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			claimed |= 1ULL << i;
	}
	return claimed;
}

/* Mark the claimed pages SAVED (the copied ones UNCONFIRMED too). */
static void mark_saved(struct snap_region *r, uint64_t first, uint64_t n, uint64_t claimed,
		       uint64_t copied)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (claimed >> i & 1)
			__atomic_store_n(&r->state[first + i],
					 SAVED | (copied >> i & 1 ? UNCONFIRMED : 0),
					 __ATOMIC_RELEASE);
}

/* Mark the claimed pages SAVED, then wait for the rest of the range. */
static void release(struct snap_region *r, uint64_t first, uint64_t n, uint64_t claimed,
		    uint64_t copied)
{
	uint64_t i;

	mark_saved(r, first, n, claimed, copied);
	for (i = 0; i < n; i++)
		wait_saved(r, first + i);
}

/* The copies in [first, first + n) are right (see confirm()). */
static void confirm_pages(struct snap_region *r, uint64_t first, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		__atomic_fetch_and(&r->state[first + i], (uint8_t)~UNCONFIRMED, __ATOMIC_RELEASE);
}

/* The pages of [first, first + n) (n <= 64) that are SAVED | UNCONFIRMED. */
static uint64_t unconfirmed(struct snap_region *r, uint64_t first, uint64_t n)
{
	uint64_t mask = 0, i;

	for (i = 0; i < n; i++)
		if (__atomic_load_n(&r->state[first + i], __ATOMIC_ACQUIRE) & UNCONFIRMED)
			mask |= 1ULL << i;
	return mask;
}

/* Who saves pages, for confirm(). */
enum saver {
	SAVER_WRITER,		/* a thread of its own (the writer, prepare_write) */
	SAVER_SERVICING,	/* the runtime's servicing thread, in a fault */
	SAVER_IN_THREAD,	/* the faulting thread itself (in_thread) */
};

/* Un-protect, waiting out -EAGAIN unless in a fault (see confirm()). */
static int unprotect(struct uffd_snap *s, struct snap_region *r, uint64_t first, uint64_t n,
		     enum saver who)
{
	int ret;

	for (;;) {
		ret = uffd_writeprotect(&s->u, page_addr(r, first), n * r->page_size, false, 0);
		if (ret != -EAGAIN || who != SAVER_WRITER || failed(s) ||
		    __atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
			return ret;
		sched_yield();		/* the servicing thread reads the event */
	}
}

/*
 * Un-protect [first, first + n) of r, whose pages are saved, and confirm
 * the copies made from memory there.  A copy is wrong only if the memory
 * was unmapped or moved before it was read (a zap is REMOVE's business,
 * see save_removed()), and maybe mapped again by another thread since:
 * UFFDIO_WRITEPROTECT answers -EAGAIN from the start of an munmap or
 * mremap until its event has been read (the kernel's mmap_changing), and
 * -ENOENT where the range is no longer registered.  So an un-protect that
 * succeeds after the copy, once the events read before it are applied,
 * confirms it: such an event found the page not confirmed and failed the
 * snapshot (snap_event()).  The servicing thread applies the events
 * itself, between faults, so for it that is immediate, and -EAGAIN goes
 * back to the runtime, which retries the fault once the events are read;
 * the writer thread waits for the servicing thread instead.  In-thread, a
 * fault also gives -EAGAIN back (the access faults again), and waits for
 * the events read before its un-protect to be applied, without a lock.
 * A range part of which is gone is confirmed run by run.  Returns 1 when
 * all of it was un-protected, 0 when only the runs copied, or -EAGAIN.
 */
static void events_applied(struct uffd_snap *s, enum saver who)
{
	if (who == SAVER_WRITER)
		uffd_handler_sync(s->h);
	else if (who == SAVER_IN_THREAD)
		uffd__handler_events_settle(s->h);
}

static int confirm(struct uffd_snap *s, struct snap_region *r, uint64_t first, uint64_t n,
		   enum saver who)
{
	uint64_t mask, i, j;
	int ret = unprotect(s, r, first, n, who);

	if (ret == -EAGAIN && who != SAVER_WRITER)
		return ret;
	if (!ret) {
		events_applied(s, who);
		confirm_pages(r, first, n);
		return 1;
	}
	mask = unconfirmed(r, first, n);
	for (i = 0; i < n; i = j) {
		for (; i < n && !(mask >> i & 1); i++)
			;
		for (j = i; j < n && (mask >> j & 1); j++)
			;
		if (i == j)
			break;
		ret = unprotect(s, r, first + i, j - i, who);
		if (ret == -EAGAIN && who != SAVER_WRITER)
			return ret;
		if (ret)
			fail(s, -EFAULT);	/* copied from memory that went */
		else
			events_applied(s, who);
		confirm_pages(r, first + i, j - i);
	}
	return 0;
}

/*
 * Whether the pages of mask in [first, first + n) are all still there
 * with their uffd-wp bit, per /proc/self/pagemap: present or swapped
 * (protected at the instant, a hole there leaves a marker that reads as
 * swapped and as zeros).  A zap takes the page and its bit (a page read
 * after it is the zero page, unprotected).
 */
static bool still_protected(struct uffd_snap *s, struct snap_region *r, uint64_t first,
			    uint64_t n, uint64_t mask)
{
	uint64_t e[64], per = r->page_size / 4096, i, base;

	if (s->pagemap_fd < 0)
		return false;
	base = (uintptr_t)page_addr(r, first) / 4096;
	if (per == 1 && pread(s->pagemap_fd, e, n * 8, base * 8) != (ssize_t)(n * 8))
		return false;
	for (i = 0; i < n; i++) {
		if (!(mask >> i & 1))
			continue;
		/* A huge page: its first base page stands for it. */
		if (per > 1 && pread(s->pagemap_fd, &e[i], 8, (base + i * per) * 8) != 8)
			return false;
		if (!(e[i] & (PM_ENTRY_PRESENT | PM_ENTRY_SWAP)) || !(e[i] & PM_ENTRY_UFFD_WP))
			return false;
	}
	return true;
}

/*
 * Write the pages of mask in [first, first + n) (claimed, present) to the
 * image: each run is read into scratch (read_memory()), zero pages left
 * out, the rest written one chunk per run of data.  *copied receives the
 * pages read from memory; one that cannot be read is lost, and so is the
 * snapshot (-EFAULT).  verify: a thread other than the servicing one
 * checks that no zap came before its copy (see save_removed()).  Returns
 * the pages saved.
 */
static uint64_t write_claimed(struct uffd_snap *s, struct snap_region *r, uint64_t first,
			      uint64_t n, uint64_t mask, char *scratch, uint64_t *copied,
			      bool verify)
{
	uint64_t cap = s->scratch_bytes / r->page_size, saved = 0, i = 0, j, k, m, got;
	size_t ps = r->page_size;
	int ret;

	while (i < n && !failed(s)) {
		struct iovec iov;

		if (!(mask >> i & 1)) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && j - i < cap && (mask >> j & 1); j++)
			;
		iov = (struct iovec){ scratch, (j - i) * ps };
		got = read_memory(s, &iov, 1, (uintptr_t)page_addr(r, first + i), iov.iov_len) / ps;
		*copied |= (got == 64 ? ~0ULL : (1ULL << got) - 1) << i;
		if (got < j - i || (verify && !still_protected(s, r, first + i, j - i, ~0ULL))) {
			fail(s, -EFAULT);
			break;
		}
		for (k = 0; k < j - i; k = m) {
			if (all_zero(scratch + k * ps, ps)) {
				STAT_ADD(&s->st, zero_pages, 1);
				saved++;
				m = k + 1;
				continue;
			}
			for (m = k + 1; m < j - i && !all_zero(scratch + m * ps, ps); m++)
				;
			ret = uffd_image_put(s->w, r->index, first + i + k, m - k, scratch + k * ps, 0);
			if (ret) {
				fail(s, ret);
				return saved;
			}
			saved += m - k;
		}
		i = j;
	}
	return saved;
}

/*
 * Copy pages of mask in [first, first + n) into the nslots slots of v,
 * run by run, one read each; returns the slots filled (their pages' bits
 * in *copied), the others are given back.  A page that cannot be read
 * fails the snapshot.  In a fault resolved in-thread the read is a
 * guarded memcpy (see save_group_in_thread()), else read_memory().
 */
static int copy_to_slots(struct uffd_snap *s, struct snap_region *r, uint64_t first,
			 uint64_t n, uint64_t mask, struct slot **v, int nslots, uint64_t *copied,
			 bool announced)
{
	bool guarded = s->guard && uffd__in_fault_handler();
	struct iovec iov[FAULT_GROUP];
	void *dst[FAULT_GROUP];
	uint64_t i = 0, j, got, m;
	int k = 0;

	while (i < n && k < nslots && !failed(s)) {
		if (!(mask >> i & 1)) {
			i++;
			continue;
		}
		for (j = i; j < n && (mask >> j & 1) && k + (int)(j - i) < nslots; j++) {
			dst[j - i] = slot_data(s, v[k + j - i]);
			iov[j - i] = (struct iovec){ dst[j - i], r->page_size };
		}
		if (guarded) {
			got = uffd__guarded_copy(dst, page_addr(r, first + i), j - i,
						 r->page_size);
		} else if (announced) {
			/* The announcing thread is about to write this page: it
			 * is as sure to be mapped as that write, and a plain
			 * copy costs a fraction of a system call. */
			for (m = 0; m < j - i; m++)
				copy_live_page(dst[m], page_addr(r, first + i + m), r->page_size);
			got = j - i;
		} else {
			got = read_memory(s, iov, j - i, (uintptr_t)page_addr(r, first + i),
					  (j - i) * r->page_size) / r->page_size;
		}
		for (m = 0; m < got; m++, k++) {
			v[k]->r = r;
			v[k]->page = first + i + m;
			*copied |= 1ULL << (i + m);
		}
		if (got < j - i)
			fail(s, -EFAULT);
		i = j;
	}
	slots_put(s, v + k, nslots - k);
	return k;
}

/*
 * After the instant: save the faulting page's group - the unsaved pages
 * of its aligned r->group - then un-protect the group in one call.  A
 * program that writes everywhere takes one fault per group, not per page
 * (and one TLB shootdown, which the un-protect costs when the program's
 * other threads run).  The size is a trade, measured on 1 GiB: two
 * writers touching every page kept 0.26 of their throughput with 16 KiB
 * groups, 0.35 with 64 KiB and 0.46 with 256 KiB, while one writer every
 * 100 us waited 37, 51 and 86 us at the 99th percentile.
 *
 * The pages are copied into the buffer while it has room; the policy when
 * it is full: the rest go straight to the image, one write per run of
 * pages, while the faulting thread waits - a write into the page cache,
 * not to the disk, until the image's dirty pages pass the kernel's
 * limits.  -EAGAIN: an munmap or mremap is under way, the fault is
 * retried once its event is read (see confirm()).
 */
static int save_group(struct uffd_snap *s, struct snap_region *r, uint64_t page)
{
	uint64_t first = page & ~(r->group - 1), claimed, present = 0, copied = 0, i;
	uint64_t n = r->npages - first < r->group ? r->npages - first : r->group;
	struct slot *v[FAULT_GROUP];
	int k = 0, nslots, ret;

	claimed = claim(r, first, n);
	/* After a failure the image is lost: let the writes through. */
	for (i = 0; i < n && !failed(s); i++)
		if ((claimed >> i & 1) && bitmap_test(&r->present, first + i))
			present |= 1ULL << i;
	nslots = present ? slots_get(s, v, __builtin_popcountll(present), false) : 0;
	k = copy_to_slots(s, r, first, n, present, v, nslots, &copied, false);
	/* Queued before SAVED: a writer that saw every page SAVED has every
	 * copy in its queue. */
	slots_ready(s, v, k);
	STAT_ADD(&s->st, copied_before_write, k);
	if ((present & ~copied) && !failed(s))	/* one servicing thread: its scratch */
		STAT_ADD(&s->st, sync_writes, write_claimed(s, r, first, n, present & ~copied,
						     s->sync_scratch, &copied, false));
	release(r, first, n, claimed, copied);
	ret = confirm(s, r, first, n, SAVER_SERVICING);
	if (ret)
		return ret == 1 ? 0 : ret;
	/* Part of the group went: un-protect the page at least, or wake its
	 * thread to fault again against what is there now. */
	if (uffd_writeprotect(&s->u, page_addr(r, page), r->page_size, false, 0))
		uffd_wake(&s->u, page_addr(r, page), r->page_size);
	return 0;
}

/*
 * save_group(), in the faulting thread itself (opts.in_thread), from the
 * runtime's SIGBUS handler: the writer copies its own group, un-protects
 * it and goes on, no other thread involved.  What changes:
 *
 * - The copy is a memcpy, page by page under a guard that stops it at a
 *   page another thread unmapped meanwhile (uffd__guarded_copy()), not
 *   process_vm_readv(2): 19-23 us per 256 KiB group here against 69-90.
 *   The faulting page itself is mapped (the program is writing it); the
 *   others are checked as every copy is (confirm()).
 * - Nothing that takes a lock: the slots are lock-free, and the image is
 *   never written here (its writer takes locks).  So the slots come
 *   first, for every page of the group that may need one, all or none: a
 *   fault that finds the buffer full holds no claim while it sleeps until
 *   the writer thread has written some and given them back (a claim held
 *   meanwhile could be one the writer waits for), counted in
 *   stats.buffer_waits.  Pages only ever leave UNSAVED, so the claims made
 *   after need no more slots than counted.
 * - Events read before the un-protect are waited for with the runtime's
 *   counters, not its lock (confirm()).
 */
static int save_group_in_thread(struct uffd_snap *s, struct snap_region *r, uint64_t page)
{
	uint64_t first = page & ~(r->group - 1), claimed, present = 0, copied = 0, i;
	uint64_t n = r->npages - first < r->group ? r->npages - first : r->group;
	struct slot *v[FAULT_GROUP];
	int want, nslots = 0, k, ret;
	uint32_t seen;

	for (;;) {
		seen = __atomic_load_n(&s->slots_freed, __ATOMIC_SEQ_CST);
		/* Failed or cancelled, the image is lost: no copy, no wait (the
		 * writer stops draining, and waits for this fault to return). */
		for (want = 0, i = 0; i < n && !failed(s) &&
		     !__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE); i++)
			if (__atomic_load_n(&r->state[first + i], __ATOMIC_ACQUIRE) == UNSAVED &&
			    bitmap_test(&r->present, first + i))
				want++;
		if (!want || (nslots = slots_get(s, v, want, true)))
			break;
		STAT_ADD(&s->st, buffer_waits, 1);
		wait_for_slots(s, seen);
	}
	claimed = claim(r, first, n);
	for (i = 0; i < n && !failed(s); i++)
		if ((claimed >> i & 1) && bitmap_test(&r->present, first + i))
			present |= 1ULL << i;
	k = copy_to_slots(s, r, first, n, present, v, nslots, &copied, false);
	slots_ready(s, v, k);		/* before SAVED, as in save_group() */
	STAT_ADD(&s->st, copied_before_write, k);
	release(r, first, n, claimed, copied);
	ret = confirm(s, r, first, n, SAVER_IN_THREAD);
	if (ret)
		return ret == 1 ? 0 : ret;
	/* Part of the group went: un-protect the page at least (or the
	 * access faults again against what is there now). */
	uffd_writeprotect(&s->u, page_addr(r, page), r->page_size, false, 0);
	return 0;
}

static int snap_wp_fault(struct uffd_fault *f)
{
	struct snap_region *r = f->data;
	struct uffd_snap *s = r->s;
	uint64_t addr = (uintptr_t)f->addr, page = (addr - r->start) / r->page_size;
	int ret;

	/* A piece that mremap moved away: its pages were saved when it moved,
	 * or the snapshot failed (snap_event()). */
	if (addr < r->start || addr >= r->start + r->len)
		ret = uffd_writeprotect(&s->u, f->addr, r->page_size, false, 0);
	else if (__atomic_load_n(&s->phase, __ATOMIC_ACQUIRE) == AFTER_INSTANT)
		ret = s->opts.in_thread ? save_group_in_thread(s, r, page) : save_group(s, r, page);
	else {
		/*
		 * Remember, let through, remember again, and only then wake
		 * the writer.  reprotect_dirty() clears a run's bits before
		 * protecting it, so however the two interleave the page ends
		 * up protected or with its bit set, never writable and
		 * forgotten; and the writer, which the instant's pause waits
		 * for, moves only after the last set.  One page, not a group:
		 * what is dirty here is what the pause re-protects (a group
		 * of 64 doubled the pause at 4 GiB and gained nothing
		 * measurable).
		 */
		bitmap_set_atomic(&r->dirty, page);
		ret = uffd_writeprotect(&s->u, f->addr, r->page_size, false, UFFD_DONTWAKE);
		bitmap_set_atomic(&r->dirty, page);
		uffd_wake(&s->u, f->addr, r->page_size);
	}
	/* Resolved here, with the core calls: nothing for the runtime to do. */
	return ret ? ret : UFFD_FAULT_DEFERRED;
}

/* ---- changes to the memory map --------------------------------------------- */

/*
 * MADV_DONTNEED/MADV_REMOVE of pages [a, b) of r after the instant.  The
 * kernel zaps them once this event has been read - now, in the thread
 * that called madvise(2) - so the pages not saved yet are read at once,
 * and the copies count only if the pages are all still there, protected,
 * once read; then they go to the image.  A page lost to the zap fails the
 * snapshot with -EFAULT.  A page another thread is copying, or has copied
 * and not confirmed yet, is that thread's to check: the writer thread
 * checks every copy the same way (it may have read after this event was
 * read, before it was applied), the servicing thread needs not (events
 * are read and applied between its faults).  Without pagemap nothing can
 * be checked: such pages fail the snapshot.  The copies are left to be
 * confirmed (see confirm()) by the writer's pass, or at the end: an event
 * read in the same batch as this one may still concern them.  scratch:
 * the calling thread's.
 */
static void save_removed(struct uffd_snap *s, struct snap_region *r, uint64_t a, uint64_t b,
			 char *scratch)
{
	uint64_t cap = s->scratch_bytes / r->page_size;
	size_t ps = r->page_size;

	while (a < b && !failed(s)) {
		uint64_t n = b - a < cap ? b - a : cap, claimed, copied = 0, i, j, got;
		struct iovec iov;

		claimed = claim(r, a, n);
		for (i = 0; i < n && s->pagemap_fd < 0; i++)
			if (!(claimed >> i & 1) &&
			    __atomic_load_n(&r->state[a + i], __ATOMIC_ACQUIRE) != SAVED)
				fail(s, -EFAULT);
		/* Read all, then check all: the zap is under way. */
		for (i = 0; i < n && !failed(s); i = j) {
			for (; i < n && !((claimed >> i & 1) && bitmap_test(&r->present, a + i)); i++)
				;
			for (j = i; j < n && (claimed >> j & 1) && bitmap_test(&r->present, a + j); j++)
				;
			if (i == j)
				break;
			iov = (struct iovec){ scratch + i * ps, (j - i) * ps };
			got = read_memory(s, &iov, 1, (uintptr_t)page_addr(r, a + i), iov.iov_len) / ps;
			copied |= (got == 64 ? ~0ULL : (1ULL << got) - 1) << i;
			if (got < j - i)
				fail(s, -EFAULT);
		}
		if (copied && !failed(s) && !still_protected(s, r, a, n, copied))
			fail(s, -EFAULT);
		for (i = 0; i < n && !failed(s); i = j) {
			int ret;

			for (; i < n && !(copied >> i & 1); i++)
				;
			if (i < n && all_zero(scratch + i * ps, ps)) {
				STAT_ADD(&s->st, zero_pages, 1);
				j = i + 1;
				continue;
			}
			for (j = i; j < n && (copied >> j & 1) && !all_zero(scratch + j * ps, ps); j++)
				;
			if (i == j)
				break;
			ret = uffd_image_put(s->w, r->index, a + i, j - i, scratch + i * ps, 0);
			if (ret)
				fail(s, ret);
			else
				STAT_ADD(&s->st, sync_writes, j - i);
		}
		mark_saved(r, a, n, claimed, copied);
		a += n;
	}
}

/*
 * munmap, or mremap elsewhere, of pages [a, b) of r after the instant:
 * the memory has gone already.  Saved pages stay saved; a page with data
 * not saved yet, or whose copy is not confirmed, is lost.
 */
static void lose(struct uffd_snap *s, struct snap_region *r, uint64_t a, uint64_t b)
{
	for (; a < b; a++) {
		uint8_t v = UNSAVED;

		if (__atomic_compare_exchange_n(&r->state[a], &v, SAVED, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			if (bitmap_test(&r->present, a))
				fail(s, -EFAULT);
		} else if (v != SAVED) {
			fail(s, -EFAULT);
		}
	}
}

/* The pages of r (where it was at the instant) in [start, end), or false. */
static bool pages_in(const struct snap_region *r, uint64_t start, uint64_t end, uint64_t *a,
		     uint64_t *b)
{
	uint64_t lo = start > r->start ? start : r->start;
	uint64_t hi = end < r->start + r->len ? end : r->start + r->len;

	if (lo >= hi)
		return false;
	*a = (lo - r->start) / r->page_size;
	*b = (hi - r->start + r->page_size - 1) / r->page_size;
	return true;
}

/*
 * The servicing thread, for each piece of a region an event touches (see
 * uffd_region_ops.event; more than once is harmless).  Before the instant
 * a REMOVE is remembered for the pause (instant()), and an munmap or
 * mremap fails the snapshot: the regions are not what they were said to
 * be any more.
 */
static void snap_event(struct uffd_region *reg, const struct uffd_event *ev)
{
	struct snap_region *r = uffd_region_data(reg);
	struct uffd_snap *s = r->s;
	uint64_t start, end, a, b;

	switch (ev->type) {
	case UFFD_EV_REMOVE:
	case UFFD_EV_UNMAP:
		start = ev->range.start;
		end = ev->range.end;
		break;
	case UFFD_EV_REMAP:
		start = ev->remap.from;
		end = ev->remap.from + ev->remap.len;
		break;
	default:
		return;
	}
	if (!pages_in(r, start, end, &a, &b))
		return;
	pthread_mutex_lock(&s->event_lock);
	if (__atomic_load_n(&s->phase, __ATOMIC_ACQUIRE) == PRECOPY) {
		if (ev->type == UFFD_EV_REMOVE)
			bitmap_set_range(&r->removed, a, b);
		else
			fail(s, -EFAULT);
	} else if (ev->type == UFFD_EV_REMOVE) {
		save_removed(s, r, a, b, s->sync_scratch);
	} else {
		lose(s, r, a, b);
	}
	pthread_mutex_unlock(&s->event_lock);
}

static const struct uffd_region_ops snap_ops = { .wp = snap_wp_fault, .event = snap_event };

/* ---- the background writer ------------------------------------------------ */

/* Write one run of consecutive copied pages as one chunk. */
static void put_run(struct uffd_snap *s, struct snap_region *r, uint64_t first, uint32_t n,
		    const void *const *pages)
{
	int ret;

	if (n && (ret = uffd_image_putv(s->w, r->index, first, n, pages)))
		fail(s, ret);
}

/*
 * Write the copies queued so far: runs of consecutive pages (a fault's
 * group) as one chunk each, zero pages left out as holes.
 */
static void drain_ready(struct uffd_snap *s)
{
	const void *pages[WINDOW_PAGES];
	struct snap_region *r = NULL;
	struct slot *list = NULL, *sl, *next;
	uint64_t first = 0;
	uint32_t n = 0;
	size_t count = 0;

	/* Newest first: turned around, the copies come in the order queued. */
	for (sl = __atomic_exchange_n(&s->ready, NULL, __ATOMIC_ACQ_REL); sl; sl = next) {
		next = sl->next;
		sl->next = list;
		list = sl;
	}
	for (sl = list; sl; sl = sl->next, count++) {
		const char *data = slot_data(s, sl);

		if (all_zero(data, sl->r->page_size)) {
			STAT_ADD(&s->st, zero_pages, 1);
			continue;
		}
		if (n && (sl->r != r || sl->page != first + n || n == WINDOW_PAGES)) {
			put_run(s, r, first, n, pages);
			n = 0;
		}
		if (!n) {
			r = sl->r;
			first = sl->page;
		}
		pages[n++] = data;
	}
	put_run(s, r, first, n, pages);
	if (count)
		note_in_use(s, -(long)count);
	for (sl = list; sl; sl = next) {
		next = sl->next;
		slot_push_free(s, sl);
	}
	wake_slot_waiters(s);
}

/*
 * Save the still-unsaved pages of one window in address order, then
 * un-protect the window so later writes there cost nothing.
 */
static void stream_window(struct uffd_snap *s, struct snap_region *r, uint64_t first,
			  uint64_t count)
{
	uint64_t claimed = claim(r, first, count), present = 0, copied = 0, i;

	for (i = 0; i < count; i++)
		if ((claimed >> i & 1) && bitmap_test(&r->present, first + i))
			present |= 1ULL << i;
	STAT_ADD(&s->st, written_background, write_claimed(s, r, first, count, present,
						    s->stream_scratch, &copied,
						    s->pagemap_fd >= 0));
	release(r, first, count, claimed, copied);
	confirm(s, r, first, count, SAVER_WRITER);
}

static void finish(struct uffd_snap *s, int err)
{
	if (err)
		fail(s, err);
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Before the commit: copies left unconfirmed (a REMOVE's after the
 * writer's pass went by, a fault's whose event was pending) are confirmed
 * now.
 */
static void confirm_all(struct uffd_snap *s)
{
	uint64_t page, n;
	int i;

	for (i = 0; i < s->nregions && !failed(s); i++) {
		struct snap_region *r = &s->regions[i];

		for (page = 0; page < r->npages; page += n) {
			n = r->npages - page < WINDOW_PAGES ? r->npages - page : WINDOW_PAGES;
			if (unconfirmed(r, page, n))
				confirm(s, r, page, n, SAVER_WRITER);
		}
	}
}

static void *writer_main(void *arg)
{
	struct uffd_snap *s = arg;
	int i, err = 0;

	for (i = 0; i < s->nregions && !err; i++) {
		struct snap_region *r = &s->regions[i];
		uint64_t page;

		for (page = 0; page < r->npages; page += WINDOW_PAGES) {
			uint64_t n = r->npages - page < WINDOW_PAGES ? r->npages - page : WINDOW_PAGES;

			drain_ready(s);
			if (__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE)) {
				err = -ECANCELED;
				break;
			}
			if ((err = __atomic_load_n(&s->st.error, __ATOMIC_RELAXED)))
				break;
			stream_window(s, r, page, n);
			uffd__image_start_writeback(s->w);
		}
	}
	if (!err)
		confirm_all(s);
	/*
	 * Done, failed or cancelled: stop servicing before the image goes.
	 * After a success every page is SAVED, so un-registering lets nothing
	 * through that was not copied; after a failure nothing matters but
	 * leaving no thread blocked (the stop wakes them).  Then close the
	 * userfaultfd: an munmap or madvise whose event was queued but not
	 * read when the servicing thread stopped waits for the close.
	 */
	uffd_handler_stop(s->h);
	uffd_close(&s->u);
	drain_ready(s);
	if (!err)
		err = __atomic_load_n(&s->st.error, __ATOMIC_RELAXED);
	__atomic_store_n(&s->st.bytes, uffd_image_bytes(s->w), __ATOMIC_RELAXED);
	if (err)
		uffd_image_abort(s->w);
	else
		err = uffd_image_commit(s->w);
	s->w = NULL;
	__atomic_store_n(&s->st.duration_ns, mono_ns() - s->t_begin, __ATOMIC_RELAXED);
	finish(s, err);
	return NULL;
}

/* ---- begin ------------------------------------------------------------- */

/*
 * Which pages hold something: the rest are holes.  categories: before the
 * regions are protected, PRESENT | SWAPPED; after, PRESENT only, because
 * protecting a hole leaves a marker that PAGEMAP_SCAN reports as swapped.
 * begin() scans before and after protecting, so a page populated in
 * between is seen, and one populated later faults and is seen as dirty.
 */
static int scan_present(struct snap_region *r, uint64_t categories)
{
	struct uffd_range vec[512];
	uint64_t pos = r->start, end = r->start + r->len;
	int fd = uffd_pagemap_open(0), n, i, ret = 0;

	if (fd < 0) {	/* no pagemap: treat everything as present */
		bitmap_set_range(&r->present, 0, r->npages);
		return 0;
	}
	while (pos < end) {
		struct uffd_scan sc = {
			.addr = (void *)(uintptr_t)pos, .len = end - pos,
			.category_anyof_mask = categories,
			.return_mask = categories,
		};

		n = uffd_pagemap_scan(fd, &sc, vec, 512);
		if (n < 0) {
			bitmap_set_range(&r->present, 0, r->npages);
			break;
		}
		for (i = 0; i < n; i++)
			bitmap_set_range(&r->present, (vec[i].start - r->start) / r->page_size,
					 (vec[i].end - r->start + r->page_size - 1) / r->page_size);
		if (sc.walk_end <= pos)
			break;
		pos = sc.walk_end;
	}
	close(fd);
	return ret;
}

/*
 * Protect [addr, addr + len).  With the events negotiated the kernel
 * answers -EAGAIN while an munmap, mremap or madvise of registered memory
 * waits for the servicing thread to read its event: try again.
 */
static int protect(struct uffd_snap *s, void *addr, size_t len)
{
	int ret;

	while ((ret = uffd_writeprotect(&s->u, addr, len, true, 0)) == -EAGAIN)
		sched_yield();
	return ret;
}

/* Re-protect the pages written during precopy; they count as present. */
static int reprotect_dirty(struct uffd_snap *s, struct snap_region *r, uint64_t *count)
{
	size_t pos = 0, a, b;
	int ret = 0;

	/* Clear, then protect: see snap_wp_fault(). */
	while (!ret && bitmap_next_run(&r->dirty, &pos, r->npages, &a, &b)) {
		bitmap_clear_range(&r->dirty, a, b);
		bitmap_set_range(&r->present, a, b);
		ret = protect(s, page_addr(r, a), (b - a) * r->page_size);
		*count += b - a;
	}
	return ret;
}

/*
 * The pause, after the instant: the pages a REMOVE event announced during
 * precopy.  A zap that has happened left a hole; one still to come would
 * take the page's contents at the instant with it: those are saved now,
 * as after the instant (save_removed()).  They were protected just
 * before the instant (a hole gets a marker, which reads as zeros): a page
 * with neither bit nor marker was zapped after that, maybe after the
 * instant - lost.
 */
/* Once: -EAGAIN goes to the caller, who holds event_lock (instant()). */
static int protect_removed(struct uffd_snap *s, struct snap_region *r)
{
	size_t pos = 0, a, b;
	int ret = 0;

	while (!ret && bitmap_next_run(&r->removed, &pos, r->npages, &a, &b)) {
		bitmap_set_range(&r->present, a, b);
		ret = uffd_writeprotect(&s->u, page_addr(r, a), (b - a) * r->page_size, true, 0);
	}
	return ret;
}

static void save_precopy_removed(struct uffd_snap *s, struct snap_region *r)
{
	size_t pos = 0, a, b;

	while (!failed(s) && bitmap_next_run(&r->removed, &pos, r->npages, &a, &b))
		save_removed(s, r, a, b, s->stream_scratch);
}

static void release_region(struct snap_region *r)
{
	mm_free(r->state);
	bitmap_free(&r->present);
	bitmap_free(&r->dirty);
	bitmap_free(&r->removed);
	memset(r, 0, sizeof(*r));
}

static int setup_region(struct uffd_snap *s, int i, const struct uffd_image_region *ir)
{
	struct snap_region *r = &s->regions[i];

	r->s = s;
	r->index = i;
	r->image = *ir;
	r->start = ir->addr;
	r->len = ir->len;
	r->page_size = ir->page_size ? ir->page_size : 4096;
	if (!r->len || (r->start | r->len) % r->page_size)
		return -EINVAL;
	r->npages = r->len / r->page_size;
	r->group = r->page_size >= FAULT_GROUP_BYTES ? 1 : FAULT_GROUP_BYTES / r->page_size;
	r->state = mm_zalloc(r->npages);
	if (!r->state || bitmap_resize(&r->present, r->npages) ||
	    bitmap_resize(&r->dirty, r->npages) || bitmap_resize(&r->removed, r->npages))
		return -ENOMEM;
	r->region = uffd_handler_add(s->h, (void *)(uintptr_t)r->start, r->len, r->page_size,
				     UFFD_REG_WP, &snap_ops, r);
	if (!r->region)
		return -errno;
	s->st.pages += r->npages;
	s->st.extra_bytes += r->npages + 3 * BITMAP_WORDS(r->npages) * 8;
	if (r->page_size > s->slot_size)
		s->slot_size = r->page_size;
	return 0;
}

static size_t buffer_len(const struct uffd_snap *s)
{
	return s->nslots * s->slot_size + 2 * s->scratch_bytes;
}

static int setup_buffer(struct uffd_snap *s)
{
	size_t bytes = s->opts.buffer_bytes;

	/* Default: 1/64 of what is snapshotted, within [1 MiB, 64 MiB]. */
	if (!bytes) {
		bytes = s->st.pages * 4096 / 64;
		bytes = bytes < MIN_BUFFER ? MIN_BUFFER : bytes > DEFAULT_BUFFER ? DEFAULT_BUFFER : bytes;
	}
	size_t i;

	s->nslots = bytes / s->slot_size;
	if (s->nslots < 1)
		s->nslots = 1;
	/* In-thread, a fault takes the slots of its whole group at once. */
	if (s->opts.in_thread && s->nslots < FAULT_GROUP)
		s->nslots = FAULT_GROUP;
	/* Scratch for a group or a window, or one page if larger. */
	s->scratch_bytes = s->slot_size > FAULT_GROUP_BYTES ? s->slot_size : FAULT_GROUP_BYTES;
	/* Reserved, not touched: only the slots used take memory. */
	s->buffer = mmap(NULL, buffer_len(s), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->buffer == MAP_FAILED) {
		s->buffer = NULL;
		return -ENOMEM;
	}
	s->sync_scratch = s->buffer + s->nslots * s->slot_size;
	s->stream_scratch = s->sync_scratch + s->scratch_bytes;
	s->slots = mm_zalloc(s->nslots * sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	for (i = s->nslots; i-- > 0;)
		slot_push_free(s, &s->slots[i]);
	s->st.extra_bytes += s->nslots * sizeof(*s->slots);
	return 0;
}

/* The image of the regions actually protected, in their order. */
static struct uffd_image_writer *create_image(struct uffd_snap *s)
{
	struct uffd_image_region *v = malloc(s->nregions * sizeof(*v));
	struct uffd_image_writer *w;
	int i;

	if (!v)
		return NULL;
	for (i = 0; i < s->nregions; i++)
		v[i] = s->regions[i].image;
	w = uffd_image_create(s->opts.path, v, s->nregions, NULL, 0);
	free(v);
	return w;
}

static void destroy(struct uffd_snap *s)
{
	int i;

	uffd_handler_free(s->h);
	uffd_close(&s->u);
	if (s->w)
		uffd_image_abort(s->w);
	for (i = 0; s->regions && i < s->nregions; i++)
		release_region(&s->regions[i]);
	mm_free(s->regions);
	if (s->buffer)
		munmap(s->buffer, buffer_len(s));
	mm_free(s->slots);
	if (s->pagemap_fd >= 0)
		close(s->pagemap_fd);
	if (s->guard)
		uffd__guard_put();
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->event_lock);
	pthread_cond_destroy(&s->done_cond);
	mm_free(s);
}

/* In pieces, so the program's threads are not held up (core/pieces.h). */
static int protect_all(struct uffd_snap *s)
{
	int i, ret = 0;

	for (i = 0; i < s->nregions && !ret; i++) {
		struct snap_region *r = &s->regions[i];
		uint64_t off, n;

		for (off = 0; off < r->len && !ret; off += n) {
			n = uffd__piece(r->len, off, r->page_size);
			ret = protect(s, (char *)page_addr(r, 0) + off, n);
		}
	}
	return ret;
}

/* The pause: everything protected again, the instant is now. */
static int instant(struct uffd_snap *s)
{
	uint64_t t0, dirty = 0;
	int i, ret = 0;

	if (s->opts.pause)
		s->opts.pause(s->opts.arg);
	t0 = mono_ns();
	if (s->opts.no_precopy) {
		ret = protect_all(s);
		for (i = 0; i < s->nregions && !ret; i++)
			scan_present(&s->regions[i], UFFD_PAGE_PRESENT);
	}
	for (i = 0; i < s->nregions && !ret; i++)
		ret = reprotect_dirty(s, &s->regions[i], &dirty);
	/*
	 * An event is applied before or after this, as a REMOVE of the
	 * precopy or one after the instant (snap_event()).  -EAGAIN: an event
	 * is queued, which the servicing thread may be blocked on the lock to
	 * apply (a madvise over two regions sends the second once the first is
	 * read): let go, and protect again what is removed by then.
	 */
	while (!ret) {
		pthread_mutex_lock(&s->event_lock);
		for (i = 0; i < s->nregions && !ret; i++)
			ret = protect_removed(s, &s->regions[i]);
		if (!ret)
			__atomic_store_n(&s->phase, AFTER_INSTANT, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&s->event_lock);
		if (ret != -EAGAIN)
			break;
		ret = 0;
		sched_yield();
	}
	if (ret)	/* the writers must go again, whatever */
		__atomic_store_n(&s->phase, AFTER_INSTANT, __ATOMIC_RELEASE);
	for (i = 0; i < s->nregions && !ret; i++)
		save_precopy_removed(s, &s->regions[i]);
	s->st.pause_ns = mono_ns() - t0;
	if (s->opts.resume)
		s->opts.resume(s->opts.arg);
	s->st.precopy_dirty = dirty;
	return ret;
}

/*
 * libuffd's lazily set statics - the cached page size, CRC32C's table and
 * CPU check, the kernel feature probe - live in the program's own static
 * data when it links libuffd statically, and the anonymous tail of that
 * (.bss past the file) is memory a whole-process snapshot protects.  They
 * are set now, before anything is protected: the snapshot's own threads
 * must never write to memory they protect (they would wait on themselves).
 */
static void set_lazy_statics(void)
{
	static const char byte;

	(void)uffd_page_size();
	(void)crc32c(0, &byte, 1);
	(void)crc32c_sw(0, &byte, 1);
	(void)uffd_kernel_features();
}

struct uffd_snap *uffd_snap_new(const struct uffd_snap_opts *o)
{
	UFFD_OPTS(uffd_handler_opts, ho, .threads = 1);
	struct uffd_snap_opts opts;
	struct uffd_snap *s;
	int i, ret;

	if (!o || uffd__load_opts(&opts, o, struct uffd_snap_opts,
				  in_thread, skip_unprotectable)) {
		errno = EINVAL;
		return NULL;
	}
	o = &opts;
	if (!o->path || !o->regions || o->nregions <= 0 ||
	    o->nregions > UFFD_IMAGE_MAX_REGIONS || !o->pause != !o->resume) {
		errno = EINVAL;
		return NULL;
	}
	set_lazy_statics();
	s = mm_zalloc(sizeof(*s));
	if (!s)
		return NULL;
	s->opts = *o;
	s->slot_size = 4096;
	s->u.fd = -1;
	s->pagemap_fd = uffd_pagemap_open(0);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->event_lock, NULL);
	pthread_cond_init(&s->done_cond, NULL);
	/* WP_UNPOPULATED: a never-touched page must fault on its first write
	 * too, or its later contents could not be kept out of the image.  The
	 * events: see the top (a kernel without them: as before them). */
	ret = uffd_open(&s->u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			UFFD_F(UFFD_FEAT_WP_UNPOPULATED) |
			(o->in_thread ? UFFD_F(UFFD_FEAT_SIGBUS) : 0),
			UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM) | UFFD_F(UFFD_FEAT_EVENT_REMOVE) |
			UFFD_F(UFFD_FEAT_EVENT_UNMAP) | UFFD_F(UFFD_FEAT_EVENT_REMAP),
			UFFD_NONBLOCK);
	if (ret)
		goto out_err;
	if (o->in_thread) {
		ho.in_thread = true;
		ret = uffd__guard_get();
		if (ret)
			goto out_err;
		s->guard = true;
	}
	s->h = uffd_handler_new(&s->u, &ho);
	if (!s->h) {
		ret = -errno;	/* in_thread: EBUSY, a thread blocks SIGBUS */
		goto out_err;
	}
	s->regions = mm_zalloc(o->nregions * sizeof(*s->regions));
	if (!s->regions) {
		ret = -ENOMEM;
		goto out_err;
	}
	for (i = 0; i < o->nregions; i++) {
		ret = setup_region(s, s->nregions, &o->regions[i]);
		if (!ret) {
			s->nregions++;
			continue;
		}
		release_region(&s->regions[s->nregions]);
		if (!o->skip_unprotectable || ret == -ENOMEM)
			goto out_err;
		s->st.skipped_regions++;
	}
	ret = s->nregions ? setup_buffer(s) : -EINVAL;
	if (ret)
		goto out_err;
	s->w = create_image(s);
	if (!s->w) {
		ret = -errno;
		goto out_err;
	}
	ret = uffd_handler_start(s->h);
	if (ret)
		goto out_err;
	return s;
out_err:
	destroy(s);
	errno = -ret;
	return NULL;
}

/* uffd_snap_start()'s work: precopy, the instant, the writer thread. */
static int start(struct uffd_snap *s)
{
	const struct uffd_snap_opts *o = &s->opts;
	uint64_t t0;
	int i, ret;

	__atomic_store_n(&s->t_begin, mono_ns(), __ATOMIC_RELAXED);
	/* Precopy: protect everything while the program runs, then once more
	 * what it wrote meanwhile, so the pause has little left to do. */
	for (i = 0; i < s->nregions; i++)
		scan_present(&s->regions[i], UFFD_PAGE_PRESENT | UFFD_PAGE_SWAPPED);
	if (!o->no_precopy) {
		uint64_t dirty = 0, last = 0;
		int pass;

		t0 = mono_ns();
		ret = protect_all(s);
		for (i = 0; i < s->nregions && !ret; i++) {
			scan_present(&s->regions[i], UFFD_PAGE_PRESENT);
			last += bitmap_count(&s->regions[i].present);
		}
		/*
		 * In-thread the writers' faults cost so little that they dirty
		 * thousands of pages while a pass runs: passes until few are
		 * left for the pause (one pass by default, as it always was).
		 * A pass only pays while it converges.  Re-protecting scattered
		 * pages while the writers run costs tens of us a page here (a
		 * TLB shootdown each, against theirs), so after protect_all() a
		 * pass runs only if they dirtied at most 1/64 of it, and after
		 * a pass only if they dirtied at most half of what it did.
		 * Writers touching every page of 1 GiB dirtied 2-4% during
		 * protect_all(): 4 passes took 2.2 s and left a 21-38 ms pause
		 * (each pass dirtying more than the last); none, 0.08-0.13 s
		 * and a 6-16 ms pause, the writers' throughput from the start
		 * to durable up from 0.6-0.8 to 1.9-3.6 M writes/s.
		 */
		for (pass = 0; pass < (o->in_thread ? PRECOPY_PASSES : 1) && !ret; pass++) {
			if (pass && dirty <= PRECOPY_ENOUGH)
				break;
			if (o->in_thread) {
				for (dirty = 0, i = 0; i < s->nregions; i++)
					dirty += bitmap_count(&s->regions[i].dirty);
				if (dirty > last / (pass ? 2 : 64))
					break;
				last = dirty;
			}
			dirty = 0;
			for (i = 0; i < s->nregions && !ret; i++)
				ret = reprotect_dirty(s, &s->regions[i], &dirty);
		}
		s->st.protect_ns = mono_ns() - t0;
		if (ret)
			return ret;
	}
	ret = instant(s);
	/* An munmap or mremap of a region since setup (snap_event()). */
	if (failed(s))
		ret = s->st.error;
	if (ret)
		return ret;
	for (i = 0; i < s->nregions; i++)
		s->st.pages_present += bitmap_count(&s->regions[i].present);
	ret = mm_thread_create(&s->writer, &s->writer_stack, writer_main, s);
	if (ret)
		return ret;
	s->writer_started = true;
	return 0;
}

int uffd_snap_start(struct uffd_snap *s)
{
	int ret;

	if (!s)
		return -EINVAL;
	if (__atomic_exchange_n(&s->started, 1, __ATOMIC_ACQ_REL))
		return -EALREADY;
	ret = start(s);
	if (ret)
		finish(s, ret);	/* wait() answers it; free() tears down */
	return ret;
}

struct uffd_snap *uffd_snap_begin(const struct uffd_snap_opts *o)
{
	struct uffd_snap *s = uffd_snap_new(o);
	int ret;

	if (!s)
		return NULL;
	ret = uffd_snap_start(s);
	if (ret) {
		destroy(s);
		errno = -ret;
		return NULL;
	}
	return s;
}

/* ---- writes the program announces ----------------------------------------- */

/*
 * One page of uffd_snap_prepare_write(): saved (after the instant) or
 * remembered (before it) and un-protected by the calling thread, as
 * snap_wp_fault() would have it done - but one page, not its group: a
 * program that announces its writes touches few pages of a group.  The
 * copy is checked and confirmed as the writer thread's are (a thread other
 * than the servicing one: see save_removed() and confirm()); scratch is
 * the caller's, one page.
 */
static int prepare_page(struct uffd_snap *s, struct snap_region *r, uint64_t page,
			char *scratch)
{
	void *addr = page_addr(r, page);
	uint64_t claimed, copied = 0;
	bool held = false;
	struct slot *v[1];
	int k, ret;

	if (__atomic_load_n(&s->phase, __ATOMIC_ACQUIRE) != AFTER_INSTANT) {
		if (bitmap_test(&r->dirty, page))
			return 0;	/* un-protected already */
		bitmap_set_atomic(&r->dirty, page);
		ret = uffd_writeprotect(&s->u, addr, r->page_size, false, 0);
		bitmap_set_atomic(&r->dirty, page);
		return ret;
	}
	if (__atomic_load_n(&r->state[page], __ATOMIC_ACQUIRE) == SAVED)
		return 0;	/* (if not un-protected yet: one fault, as before) */
	/*
	 * In-thread, the faults save pages in the program's threads and must
	 * never wait for a lock a program thread holds: this one writes no
	 * image (the image writer's locks) and takes its slot before its
	 * claim.  The buffer full, it leaves the page to the write's fault.
	 */
	if (s->opts.in_thread && bitmap_test(&r->present, page) && !failed(s)) {
		if (!slots_get(s, v, 1, true))
			return 0;
		held = true;
	}
	claimed = claim(r, page, 1);
	if (claimed && bitmap_test(&r->present, page) && !failed(s)) {
		if (held || slots_get(s, v, 1, false)) {
			held = false;
			k = copy_to_slots(s, r, page, 1, 1, v, 1, &copied, true);
			if (k && !still_protected(s, r, page, 1, 1))
				fail(s, -EFAULT);	/* zapped before the copy */
			slots_ready(s, v, k);
			STAT_ADD(&s->st, copied_before_write, k);
		}
		if (!copied && !failed(s) && !s->opts.in_thread)
			STAT_ADD(&s->st, sync_writes,
				 write_claimed(s, r, page, 1, 1, scratch, &copied, true));
	}
	if (held)
		slots_put(s, v, 1);
	release(r, page, 1, claimed, copied);
	ret = confirm(s, r, page, 1, SAVER_WRITER);
	return ret < 0 ? ret : 0;
}

int uffd_snap_prepare_write(struct uffd_snap *s, void *addr, size_t len)
{
	uint64_t a = (uintptr_t)addr, end = a + len;
	int i, ret = 0;

	if (!s || end < a)
		return -EINVAL;
	/* Not started, or done: nothing is protected. */
	if (!len || !__atomic_load_n(&s->started, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
		return 0;
	for (i = 0; i < s->nregions && !ret; i++) {
		struct snap_region *r = &s->regions[i];
		uint64_t from = a > r->start ? a : r->start;
		uint64_t to = end < r->start + r->len ? end : r->start + r->len, page;
		char scratch[4096] __attribute__((aligned(64)));

		/* huge pages: too big for this thread's scratch, left to the fault */
		if (from >= to || r->page_size > sizeof(scratch))
			continue;
		for (page = (from - r->start) / r->page_size;
		     page <= (to - 1 - r->start) / r->page_size && !ret; page++)
			ret = prepare_page(s, r, page, scratch);
	}
	return ret;
}

int uffd_snap_wait(struct uffd_snap *s, int timeout_ms)
{
	int ret;

	if (!s || !__atomic_load_n(&s->started, __ATOMIC_ACQUIRE))
		return -EINVAL;
	ret = wait_done(&s->lock, &s->done_cond, &s->done, timeout_ms);
	return ret ? ret : __atomic_load_n(&s->st.error, __ATOMIC_RELAXED);
}

/*
 * The answer tells the caller whether a file exists: 0 cancelled (no
 * file), -EALREADY committed before the cancel was seen (the image stays,
 * complete), else the error that had ended it (no file).
 */
int uffd_snap_cancel(struct uffd_snap *s)
{
	int ret;

	if (!s || !__atomic_load_n(&s->started, __ATOMIC_ACQUIRE))
		return -EINVAL;
	__atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
	ret = uffd_snap_wait(s, -1);
	if (ret == -ECANCELED)
		return 0;
	return ret ? ret : -EALREADY;
}

int uffd_snap_stats(struct uffd_snap *s, struct uffd_snap_stats *st)
{
	uint64_t t0;

	if (!s || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	STAT_COPY(st, &s->st, pause_ns);
	STAT_COPY(st, &s->st, protect_ns);
	STAT_COPY(st, &s->st, precopy_dirty);
	STAT_COPY(st, &s->st, pages);
	STAT_COPY(st, &s->st, pages_present);
	STAT_COPY(st, &s->st, copied_before_write);
	STAT_COPY(st, &s->st, written_background);
	STAT_COPY(st, &s->st, sync_writes);
	STAT_COPY(st, &s->st, zero_pages);
	STAT_COPY(st, &s->st, bytes);
	STAT_COPY(st, &s->st, buffer_peak_bytes);
	STAT_COPY(st, &s->st, extra_bytes);
	STAT_COPY(st, &s->st, duration_ns);
	STAT_COPY(st, &s->st, skipped_regions);
	STAT_COPY(st, &s->st, buffer_waits);
	st->done = __atomic_load_n(&s->done, __ATOMIC_ACQUIRE);
	st->error = __atomic_load_n(&s->st.error, __ATOMIC_RELAXED);
	t0 = __atomic_load_n(&s->t_begin, __ATOMIC_RELAXED);	/* 0: not started */
	if (!st->done && t0)
		st->duration_ns = mono_ns() - t0;
	return 0;
}

void uffd_snap_free(struct uffd_snap *s)
{
	if (!s)
		return;
	if (s->writer_started) {
		if (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			__atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
		mm_thread_join(s->writer, s->writer_stack);
	}
	destroy(s);
}
