/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live incremental checkpoints: one userfaultfd registration, kept for the
 * checkpointer's life, both tracks written pages and saves each delta's
 * pages before they change - the live snapshot's copy-before-write, applied
 * to the pages of a delta instead of all of them.
 *
 * Between checkpoints every page that was not written since the last
 * instant is write-protected.  The first write to one faults once: the
 * servicing thread sets its bit in `dirty` and un-protects that page alone
 * (one page, so a delta holds what was written and nothing more).  So at
 * any time dirty is exactly the set of pages that may have changed, and
 * every other page is protected.
 *
 * A checkpoint's instant re-protects the dirty pages and makes them the
 * delta's pages (`inflight`, each PENDING in `state`): most of them before
 * the pause while the program runs (precopy, in a few passes that each
 * catch what was written during the one before), and inside the pause
 * only those written meanwhile - so the pause is proportional to what the
 * program wrote during the last precopy pass, not to the delta.  After the
 * instant a background writer streams the PENDING pages from memory in
 * address order (read with util/ownread.h: memory unmapped meanwhile
 * fails the delta, not the process), and a write to a PENDING page makes the
 * servicing thread save it first (into a bounded buffer, or written from
 * memory when the buffer is full) - the same claim protocol as the live
 * snapshot (snapshot.c): whoever moves a page from PENDING to COPYING
 * saves it, the other waits, and no write lands before the page is saved.
 * Saved pages stay protected unless written, so tracking goes on
 * through the delta without a gap.
 *
 * A delta that fails (the disk fills) leaves its pages in `carry`, and
 * the next checkpoint writes them again.  Pages discarded with
 * MADV_DONTNEED are marked dirty (they became zeros); discarding a page
 * the delta being written still has to save fails that delta (its contents
 * at the instant are gone).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <uffd/handler.h>

#include "ckpt_live.h"
#include "util/bitmap.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/mmalloc.h"
#include "util/ownread.h"
#include "util/stats.h"

#define PAGE		4096UL
#define WINDOW		64		/* pages per image chunk */
#define MIN_BUFFER	(1UL << 20)
#define MAX_BUFFER	(64UL << 20)
#define PRECOPY_PASSES	4		/* at most, before the pause */
#define PRECOPY_ENOUGH	256		/* pages written during a pass: stop */

enum page_state { IDLE = 0, PENDING, COPYING };

struct live_region {
	struct ckpt_live *l;
	int index;
	uint64_t start, npages;
	uint8_t *state;			/* enum page_state per page */
	struct bitmap dirty;		/* written since the last instant */
	struct bitmap inflight;		/* the delta being written */
	struct bitmap carry;		/* of failed deltas: for the next one */
};

struct slot {
	struct live_region *r;
	uint64_t page;
	struct slot *next;
};

struct ckpt_live {
	struct uffd u;
	struct uffd_handler *h;
	int nregions;
	struct live_region *regions;
	struct uffd_image_region *image_regions;

	/* the copy-before-write buffer */
	size_t nslots;
	char *buffer;			/* nslots + WINDOW pages: the last */
	char *writer_window;		/* WINDOW are the writer's */
	struct slot *slots, *free_list, *ready_head, *ready_tail;
	pthread_mutex_t lock;

	/* the delta being written */
	struct uffd_image_writer *w;
	bool base, begun, writer_inline;
	pthread_t writer;
	void *writer_stack;
	int done, cancel, error, broken;	/* atomic */
	pthread_cond_t done_cond;
	uint64_t t_begin, pause_ns;
	uint64_t pages_written, copied, sync_writes;	/* atomic */
	uint64_t bytes;
};


static void *page_addr(const struct live_region *r, uint64_t page)
{
	return (void *)(uintptr_t)(r->start + page * PAGE);
}

static bool all_zero(const void *p)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

static void fail(struct ckpt_live *l, int err)
{
	int zero = 0;

	__atomic_compare_exchange_n(&l->error, &zero, err, false, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
}

/*
 * Copy n pages of the program's memory at page first into dst, with
 * util/ownread.h: memory the program unmapped meanwhile (its UNMAP event
 * comes after the fact) is not a crash but a failed delta.  true if all
 * of it was there.
 */
static bool read_pages(struct ckpt_live *l, struct live_region *r, uint64_t first, uint64_t n,
		       char *dst)
{
	struct iovec iov = { dst, n * PAGE };

	if (uffd__read_own(&iov, 1, page_addr(r, first), n * PAGE) == n * PAGE)
		return true;
	fail(l, -EFAULT);
	return false;
}

static bool failed(struct ckpt_live *l)
{
	return __atomic_load_n(&l->error, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&l->cancel, __ATOMIC_RELAXED);
}

/*
 * Put pages [first, first + n) of r from data (consecutive pages): the
 * non-zero ones as data, the zero ones as zero in a delta and left out of a
 * base (holes).  Each run of non-zero pages is one chunk.
 */
static void put_pages(struct ckpt_live *l, struct live_region *r, uint64_t first, uint64_t n,
		      const char *data)
{
	uint64_t i = 0, j;
	int ret = 0;

	while (i < n && !ret) {
		if (all_zero(data + i * PAGE)) {
			if (!l->base) {
				ret = uffd_image_put(l->w, r->index, first + i, 1, NULL, 1);
				STAT_ADD(l, pages_written, 1);
			}
			i++;
			continue;
		}
		for (j = i + 1; j < n && !all_zero(data + j * PAGE); j++)
			;
		ret = uffd_image_put(l->w, r->index, first + i, j - i, data + i * PAGE, 0);
		STAT_ADD(l, pages_written, j - i);
		i = j;
	}
	if (ret)
		fail(l, ret);
}

/* ---- the servicing thread: first writes ----------------------------------- */

static struct slot *slot_get(struct ckpt_live *l)
{
	struct slot *s;

	pthread_mutex_lock(&l->lock);
	s = l->free_list;
	if (s)
		l->free_list = s->next;
	pthread_mutex_unlock(&l->lock);
	return s;
}

static void slot_put(struct ckpt_live *l, struct slot *s)
{
	pthread_mutex_lock(&l->lock);
	s->next = l->free_list;
	l->free_list = s;
	pthread_mutex_unlock(&l->lock);
}

static char *slot_data(struct ckpt_live *l, struct slot *s)
{
	return l->buffer + (size_t)(s - l->slots) * PAGE;
}

static void slot_ready(struct ckpt_live *l, struct slot *s)
{
	s->next = NULL;
	pthread_mutex_lock(&l->lock);
	if (l->ready_tail)
		l->ready_tail->next = s;
	else
		l->ready_head = s;
	l->ready_tail = s;
	pthread_mutex_unlock(&l->lock);
}

/* A write to a page of the delta: save it before it changes. */
static void save_before_write(struct ckpt_live *l, struct live_region *r, uint64_t page)
{
	char copy[PAGE] __attribute__((aligned(64)));	/* buffer full: the page here */
	uint8_t pending = PENDING;
	struct slot *s;

	if (!__atomic_compare_exchange_n(&r->state[page], &pending, COPYING, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* the writer is saving it: wait until it has */
		while (__atomic_load_n(&r->state[page], __ATOMIC_ACQUIRE) == COPYING)
			sched_yield();
		return;
	}
	if (!failed(l)) {
		s = slot_get(l);
		if (s && read_pages(l, r, page, 1, slot_data(l, s))) {
			s->r = r;
			s->page = page;
			/* queued before IDLE: a writer that saw it IDLE has it queued */
			slot_ready(l, s);
			STAT_ADD(l, copied, 1);
		} else if (s) {
			slot_put(l, s);
		} else if (read_pages(l, r, page, 1, copy)) {
			put_pages(l, r, page, 1, copy);
			STAT_ADD(l, sync_writes, 1);
		}
	}
	__atomic_store_n(&r->state[page], IDLE, __ATOMIC_RELEASE);
}

static int live_wp_fault(struct uffd_fault *f)
{
	struct live_region *r = f->data;
	struct ckpt_live *l = r->l;
	uint64_t page = ((uintptr_t)f->addr - r->start) / PAGE;
	int ret;

	if (__atomic_load_n(&r->state[page], __ATOMIC_ACQUIRE) != IDLE)
		save_before_write(l, r, page);
	/*
	 * Remember, let through, remember again, and only then wake the
	 * writer: reprotect() clears a run's bits before protecting it, so the
	 * page ends up protected or with its bit set, never writable and
	 * forgotten (the argument of snapshot.c's precopy).
	 */
	bitmap_set_atomic(&r->dirty, page);
	ret = uffd_writeprotect(&l->u, f->addr, PAGE, false, UFFD_DONTWAKE);
	bitmap_set_atomic(&r->dirty, page);
	uffd_wake(&l->u, f->addr, PAGE);
	return ret ? ret : UFFD_FAULT_DEFERRED;
}

/*
 * MADV_DONTNEED/REMOVE: those pages are zeros now (dirty, for the next
 * delta).  A page the delta still has to save lost its contents at the
 * instant: the delta fails.  UNMAP/REMAP: the memory is not where the
 * checkpoints say any more; every later checkpoint fails.
 */
static void live_event(struct uffd_region *region, const struct uffd_event *ev)
{
	struct live_region *r = uffd_region_data(region);
	uint64_t a, b, p;

	if (ev->type == UFFD_EV_REMOVE) {
		uint64_t end = r->start + r->npages * PAGE;

		if (ev->range.end <= r->start || ev->range.start >= end)
			return;
		a = (ev->range.start > r->start ? ev->range.start - r->start : 0) / PAGE;
		b = ((ev->range.end < end ? ev->range.end : end) - r->start + PAGE - 1) / PAGE;
		for (p = a; p < b; p++) {
			if (__atomic_load_n(&r->state[p], __ATOMIC_ACQUIRE) != IDLE)
				fail(r->l, -ENODATA);
			bitmap_set_atomic(&r->dirty, p);
		}
	} else if (ev->type == UFFD_EV_UNMAP || ev->type == UFFD_EV_REMAP) {
		int zero = 0;

		__atomic_compare_exchange_n(&r->l->broken, &zero, -EFAULT, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		fail(r->l, -EFAULT);
	}
}

static const struct uffd_region_ops live_ops = { .wp = live_wp_fault, .event = live_event };

/* A write the program announces: what live_wp_fault() does, in its thread. */
int uffd__ckpt_live_prepare_write(struct ckpt_live *l, void *addr, size_t len)
{
	uint64_t a = (uintptr_t)addr, end = a + len;
	int i, ret = 0;

	if (end < a)
		return -EINVAL;
	for (i = 0; i < l->nregions && !ret; i++) {
		struct live_region *r = &l->regions[i];
		uint64_t rend = r->start + r->npages * PAGE, page, last;

		if (end <= r->start || a >= rend || !len)
			continue;
		page = (a > r->start ? a - r->start : 0) / PAGE;
		last = ((end < rend ? end : rend) - 1 - r->start) / PAGE;
		for (; page <= last && !ret; page++) {
			if (__atomic_load_n(&r->state[page], __ATOMIC_ACQUIRE) != IDLE)
				save_before_write(l, r, page);
			if (bitmap_test(&r->dirty, page))
				continue;	/* un-protected already */
			bitmap_set_atomic(&r->dirty, page);
			ret = uffd_writeprotect(&l->u, page_addr(r, page), PAGE, false, 0);
			bitmap_set_atomic(&r->dirty, page);
		}
	}
	return ret;
}

/* ---- the background writer ------------------------------------------------ */

/* Write what the servicing thread copied so far. */
static void drain_ready(struct ckpt_live *l)
{
	struct slot *list, *s, *last = NULL;

	pthread_mutex_lock(&l->lock);
	list = l->ready_head;
	l->ready_head = l->ready_tail = NULL;
	pthread_mutex_unlock(&l->lock);
	if (!list)
		return;
	for (s = list; s; last = s, s = s->next)
		if (!failed(l))
			put_pages(l, s->r, s->page, 1, slot_data(l, s));
	pthread_mutex_lock(&l->lock);
	last->next = l->free_list;
	l->free_list = list;
	pthread_mutex_unlock(&l->lock);
}

/* Save the still-pending pages of [first, first + n) (n <= WINDOW) from memory. */
static void stream_window(struct ckpt_live *l, struct live_region *r, uint64_t first,
			  uint64_t n)
{
	uint64_t claimed = 0, i, j;

	for (i = 0; i < n; i++) {
		uint8_t pending = PENDING;

		if (__atomic_compare_exchange_n(&r->state[first + i], &pending, COPYING, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			claimed |= 1ULL << i;
	}
	/* Runs of claimed pages: protected and COPYING, nobody changes them. */
	for (i = 0; i < n && !failed(l);) {
		if (!(claimed >> i & 1)) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && (claimed >> j & 1); j++)
			;
		if (read_pages(l, r, first + i, j - i, l->writer_window))
			put_pages(l, r, first + i, j - i, l->writer_window);
		i = j;
	}
	for (i = 0; i < n; i++)
		if (claimed >> i & 1)
			__atomic_store_n(&r->state[first + i], IDLE, __ATOMIC_RELEASE);
	/*
	 * The others a fault is saving: it queues or puts the page before it
	 * goes IDLE, so once none is COPYING the delta ends with every page in
	 * (and no fault still counts or puts into an image already committed).
	 */
	for (i = 0; i < n; i++)
		while (__atomic_load_n(&r->state[first + i], __ATOMIC_ACQUIRE) == COPYING)
			sched_yield();
}

static void *writer_main(void *arg)
{
	struct ckpt_live *l = arg;
	int i, err;

	for (i = 0; i < l->nregions; i++) {
		struct live_region *r = &l->regions[i];
		size_t pos = 0, a, b;

		while (bitmap_next_run(&r->inflight, &pos, r->npages, &a, &b))
			for (; a < b; a += WINDOW) {
				drain_ready(l);
				stream_window(l, r, a, b - a < WINDOW ? b - a : WINDOW);
			}
	}
	/* Every page of the delta is saved (or the delta failed: all IDLE
	 * again, so faults only track).  What faults copied goes in last. */
	drain_ready(l);
	err = __atomic_load_n(&l->cancel, __ATOMIC_RELAXED) ? -ECANCELED :
	      __atomic_load_n(&l->error, __ATOMIC_RELAXED);
	l->bytes = uffd_image_bytes(l->w);
	if (err)
		uffd_image_abort(l->w);
	else
		err = uffd_image_commit(l->w);
	l->w = NULL;
	for (i = 0; i < l->nregions; i++) {
		struct live_region *r = &l->regions[i];
		size_t w;

		/* failed: its pages go into the next checkpoint */
		for (w = 0; err && w < BITMAP_WORDS(r->npages); w++)
			r->carry.words[w] |= r->inflight.words[w];
	}
	pthread_mutex_lock(&l->lock);
	__atomic_store_n(&l->error, err, __ATOMIC_RELAXED);
	__atomic_store_n(&l->done, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&l->done_cond);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ---- the instant ---------------------------------------------------------- */

/* Move r's dirty pages into the delta, protecting them again (counted). */
static int reprotect(struct ckpt_live *l, struct live_region *r, uint64_t *count)
{
	size_t pos = 0, a, b;
	int ret = 0;

	/* Clear, then protect: see live_wp_fault(). */
	while (!ret && bitmap_next_run(&r->dirty, &pos, r->npages, &a, &b)) {
		bitmap_clear_range(&r->dirty, a, b);
		bitmap_set_range(&r->inflight, a, b);
		ret = uffd_writeprotect(&l->u, page_addr(r, a), (b - a) * PAGE, true, 0);
		*count += b - a;
	}
	return ret;
}

static int reprotect_all(struct ckpt_live *l, uint64_t *count)
{
	int i, ret = 0;

	*count = 0;
	for (i = 0; i < l->nregions && !ret; i++)
		ret = reprotect(l, &l->regions[i], count);
	return ret;
}

/*
 * Pages [a, b) join the delta.  Stored one by one, atomically: a servicing
 * thread may be reading their state meanwhile (a fault taken before the
 * pause, ordered only by the kernel where the faulting thread waits; an
 * event; a thread the pause does not stop), so a memset would race.
 */
static void mark_pending(struct live_region *r, size_t a, size_t b)
{
	for (; a < b; a++)
		__atomic_store_n(&r->state[a], PENDING, __ATOMIC_RELEASE);
}

int uffd__ckpt_live_begin(struct ckpt_live *l, const char *path, const char *parent,
			  bool base, void (*pause)(void *), void (*resume)(void *), void *arg,
			  uint64_t *pause_ns)
{
	uint64_t t0, count;
	int i, pass, ret;

	if (l->begun)
		return -EBUSY;
	ret = __atomic_load_n(&l->broken, __ATOMIC_RELAXED);
	if (ret)
		return ret;
	l->t_begin = mono_ns();
	for (i = 0; i < l->nregions; i++)
		memset(l->regions[i].inflight.words, 0,
		       BITMAP_WORDS(l->regions[i].npages) * sizeof(uint64_t));
	/* Everything the servicing thread needs once a page is PENDING. */
	l->base = base;
	l->done = l->cancel = l->error = 0;
	l->pages_written = l->copied = l->sync_writes = l->bytes = 0;
	/* The file now, not in the pause (its header's instant: now too). */
	l->w = uffd_image_create(path, l->image_regions, l->nregions, base ? NULL : parent, 0);
	if (!l->w)
		return -errno;
	/*
	 * Precopy, while the program runs: protect what it wrote, then what it
	 * wrote meanwhile, until little is left for the pause (a pass over a
	 * large delta lasts long enough for busy writers to dirty thousands of
	 * pages again; the next, shorter pass catches most of those).
	 */
	for (pass = 0; pass < PRECOPY_PASSES; pass++) {
		ret = reprotect_all(l, &count);
		if (ret || count <= PRECOPY_ENOUGH)
			break;
	}
	if (pause)
		pause(arg);
	t0 = mono_ns();
	/* MADV_DONTNEEDs already read are applied before the dirty set is taken */
	uffd_handler_sync(l->h);
	if (!ret)
		ret = reprotect_all(l, &count);
	for (i = 0; i < l->nregions; i++) {
		struct live_region *r = &l->regions[i];
		size_t w, pos = 0, a, b;

		if (base)
			bitmap_set_range(&r->inflight, 0, r->npages);
		for (w = 0; w < BITMAP_WORDS(r->npages); w++) {
			r->inflight.words[w] |= r->carry.words[w];
			r->carry.words[w] = 0;
		}
		if (ret)	/* nothing protected for sure: write them next time */
			continue;
		while (bitmap_next_run(&r->inflight, &pos, r->npages, &a, &b))
			mark_pending(r, a, b);
	}
	l->pause_ns = mono_ns() - t0;
	if (pause_ns)
		*pause_ns = l->pause_ns;
	if (resume)
		resume(arg);
	if (ret) {
		/* nothing is PENDING: the pages wait for the next checkpoint */
		for (i = 0; i < l->nregions; i++) {
			struct live_region *r = &l->regions[i];
			size_t w;

			for (w = 0; w < BITMAP_WORDS(r->npages); w++)
				r->carry.words[w] |= r->inflight.words[w];
		}
		uffd_image_abort(l->w);
		l->w = NULL;
		return ret;
	}
	l->begun = true;
	/* No thread to write it: write it here (the program runs meanwhile). */
	l->writer_inline = mm_thread_create(&l->writer, &l->writer_stack, writer_main, l) != 0;
	if (l->writer_inline)
		writer_main(l);
	return 0;
}

int uffd__ckpt_live_wait(struct ckpt_live *l, int timeout_ms, struct ckpt_live_result *res)
{
	int ret;

	if (!l->begun)
		return -ENOENT;
	ret = wait_done(&l->lock, &l->done_cond, &l->done, timeout_ms);
	if (ret)
		return ret;
	if (!l->writer_inline)
		mm_thread_join(l->writer, l->writer_stack);
	l->begun = false;
	if (res) {
		res->pages_written = l->pages_written;
		res->bytes = l->bytes;
		res->pause_ns = l->pause_ns;
		res->copied_before_write = l->copied;
		res->sync_writes = l->sync_writes;
	}
	return __atomic_load_n(&l->error, __ATOMIC_RELAXED);
}

/* ---- set-up ------------------------------------------------------------------ */

static int setup_buffer(struct ckpt_live *l, size_t bytes)
{
	uint64_t pages = 0;
	size_t i;
	int r;

	for (r = 0; r < l->nregions; r++)
		pages += l->regions[r].npages;
	/* default: 1/64 of what is checkpointed, within [1 MiB, 64 MiB] */
	if (!bytes) {
		bytes = pages * PAGE / 64;
		bytes = bytes < MIN_BUFFER ? MIN_BUFFER : bytes > MAX_BUFFER ? MAX_BUFFER : bytes;
	}
	l->nslots = bytes / PAGE ? bytes / PAGE : 1;
	/* reserved, not touched: only the slots used take memory */
	l->buffer = mmap(NULL, (l->nslots + WINDOW) * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (l->buffer == MAP_FAILED) {
		l->buffer = NULL;
		return -ENOMEM;
	}
	l->writer_window = l->buffer + l->nslots * PAGE;
	l->slots = mm_zalloc(l->nslots * sizeof(*l->slots));
	if (!l->slots)
		return -ENOMEM;
	for (i = l->nslots; i-- > 0;) {
		l->slots[i].next = l->free_list;
		l->free_list = &l->slots[i];
	}
	return 0;
}

static int setup_region(struct ckpt_live *l, int i, const struct uffd_image_region *ir)
{
	struct live_region *r = &l->regions[i];

	r->l = l;
	r->index = i;
	r->start = ir->addr;
	if (!ir->len || ir->len % PAGE || ir->addr % PAGE || ir->page_size != PAGE)
		return -EINVAL;
	r->npages = ir->len / PAGE;
	r->state = mm_zalloc(r->npages);
	if (!r->state || bitmap_resize(&r->dirty, r->npages) ||
	    bitmap_resize(&r->inflight, r->npages) || bitmap_resize(&r->carry, r->npages))
		return -ENOMEM;
	if (!uffd_handler_add(l->h, (void *)(uintptr_t)ir->addr, ir->len, PAGE, UFFD_REG_WP,
			      &live_ops, r))
		return -errno;
	return 0;
}

struct ckpt_live *uffd__ckpt_live_new(const struct uffd_image_region *regions, int nregions,
				       size_t buffer_bytes)
{
	UFFD_OPTS(uffd_handler_opts, ho, .threads = 1);
	struct ckpt_live *l;
	int i, ret;

	/* The statics libuffd sets lazily, set before anything is protected
	 * (see set_lazy_statics() in snapshot.c). */
	(void)uffd_page_size();
	(void)crc32c(0, "", 1);
	(void)uffd_kernel_features();
	l = mm_zalloc(sizeof(*l));
	if (!l)
		return NULL;
	l->u.fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->done_cond, NULL);
	/*
	 * WP_UNPOPULATED: a page never touched faults on its first write too.
	 * EVENT_REMOVE: MADV_DONTNEED of a tracked page is seen (on anonymous
	 * memory it drops the protection with the page).  EVENT_UNMAP, where
	 * there: an unmapping fails the checkpoints instead of going unseen.
	 */
	ret = uffd_open(&l->u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			UFFD_F(UFFD_FEAT_WP_UNPOPULATED) | UFFD_F(UFFD_FEAT_EVENT_REMOVE),
			UFFD_F(UFFD_FEAT_EVENT_UNMAP) | UFFD_F(UFFD_FEAT_EVENT_REMAP),
			UFFD_NONBLOCK);
	if (ret)
		goto out_err;
	l->h = uffd_handler_new(&l->u, &ho);
	l->regions = mm_zalloc(nregions * sizeof(*l->regions));
	l->image_regions = mm_zalloc(nregions * sizeof(*l->image_regions));
	if (!l->h || !l->regions || !l->image_regions) {
		ret = -ENOMEM;
		goto out_err;
	}
	memcpy(l->image_regions, regions, nregions * sizeof(*regions));
	for (i = 0; i < nregions; i++) {
		l->nregions = i + 1;
		ret = setup_region(l, i, &regions[i]);
		if (ret)
			goto out_err;
	}
	ret = setup_buffer(l, buffer_bytes);
	if (!ret)
		ret = uffd_handler_start(l->h);
	/* everything protected: from now on, first writes are seen */
	for (i = 0; i < nregions && !ret; i++)
		ret = uffd_writeprotect(&l->u, page_addr(&l->regions[i], 0),
					l->regions[i].npages * PAGE, true, 0);
	if (ret)
		goto out_err;
	return l;
out_err:
	uffd__ckpt_live_free(l);
	errno = -ret;
	return NULL;
}

void uffd__ckpt_live_free(struct ckpt_live *l)
{
	int i;

	if (!l)
		return;
	if (l->begun) {
		__atomic_store_n(&l->cancel, 1, __ATOMIC_RELAXED);
		uffd__ckpt_live_wait(l, -1, NULL);
	}
	/* joins the servicing thread and un-registers (un-protects) */
	uffd_handler_free(l->h);
	uffd_close(&l->u);
	for (i = 0; l->regions && i < l->nregions; i++) {
		mm_free(l->regions[i].state);
		bitmap_free(&l->regions[i].dirty);
		bitmap_free(&l->regions[i].inflight);
		bitmap_free(&l->regions[i].carry);
	}
	mm_free(l->regions);
	mm_free(l->image_regions);
	if (l->buffer)
		munmap(l->buffer, (l->nslots + WINDOW) * PAGE);
	mm_free(l->slots);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->done_cond);
	mm_free(l);
}
