/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The two userfaultfd backends: WP_ASYNC (the kernel resolves write faults,
 * PAGEMAP_SCAN collects and re-arms) and SYNC_WP (a runtime thread records
 * each first write and un-protects).
 *
 * Both register their ranges through a one-thread runtime handler, which
 * also reads the REMAP, REMOVE and UNMAP events so the tracker follows the
 * memory: a removed page is reported (its contents became zeros), a moved
 * range is scanned where it went, an unmapped one is dropped.  The thread
 * sleeps in poll(2): events are rare and WP_ASYNC faults never reach it.
 * SYNC_WP orders faults and re-arming with a rwlock: a fault records its
 * page and un-protects under the read side, a collect reports and
 * re-protects under the write side, so no write can land unreported
 * between the two.
 *
 * A zap is the one change that can disarm a page behind a collect's back.
 * madvise(MADV_DONTNEED) sends REMOVE, waits until the event is read, and
 * only then takes mmap_lock again and zaps: a collect in between reports
 * the page and re-arms it, then the zap takes it away - and on anonymous
 * memory its uffd-wp bit with it, leaving no marker (shmem keeps one).  A
 * fork() holding mmap_lock lines both up behind it and makes that common.
 * WP_ASYNC does not mind: its PAGEMAP_SCAN counts an empty entry as
 * written and re-arms it.  SYNC_WP used to: the next write landed with no
 * fault, unreported, and so did every later one (issue 15).  So SYNC_WP
 * registers its ranges for MISSING faults too: a page that is not there
 * faults whatever took it, and the fault is recorded like a write (or,
 * for a read, answered with a zero page mapped write-protected).  And it
 * forgets a removed page only once pagemap shows the page gone: until
 * then its zap is still to come, and the next collect reports it again,
 * since its contents change after this one's answer.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "runtime/inthread.h"
#include "track.h"
#include "util/mmalloc.h"

#define SCAN_VEC 512	/* runs per PAGEMAP_SCAN call */
#define SETTLE_BATCH 64	/* /proc/self/pagemap entries read at once */

#define TRACK_EVENTS (UFFD_F(UFFD_FEAT_EVENT_REMAP) | UFFD_F(UFFD_FEAT_EVENT_REMOVE) | \
		      UFFD_F(UFFD_FEAT_EVENT_UNMAP))

static void track_event(struct uffd_region *reg, const struct uffd_event *ev);
static int sync_wp_fault(struct uffd_fault *f);
static int sync_wp_missing(struct uffd_fault *f);
static int inthread_wp_fault(struct uffd_fault *f);
static int inthread_missing(struct uffd_fault *f);

static const struct uffd_region_ops wp_async_ops = { .event = track_event };
static const struct uffd_region_ops sync_wp_ops = { .wp = sync_wp_fault,
						    .missing = sync_wp_missing,
						    .event = track_event };
static const struct uffd_region_ops inthread_ops = { .wp = inthread_wp_fault,
						     .missing = inthread_missing,
						     .event = track_event };

/* What a read of a page that is not there gets (SYNC_WP). */
static const char zero_page[4096] __attribute__((aligned(4096)));

static int open_uffd(struct uffd_tracker *t, uint64_t required, uint64_t wanted)
{
	UFFD_OPTS(uffd_handler_opts, o, .threads = 1, .wait = UFFD_WAIT_BLOCK,
		  .in_thread = t->opts.in_thread);
	int ret;

	if (t->opts.in_thread)
		required |= UFFD_F(UFFD_FEAT_SIGBUS);
	ret = uffd_open(&t->u, required, TRACK_EVENTS | UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM) |
			wanted, UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY);
	if (ret)
		return ret;
	t->h = uffd_handler_new(&t->u, &o);
	if (!t->h || uffd_handler_start(t->h)) {
		ret = t->h ? -EAGAIN : -errno;
		uffd_handler_free(t->h);
		t->h = NULL;
		uffd_close(&t->u);
	}
	return ret;
}

static int wp_async_init(struct uffd_tracker *t)
{
	int ret;

	if (uffd_feature_supported(UFFD_FEAT_PAGEMAP_SCAN) != 1)
		return -EOPNOTSUPP;
	ret = open_uffd(t, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) | UFFD_F(UFFD_FEAT_WP_ASYNC),
			UFFD_F(UFFD_FEAT_WP_UNPOPULATED));
	if (ret)
		return ret;
	t->pagemap_fd = uffd_pagemap_open(0);
	if (t->pagemap_fd < 0) {
		ret = t->pagemap_fd;
		uffd_handler_free(t->h);
		uffd_close(&t->u);
	}
	return ret;
}

/*
 * No WP_UNPOPULATED: MISSING faults cover the pages that are not there,
 * and without markers on anonymous memory a swap entry there is a real
 * page (see sync_wp_settle_removed).  Without pagemap removed pages are
 * settled at once, as before the fix.
 */
static int sync_wp_init(struct uffd_tracker *t)
{
	int ret = open_uffd(t, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0);

	if (!ret)
		t->pagemap_fd = uffd_pagemap_open(0);
	return ret;
}

/*
 * -EAGAIN means an event is queued and not yet read.  Callers holding
 * ranges_lock return it (collect and reset drop the lock and try again:
 * the tracker's thread may need the lock to finish the event before it
 * reads the next); uffd_add holds nothing and simply retries.
 */
static int protect(struct uffd_tracker *t, uint64_t start, uint64_t len)
{
	return uffd_writeprotect(&t->u, (void *)(uintptr_t)start, len, true, 0);
}

/*
 * In a collect or a reset, a range that is not registered where the
 * tracker has it (-ENOENT from UFFDIO_WRITEPROTECT, -EPERM from
 * PAGEMAP_SCAN over someone else's mapping) was moved or unmapped by a
 * system call still under way: its REMAP or UNMAP event comes once the
 * memory has gone, and the place may be mapped again meanwhile.  Like a
 * queued event, that is -EAGAIN: try again once it has been applied.
 */
static int stale(int ret)
{
	return ret == -ENOENT || ret == -EPERM ? -EAGAIN : ret;
}

static int uffd_add(struct uffd_tracker *t, struct track_range *r,
		    const struct uffd_region_ops *ops, unsigned modes)
{
	int ret;

	r->region = uffd_handler_add(t->h, (void *)(uintptr_t)r->start, r->len, 0,
				     modes, ops, r);
	if (!r->region)
		return -errno;
	while ((ret = protect(t, r->start, r->len)) == -EAGAIN)
		sched_yield();
	return ret;
}

static int wp_async_add(struct uffd_tracker *t, struct track_range *r)
{
	return uffd_add(t, r, &wp_async_ops, UFFD_REG_WP);
}

static int sync_wp_add(struct uffd_tracker *t, struct track_range *r)
{
	return uffd_add(t, r, t->opts.in_thread ? &inthread_ops : &sync_wp_ops,
			UFFD_REG_WP | UFFD_REG_MISSING);
}

static int wp_async_collect(struct uffd_tracker *t, struct track_range *r, bool rearm)
{
	struct uffd_range vec[SCAN_VEC];
	uint64_t pos = r->start, end = r->start + r->len;

	while (pos < end) {
		struct uffd_scan s = {
			.addr = (void *)(uintptr_t)pos,
			.len = end - pos,
			.flags = UFFD_SCAN_CHECK_WPASYNC | (rearm ? UFFD_SCAN_WP_MATCHING : 0),
			.category_mask = UFFD_PAGE_WRITTEN,
			.return_mask = UFFD_PAGE_WRITTEN,
		};
		int i, n = uffd_pagemap_scan(t->pagemap_fd, &s, vec, SCAN_VEC);

		/* A mapping that is not ours where the range was: an mremap or
		 * munmap whose event is still on its way (see stale()). */
		if (n < 0)
			return stale(n);
		for (i = 0; i < n; i++)
			track_emit(t, r, vec[i].start, vec[i].end);
		if (s.walk_end <= pos)
			return -EIO;	/* no progress: should not happen */
		pos = s.walk_end;
	}
	return 0;
}

static int wp_async_reset(struct uffd_tracker *t, struct track_range *r)
{
	return stale(protect(t, r->start, r->len));
}

/* A write fault on a tracked page: counted, and on_write told (in-thread:
 * from the writing thread's signal handler). */
static void count_write(struct uffd_tracker *t, struct uffd_fault *f)
{
	__atomic_fetch_add(&t->write_faults, 1, __ATOMIC_RELAXED);
	if (t->opts.on_write)
		t->opts.on_write(f->addr, t->opts.arg);
}

/* A page that is not there gets a zero page: writable for a write, else
 * mapped write-protected so that the first write still faults. */
static int zero_fill(struct uffd_fault *f)
{
	if (f->write)
		return uffd_fault_copy(f, zero_page, 4096);
	return uffd_fault_copy_wp(f, f->addr, zero_page, 4096);
}

static int sync_wp_fault(struct uffd_fault *f)
{
	struct uffd_tracker *t = ((struct track_range *)f->data)->t;
	uint64_t addr = (uintptr_t)f->addr;
	struct track_range *r;
	int ret;

	/* By address: a range split by mremap/munmap has several pieces. */
	pthread_rwlock_rdlock(&t->ranges_lock);
	r = track_lookup(t, addr);
	if (r) {
		pthread_rwlock_rdlock(&t->arm_lock);
		bitmap_set_atomic(&t->dirty, track_bit(r, addr));
		count_write(t, f);
	}
	ret = uffd_fault_unprotect(f, 4096);
	if (r)
		pthread_rwlock_unlock(&t->arm_lock);
	pthread_rwlock_unlock(&t->ranges_lock);
	return ret;
}

/*
 * A page that is not there: never populated, or zapped (see the top).  A
 * write is recorded as a WP fault's is and gets a writable zero page; a
 * read gets a zero page mapped write-protected, so the first write still
 * faults.  A page whose REMOVE is not settled lost its contents after it
 * was last reported: the fault shows the zap done, and the page is
 * reported as written instead.
 */
static int sync_wp_missing(struct uffd_fault *f)
{
	struct uffd_tracker *t = ((struct track_range *)f->data)->t;
	uint64_t addr = (uintptr_t)f->addr;
	struct track_range *r;
	bool zapped = false;
	size_t bit = 0;
	int ret;

	pthread_rwlock_rdlock(&t->ranges_lock);
	r = track_lookup(t, addr);
	if (r) {
		pthread_rwlock_rdlock(&t->arm_lock);
		bit = track_bit(r, addr);
		zapped = bitmap_test(&t->removed, bit);
		if (f->write || zapped)
			bitmap_set_atomic(&t->dirty, bit);
		if (f->write)
			count_write(t, f);
	}
	ret = zero_fill(f);
	if (r) {
		if (zapped && !ret)
			bitmap_clear_range(&t->removed, bit, bit + 1);
		pthread_rwlock_unlock(&t->arm_lock);
	}
	pthread_rwlock_unlock(&t->ranges_lock);
	return ret;
}

/*
 * In-thread, faults take no lock (see inthread_wp_fault()): a run's bits
 * are cleared before it is protected, so the page of a fault that comes
 * in between ends up with its bit set again or protected, never writable
 * and forgotten - at worst a page is reported once more.
 */
static int sync_wp_collect(struct uffd_tracker *t, struct track_range *r, bool rearm)
{
	size_t pos = r->first_bit, end = r->first_bit + r->len / 4096, s, e;
	int ret = 0;

	pthread_rwlock_wrlock(&t->arm_lock);
	while (!ret && bitmap_next_run(&t->dirty, &pos, end, &s, &e)) {
		uint64_t from = r->start + (s - r->first_bit) * 4096;

		track_emit(t, r, from, from + (e - s) * 4096);
		if (!rearm)
			continue;
		if (t->opts.in_thread)
			bitmap_clear_range(&t->dirty, s, e);
		ret = stale(protect(t, from, (e - s) * 4096));
		if (ret && t->opts.in_thread)
			bitmap_set_range(&t->dirty, s, e);
		else if (!ret && !t->opts.in_thread)
			bitmap_clear_range(&t->dirty, s, e);
		/* else still dirty: reported again next time */
	}
	pthread_rwlock_unlock(&t->arm_lock);
	return ret;
}

static int sync_wp_reset(struct uffd_tracker *t, struct track_range *r)
{
	int ret;

	pthread_rwlock_wrlock(&t->arm_lock);
	if (t->opts.in_thread)	/* clear, then protect: see sync_wp_collect() */
		bitmap_clear_range(&t->dirty, r->first_bit, r->first_bit + r->len / 4096);
	ret = stale(protect(t, r->start, r->len));
	if (!t->opts.in_thread)
		bitmap_clear_range(&t->dirty, r->first_bit, r->first_bit + r->len / 4096);
	pthread_rwlock_unlock(&t->arm_lock);
	return ret;
}

static void uffd_destroy(struct uffd_tracker *t)
{
	uffd_handler_free(t->h);	/* unregisters: protection goes too */
	uffd_close(&t->u);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	mm_free(t->map);	/* no fault reads it once the handler is gone */
	t->map = NULL;
}

/* Mark [start, end) of r as removed (reported once); counts new pages. */
static void mark_removed(struct track_range *r, uint64_t start, uint64_t end)
{
	struct uffd_tracker *t = r->t;
	size_t bit;

	if (start < r->start)
		start = r->start;
	if (end > r->start + r->len)
		end = r->start + r->len;
	for (bit = track_bit(r, start); start < end; start += 4096, bit++) {
		if (bitmap_test(&t->removed, bit))
			continue;
		bitmap_set_atomic(&t->removed, bit);
		__atomic_fetch_add(&t->removed_pages, 1, __ATOMIC_RELAXED);
	}
}

/*
 * Take [start, end) out of r, keeping the bits of what stays: r keeps the
 * part below start (or above end, if nothing is below), a new range the
 * part above end when a hole is punched.
 */
static void cut(struct uffd_tracker *t, struct track_range *r, uint64_t start, uint64_t end)
{
	uint64_t r_end = r->start + r->len;

	if (start <= r->start && end >= r_end) {
		r->gone = true;
	} else if (start <= r->start) {		/* the head goes */
		r->first_bit += (end - r->start) / 4096;
		r->len = r_end - end;
		r->start = end;
	} else {
		if (end < r_end)		/* a hole: the tail stays apart */
			track_split_off(t, end, r_end - end, track_bit(r, end));
		r->len = start - r->start;
	}
}

/* Apply an mremap: the pages in [from, from+len) are now at to. */
static void remap(struct uffd_tracker *t, uint64_t from, uint64_t to, uint64_t len)
{
	int i, n = t->nranges;

	for (i = 0; i < n; i++) {
		struct track_range *r = t->ranges[i];
		uint64_t lo, hi;

		if (r->gone)
			continue;
		lo = r->start > from ? r->start : from;
		hi = r->start + r->len < from + len ? r->start + r->len : from + len;
		if (lo >= hi)
			continue;
		if (lo == r->start && hi == r->start + r->len) {
			r->start = r->start - from + to;	/* all of it moved */
			continue;
		}
		track_split_off(t, lo - from + to, hi - lo, track_bit(r, lo));
		cut(t, r, lo, hi);
	}
}

/*
 * Runs in the tracker's servicing thread, once per region the event
 * touches: everything is done by address, so doing it again is harmless.
 */
static void track_event(struct uffd_region *reg, const struct uffd_event *ev)
{
	struct uffd_tracker *t = ((struct track_range *)uffd_region_data(reg))->t;
	int i, n;

	pthread_rwlock_wrlock(&t->ranges_lock);
	n = t->nranges;
	switch (ev->type) {
	case UFFD_EV_REMOVE:
		for (i = 0; i < n; i++)
			if (!t->ranges[i]->gone)
				mark_removed(t->ranges[i], ev->range.start, ev->range.end);
		break;
	case UFFD_EV_REMAP:
		remap(t, ev->remap.from, ev->remap.to, ev->remap.len);
		break;
	case UFFD_EV_UNMAP:
		for (i = 0; i < n; i++) {
			struct track_range *r = t->ranges[i];

			if (!r->gone && ev->range.start < r->start + r->len &&
			    ev->range.end > r->start)
				cut(t, r, ev->range.start, ev->range.end);
		}
		break;
	default:
		break;
	}
	if (t->be->ranges_changed)
		t->be->ranges_changed(t);
	pthread_rwlock_unlock(&t->ranges_lock);
}

/*
 * Whether the VMA holding addr is private anonymous memory, from
 * /proc/self/maps; [*lo, *hi) receives the VMA so that the caller asks
 * again only past it.  Only asked about swap entries: rare.
 */
static bool private_anonymous(uint64_t addr, uint64_t *lo, uint64_t *hi)
{
	unsigned long long start, end, off;
	unsigned long inode;
	unsigned maj, min;
	char line[512], perms[5];
	bool anon = true;	/* unknown: the cautious answer */
	FILE *f = fopen("/proc/self/maps", "re");

	*lo = addr;
	*hi = addr + 4096;
	if (!f)
		return anon;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx %4s %llx %x:%x %lu", &start, &end, perms, &off,
			   &maj, &min, &inode) != 7 || addr < start || addr >= end)
			continue;
		*lo = start;
		*hi = end;
		anon = perms[3] == 'p' && !inode;
		break;
	}
	fclose(f);
	return anon;
}

/* Re-arm and forget removed pages [a, b) of r, whose zap is done. */
static int settle(struct uffd_tracker *t, struct track_range *r, size_t a, size_t b)
{
	int ret = stale(protect(t, r->start + (a - r->first_bit) * 4096, (b - a) * 4096));

	if (!ret)
		bitmap_clear_range(&t->removed, a, b);
	return ret;
}

/*
 * A removed page's zap is done when the page is gone: nothing there, or
 * a uffd-wp marker (shmem).  One still there keeps its bit: its zap is
 * still to come (see the top), and the next collect reports it again.  An
 * anonymous page in swap or being migrated is still there; so is any
 * page when pagemap cannot be read (then, as before the fix, all are
 * settled).  The re-arm protects what is there now: on shmem it leaves a
 * marker where a zapped page was written before (no uffd-wp bit, no
 * marker left); an anonymous hole needs none, MISSING faults cover it.
 */
static int sync_wp_settle_removed(struct uffd_tracker *t, struct track_range *r, size_t a,
				  size_t b)
{
	uint64_t e[SETTLE_BATCH], anon_lo = 0, anon_hi = 0;
	size_t i, n, run = 0;
	bool anon = false, in_run = false;
	int ret = 0;

	if (t->pagemap_fd < 0)
		return settle(t, r, a, b);
	for (; !ret && a < b; a += n) {
		uint64_t at = r->start + (a - r->first_bit) * 4096;

		n = b - a < SETTLE_BATCH ? b - a : SETTLE_BATCH;
		if (pread(t->pagemap_fd, e, n * sizeof(e[0]), at / 4096 * sizeof(e[0])) !=
		    (ssize_t)(n * sizeof(e[0])))
			memset(e, 0, sizeof(e));
		for (i = 0; i < n && !ret; i++, at += 4096) {
			bool there = e[i] & PM_ENTRY_PRESENT;

			if (!there && (e[i] & PM_ENTRY_SWAP)) {
				if (at < anon_lo || at >= anon_hi)
					anon = private_anonymous(at, &anon_lo, &anon_hi);
				there = anon;
			}
			if (!there && !in_run) {
				run = a + i;
				in_run = true;
			} else if (there && in_run) {
				ret = settle(t, r, run, a + i);
				in_run = false;
			}
		}
	}
	if (!ret && in_run)
		ret = settle(t, r, run, b);
	return ret;
}

/* ---- SYNC_WP in-thread ------------------------------------------------------ */

/*
 * With opts.in_thread the runtime resolves SYNC_WP's faults in the writing
 * thread, from its SIGBUS handler: no lock, no allocation there.  So the
 * faults read what they need from structures published for them: the
 * ranges' geometry (a map of copies, replaced whole when a range is added,
 * moved or cut, the old one freed after the runtime's grace period) and
 * the bitmaps (grown into new storage, the old one merged in and freed
 * once no fault can still be writing it).  A fault records its page
 * before and after un-protecting it, and a collect clears a run before it
 * re-protects it (sync_wp_collect()): no write lands unreported.
 */
struct track_map {
	int n;
	struct {
		uint64_t start, end;
		size_t first_bit;
	} v[];
};

/* ranges_lock held for writing.  Without memory the old map stays: the
 * pages it lacks are un-protected unrecorded (ENOMEM here is a failed
 * mmap of a page or so). */
static void inthread_ranges_changed(struct uffd_tracker *t)
{
	struct track_map *m, *old;
	int i;

	if (!t->opts.in_thread)
		return;
	m = mm_zalloc(sizeof(*m) + (t->nranges + 1) * sizeof(m->v[0]));
	if (!m)
		return;
	for (i = -1; i < t->nranges; i++) {
		struct track_range *r = i < 0 ? t->adding : t->ranges[i];

		if (!r || r->gone)
			continue;
		m->v[m->n].start = r->start;
		m->v[m->n].end = r->start + r->len;
		m->v[m->n].first_bit = r->first_bit;
		m->n++;
	}
	old = __atomic_exchange_n(&t->map, m, __ATOMIC_ACQ_REL);
	uffd__inthread_retire(old);
}

/* The bit of the page at addr, from a fault (in the runtime's reader
 * section, which keeps the map alive). */
static bool inthread_bit(struct uffd_tracker *t, uint64_t addr, size_t *bit)
{
	const struct track_map *m = __atomic_load_n(&t->map, __ATOMIC_ACQUIRE);
	int i;

	for (i = 0; m && i < m->n; i++)
		if (addr >= m->v[i].start && addr < m->v[i].end) {
			*bit = m->v[i].first_bit + (addr - m->v[i].start) / 4096;
			return true;
		}
	return false;
}

static void set_bit(uint64_t *words, size_t bit)
{
	__atomic_fetch_or(&words[bit / 64], 1ULL << (bit % 64), __ATOMIC_RELAXED);
}

static int grow_one(struct bitmap *b, size_t nbits)
{
	size_t old = BITMAP_WORDS(b->nbits), want = BITMAP_WORDS(nbits), i;
	uint64_t *w, *prev = b->words;

	if (want <= old) {
		b->nbits = nbits;
		return 0;
	}
	w = mm_zalloc(want * sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (i = 0; i < old; i++)
		w[i] = __atomic_load_n(&prev[i], __ATOMIC_RELAXED);
	__atomic_store_n(&b->words, w, __ATOMIC_RELEASE);
	b->nbits = nbits;
	if (prev) {
		/* Faults that read the old storage are done: what they set in
		 * it since the copy goes over too. */
		uffd__inthread_synchronize();
		for (i = 0; i < old; i++)
			__atomic_fetch_or(&w[i], __atomic_load_n(&prev[i], __ATOMIC_RELAXED),
					  __ATOMIC_RELAXED);
		mm_free(prev);
	}
	return 0;
}

/* ranges_lock held for writing (track_grow_bitmaps()). */
static int inthread_grow_bitmaps(struct uffd_tracker *t)
{
	int ret;

	pthread_rwlock_wrlock(&t->arm_lock);
	if (t->opts.in_thread) {
		ret = grow_one(&t->dirty, t->npages);
		if (!ret)
			ret = grow_one(&t->removed, t->npages);
	} else {
		ret = bitmap_resize(&t->dirty, t->npages);
		if (!ret)
			ret = bitmap_resize(&t->removed, t->npages);
	}
	pthread_rwlock_unlock(&t->arm_lock);
	return ret;
}

/* A write to a protected page, in the writing thread: sync_wp_fault()
 * without the locks (record, let through, record again). */
static int inthread_wp_fault(struct uffd_fault *f)
{
	struct uffd_tracker *t = ((struct track_range *)f->data)->t;
	uint64_t *words = __atomic_load_n(&t->dirty.words, __ATOMIC_ACQUIRE);
	size_t bit;
	int ret;

	if (!inthread_bit(t, (uintptr_t)f->addr, &bit))
		return uffd_fault_unprotect(f, 4096);	/* not tracked (any more) */
	set_bit(words, bit);
	count_write(t, f);
	ret = uffd_fault_unprotect(f, 4096);
	set_bit(words, bit);
	return ret;
}

/* A page that is not there: sync_wp_missing() without the locks. */
static int inthread_missing(struct uffd_fault *f)
{
	struct uffd_tracker *t = ((struct track_range *)f->data)->t;
	uint64_t *dirty = __atomic_load_n(&t->dirty.words, __ATOMIC_ACQUIRE);
	uint64_t *removed = __atomic_load_n(&t->removed.words, __ATOMIC_ACQUIRE);
	bool tracked, zapped = false, record;
	size_t bit = 0;
	int ret;

	tracked = inthread_bit(t, (uintptr_t)f->addr, &bit);
	if (tracked)
		zapped = __atomic_load_n(&removed[bit / 64], __ATOMIC_RELAXED) >> (bit % 64) & 1;
	record = tracked && (f->write || zapped);
	if (record)
		set_bit(dirty, bit);
	if (tracked && f->write)
		count_write(t, f);
	ret = zero_fill(f);
	if (record)
		set_bit(dirty, bit);
	if (zapped && !ret)
		__atomic_fetch_and(&removed[bit / 64], ~(1ULL << (bit % 64)), __ATOMIC_RELAXED);
	return ret;
}

const struct track_backend track_wp_async = {
	.kind = UFFD_TRACK_WP_ASYNC,
	.init = wp_async_init,
	.add = wp_async_add,
	.collect = wp_async_collect,
	.reset = wp_async_reset,
	.destroy = uffd_destroy,
};

const struct track_backend track_sync_wp = {
	.kind = UFFD_TRACK_SYNC_WP,
	.init = sync_wp_init,
	.add = sync_wp_add,
	.collect = sync_wp_collect,
	.reset = sync_wp_reset,
	.settle_removed = sync_wp_settle_removed,
	.ranges_changed = inthread_ranges_changed,
	.grow_bitmaps = inthread_grow_bitmaps,
	.destroy = uffd_destroy,
};
