/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The serving engine (see engine.h): spans, the fault and event callbacks,
 * the working-set prefetch and the background fill, driven one step at a
 * time by one thread.
 *
 * Demand first: a step services every queued message before it does any
 * background work, a working-set slice looks at the userfaultfd every
 * few pages and stops when a fault is queued, and the root's background
 * fill waits until its client has not faulted for FILL_BACKOFF_NS (the
 * fill's reads and copies took the CPUs a faulting client needed: a warm
 * working set came in 93-104 ms with it running, 70-82 ms without).
 * Working-set pages go in with DONTWAKE: nobody waits for them unless it
 * faulted, and a fault is read and answered (EEXIST: wake) within a slice;
 * one wake per span at the end of the set covers any race.  The working set's file is read in
 * 256 KiB pieces with POSIX_FADV_WILLNEED a few MiB ahead, so the kernel
 * reads it sequentially while pages are installed; demand faults on pages
 * of the set read them from that file too.
 *
 * "installed" (root address space only, per region page): the engine put
 * the page there.  Such a page is present, or was zapped since - by
 * madvise(DONTNEED) (whose REMOVE marks it removed anyway) or reclaimed
 * after MADV_FREE - and a zapped page of private anonymous memory is
 * zero: so a fault on an installed page is answered with a zero page,
 * which also just wakes the thread when the page is still there (EEXIST),
 * and the fill skips installed pages without an ioctl.  Not so for
 * regions mapped from a shared page cache (engine.h): a zapped page of a
 * private file mapping is the file's again, so there a fault on an
 * installed page is served like any other (and a REMOVE still makes it
 * zero).
 *
 * With the server's shared cache every page goes in by UFFDIO_CONTINUE
 * once it is in the cache (cache_page()): demand reads it there if no
 * client did before, the working set is read into it piece by piece by
 * whichever engine comes first (the others wait for a piece in their
 * background work, never in a fault), and the fill CONTINUEs runs of
 * pages that are there already without reading anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "runtime/events_lock.h"
#include "util/clock.h"
#include "util/mmalloc.h"

#define PAGE			4096ull
#define PREFETCH_SLICE		64	/* pages installed per step */
#define PREFETCH_CHECK		8	/* look for queued faults this often */
#define BURST			64	/* working-set pages installed past a fault */
#define BURST_REACH		256	/* ... on a page at most this far ahead */
#define FILL_RUN		16	/* pages per fill copy: a fault waits less */
#define FILL_SLICE		64	/* pages filled per step (one read each) */
#define SKIP_SLICE		4096	/* installed pages skipped per step */
#define FILL_BACKOFF_NS		2000000	/* no fill this long after a fault */
#define ADVISE_AHEAD		(4ull << 20)
/* A child's fd gives no sign when the child exits; unregistering a page
 * below mmap_min_addr (never mapped) answers -EINVAL while its address
 * space lives, -ENOMEM (6.18; -ESRCH before) once it is gone. */
#define NEVER_MAPPED		((void *)0x1000)

/* ---- the tests' hook (engine.h) ----------------------------------------- */

static serve_engine_hook_fn test_hook;

void uffd__serve_engine_hook(serve_engine_hook_fn fn)
{
	__atomic_store_n(&test_hook, fn, __ATOMIC_RELEASE);
}

static void run_test_hook(struct serve_engine *e, enum serve_hook_point where,
			  struct serve_mm *mm)
{
	serve_engine_hook_fn fn = __atomic_load_n(&test_hook, __ATOMIC_ACQUIRE);

	if (fn)
		fn(e, where, mm);
}

/* ---- spans ------------------------------------------------------------ */

static int span_find(const struct serve_mm *mm, uint64_t addr)
{
	int lo = 0, hi = mm->nspans;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (mm->spans[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mm->nspans && mm->spans[lo].start <= addr ? lo : -1;
}

/* Room for n more spans. */
static int spans_room(struct serve_mm *mm, int n)
{
	struct serve_span *v;
	int cap;

	if (mm->nspans + n <= mm->cap)
		return 0;
	cap = mm->cap * 2 > mm->nspans + n ? mm->cap * 2 : mm->nspans + n + 4;
	v = mm_realloc(mm->spans, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	mm->spans = v;
	mm->cap = cap;
	return 0;
}

/* The spans in address order again, after one was put at the end or some
 * moved (an insertion sort: they are few, and nearly in order). */
static void spans_sort(struct serve_mm *mm)
{
	int i, j;

	for (i = 1; i < mm->nspans; i++) {
		struct serve_span s = mm->spans[i];

		for (j = i; j > 0 && mm->spans[j - 1].start > s.start; j--)
			mm->spans[j] = mm->spans[j - 1];
		mm->spans[j] = s;
	}
}

static int span_insert(struct serve_mm *mm, struct serve_span s)
{
	if (spans_room(mm, 1))
		return -ENOMEM;
	mm->spans[mm->nspans++] = s;
	spans_sort(mm);
	return 0;
}

/* A span that addr is strictly inside becomes two, split there (room for
 * one more was made). */
static void span_split(struct serve_mm *mm, uint64_t addr)
{
	int i = span_find(mm, addr);
	struct serve_span s;

	if (i < 0 || mm->spans[i].start == addr)
		return;
	s = mm->spans[i];
	memmove(&mm->spans[i + 2], &mm->spans[i + 1],
		(mm->nspans - i - 1) * sizeof(mm->spans[0]));
	mm->spans[i].end = addr;
	mm->spans[i + 1] = (struct serve_span){ addr, s.end, s.region,
						s.page + (addr - s.start) / PAGE };
	mm->nspans++;
}

/* No span crosses lo or hi any more: 0 or -ENOMEM (then nothing changed). */
static int spans_split_at(struct serve_mm *mm, uint64_t lo, uint64_t hi)
{
	if (spans_room(mm, 2))
		return -ENOMEM;
	span_split(mm, lo);
	span_split(mm, hi);
	return 0;
}

/* Take [lo, hi) out of the spans: 0 or -ENOMEM (then nothing changed). */
static int spans_cut(struct serve_mm *mm, uint64_t lo, uint64_t hi)
{
	int i, n = 0;

	if (spans_split_at(mm, lo, hi))
		return -ENOMEM;
	for (i = 0; i < mm->nspans; i++)
		if (mm->spans[i].start < lo || mm->spans[i].start >= hi)
			mm->spans[n++] = mm->spans[i];
	mm->nspans = n;
	return 0;
}

/* Where page k of region r is mapped now (0: nowhere); *end: its span's end. */
static uint64_t span_addr(const struct serve_mm *mm, int r, uint64_t k, uint64_t *end)
{
	int i;

	for (i = 0; i < mm->nspans; i++) {
		const struct serve_span *s = &mm->spans[i];

		if (s->region == r && k >= s->page && k < s->page + (s->end - s->start) / PAGE) {
			*end = s->end;
			return s->start + (k - s->page) * PAGE;
		}
	}
	return 0;
}

static bool is_removed(const struct serve_mm *mm, int r, uint64_t k)
{
	return mm->removed[r].nbits && bitmap_test(&mm->removed[r], k);
}

/* ---- address spaces ----------------------------------------------------- */

static void mm_destroy(struct serve_mm *mm)
{
	int i;

	if (!mm)
		return;
	for (i = 0; i < mm->e->nregions; i++) {
		if (mm->removed)
			bitmap_free(&mm->removed[i]);
		if (mm->installed)
			bitmap_free(&mm->installed[i]);
	}
	if (!mm->root)
		pthread_mutex_destroy(&mm->lock);
	mm_free(mm->installed);
	mm_free(mm->removed);
	mm_free(mm->rdata);
	mm_free(mm->spans);
	mm_free(mm);
}

static struct bitmap *installed_of(const struct serve_mm *mm)
{
	return mm->root ? mm->e->installed : mm->installed;
}

/* Children's state is shared by the child's thread and the engine's. */
static void mm_lock(struct serve_mm *mm)
{
	if (!mm->root)
		pthread_mutex_lock(&mm->lock);
}

static void mm_unlock(struct serve_mm *mm)
{
	if (!mm->root)
		pthread_mutex_unlock(&mm->lock);
}

static bool mm_dead(const struct serve_mm *mm)
{
	return __atomic_load_n(&mm->dead, __ATOMIC_ACQUIRE);
}

static void mm_mark_dead(struct serve_mm *mm, int ret)
{
	if (ret == -ESRCH || ret == -ENOSPC || ret == -ENOMEM)
		__atomic_store_n(&mm->dead, 1, __ATOMIC_RELEASE);
}

/* Whether a child's process still has its address space (see NEVER_MAPPED). */
static bool mm_alive(struct serve_mm *mm)
{
	int ret;

	if (mm_dead(mm))
		return false;
	ret = uffd_unregister((struct uffd *)mm->u, NEVER_MAPPED, PAGE);
	if (ret == -ENOMEM || ret == -ESRCH || ret == -ENOSPC) {
		__atomic_store_n(&mm->dead, 1, __ATOMIC_RELEASE);
		return false;
	}
	return true;
}

static struct serve_mm *mm_new(struct serve_engine *e, bool root)
{
	struct serve_mm *mm = mm_zalloc(sizeof(*mm));
	int i;

	if (!mm)
		return NULL;
	mm->e = e;
	mm->root = root;
	mm->own_u.fd = -1;
	mm->removed = mm_zalloc(e->nregions * sizeof(*mm->removed));
	mm->rdata = mm_zalloc(e->nregions * sizeof(*mm->rdata));
	if (!mm->removed || !mm->rdata) {
		mm_destroy(mm);
		return NULL;
	}
	for (i = 0; i < e->nregions; i++)
		mm->rdata[i] = (struct serve_rdata){ mm, i };
	pthread_mutex_lock(&e->mms_lock);
	mm->next = e->mms;
	e->mms = mm;
	pthread_mutex_unlock(&e->mms_lock);
	return mm;
}

static int bitmap_copy(struct bitmap *to, const struct bitmap *from)
{
	size_t i;

	if (!from->nbits)
		return 0;
	if (bitmap_resize(to, from->nbits))
		return -ENOMEM;
	for (i = 0; i < BITMAP_WORDS(from->nbits); i++)
		to->words[i] = __atomic_load_n(&from->words[i], __ATOMIC_RELAXED);
	return 0;
}

/*
 * A forked child's address space: the parent's spans, removed pages and
 * installed pages (the child has those: the kernel copies the parent's
 * page tables at the fork, and no copy into the parent can land while a
 * fork is in progress - the kernel answers EAGAIN until its event is
 * read).  The caller holds the parent's lock if the parent is a child.
 * *created: a new one (a FORK callback comes once per region).
 */
static struct serve_mm *mm_fork(struct serve_mm *parent, const struct uffd *child_u,
				uint32_t id, bool *created)
{
	struct serve_engine *e = parent->e;
	const struct bitmap *pinst = installed_of(parent);
	struct serve_mm *mm;
	int i;

	*created = false;
	if (child_u && parent->last_child && parent->last_child->u == child_u)
		return parent->last_child;
	mm = mm_zalloc(sizeof(*mm));
	if (!mm)
		return NULL;
	mm->e = e;
	mm->u = child_u;
	mm->own_u.fd = -1;
	pthread_mutex_init(&mm->lock, NULL);
	mm->removed = mm_zalloc(e->nregions * sizeof(*mm->removed));
	mm->installed = mm_zalloc(e->nregions * sizeof(*mm->installed));
	mm->rdata = mm_zalloc(e->nregions * sizeof(*mm->rdata));
	mm->spans = mm_zalloc((parent->nspans + 1) * sizeof(*mm->spans));
	if (!mm->removed || !mm->installed || !mm->rdata || !mm->spans)
		goto fail;
	memcpy(mm->spans, parent->spans, parent->nspans * sizeof(*mm->spans));
	mm->nspans = parent->nspans;
	mm->cap = parent->nspans + 1;
	for (i = 0; i < e->nregions; i++) {
		mm->rdata[i] = (struct serve_rdata){ mm, i };
		if (bitmap_copy(&mm->removed[i], &parent->removed[i]) ||
		    bitmap_resize(&mm->installed[i], e->regions[i].pages) ||
		    bitmap_copy(&mm->installed[i], &pinst[i]))
			goto fail;
	}
	/* A complete parent's child has every page its parent had. */
	mm->complete = !parent->root && parent->complete;
	/* Its messages are read where its parent's FORK was; a kept child's
	 * (no child_u: a server's note, or a FORK nobody served) by nobody
	 * until it gets a handler of its own (serve_engine_start_children()). */
	if (child_u)
		mm->reader = parent->h ? parent->h : parent->root ? e->h : parent->reader;
	mm->id = id ? id : __atomic_add_fetch(&e->next_mm_id, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&e->mms_lock);
	mm->next = e->mms;
	e->mms = mm;
	pthread_mutex_unlock(&e->mms_lock);
	parent->last_child = mm;
	*created = true;
	return mm;
fail:
	mm_destroy(mm);
	return NULL;
}

static struct serve_mm *mm_by_id(struct serve_engine *e, uint32_t id)
{
	struct serve_mm *mm;

	pthread_mutex_lock(&e->mms_lock);
	for (mm = e->mms; mm && mm->id != id; mm = mm->next)
		;
	pthread_mutex_unlock(&e->mms_lock);
	return mm;
}

/* ---- reading pages ------------------------------------------------------ */

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static bool has_poison(const struct serve_engine *e)
{
	return e->u.features & UFFD_F(UFFD_FEAT_POISON);
}

/* The source page at off: 1 data in buf, 0 zero, -errno.  Pages of the
 * working set come from its file (read ahead), the rest from the source. */
static int read_source_page(struct serve_engine *e, uint64_t off, void *buf)
{
	const struct serve_wset *ws = e->o.ws;
	uint64_t slot;

	if (!e->o.src)
		return -EIO;
	if (ws && (slot = ws->slot[off / PAGE]) &&
	    !serve_wset_read(ws, slot - 1, 1, buf) && serve_wset_page_ok(ws, slot - 1, buf))
		return 1;
	return serve_source_read(e->o.src, off, buf);
}

/* The source page at off in the shared cache: 1 it is there (put now
 * from the source, or before), 0 it is zero (not put: zero pages are
 * UFFDIO_ZEROPAGE'd), -errno. */
static int cache_page(struct serve_engine *e, uint64_t off, void *buf)
{
	int ret;

	if (serve_cache_has(e->o.cache, off / PAGE))
		return 1;
	ret = read_source_page(e, off, buf);
	if (ret == 1)
		serve_cache_put(e->o.cache, off / PAGE, buf);
	return ret;
}

/* Put n pages at addr: from data (UFFDIO_COPY), or from the shared cache
 * where they are already (UFFDIO_CONTINUE). */
static int put_pages(struct serve_engine *e, const struct uffd *u, uint64_t addr,
		     const void *data, uint64_t n, unsigned flags, size_t *done)
{
	void *dst = (void *)(uintptr_t)addr;

	if (e->o.cache)
		return uffd_continue((struct uffd *)u, dst, n * PAGE, flags, done);
	return uffd_copy((struct uffd *)u, dst, data, n * PAGE, flags, done);
}

static void mark_dead(struct serve_engine *e, int ret)
{
	if (ret == -ESRCH || ret == -ENOSPC)
		__atomic_store_n(&e->dead, 1, __ATOMIC_RELEASE);
}

/* A page that could not be read, without POISON: end the client. */
static void unreadable(struct serve_engine *e)
{
	if (!e->fatal_called && e->o.fatal) {
		e->fatal_called = true;
		e->o.fatal(e->o.fatal_arg);
	}
}

static void record(struct serve_engine *e, uint64_t src_page)
{
	if (!e->o.record || bitmap_test(&e->rec_seen, src_page))
		return;
	if (e->nrec == e->rec_cap)
		return;			/* rec_cap is every page: cannot happen */
	bitmap_set_atomic(&e->rec_seen, src_page);
	e->rec[e->nrec++] = src_page;
}

/* ---- callbacks ---------------------------------------------------------- */

static void ws_burst(struct serve_engine *e, uint64_t off);

static int serve_missing(struct uffd_fault *f)
{
	struct serve_rdata *d = f->data;
	struct serve_mm *mm = d->mm;
	struct serve_engine *e = mm->e;
	uint64_t addr = (uintptr_t)f->addr, off, k;
	char buf[PAGE] __attribute__((aligned(64)));
	const struct serve_span *s;
	struct bitmap *inst = installed_of(mm);
	int i, r, ret;

	count(&e->counts.faults, 1);
	if (mm->root)
		__atomic_store_n(&e->last_fault_ns, mono_ns(), __ATOMIC_RELAXED);
	mm_lock(mm);
	i = span_find(mm, addr);
	if (i < 0) {
		/* The runtime knows this range and we do not: a bug, not a
		 * reason to serve anything. */
		mm_unlock(mm);
		count(&e->counts.errors, 1);
		return -EFAULT;
	}
	s = &mm->spans[i];
	r = s->region;
	k = s->page + (addr - s->start) / PAGE;
	off = e->regions[r].offset + k * PAGE;
	if (mm->root && !e->ws_done)
		ws_burst(e, off);
	if (is_removed(mm, r, k) || (!e->o.shared && bitmap_test(&inst[r], k))) {
		count(&e->counts.zero, 1);
		ret = uffd_fault_zero(f, PAGE);
		goto out;
	}
	ret = e->o.cache ? cache_page(e, off, buf) : read_source_page(e, off, buf);
	if (ret < 0) {
		mm_unlock(mm);
		count(&e->counts.errors, 1);
		if (!has_poison(e)) {
			unreadable(e);
			return UFFD_FAULT_DEFERRED;	/* the client is being ended */
		}
		return ret;	/* the runtime poisons it: SIGBUS */
	}
	if (ret == 0) {
		count(&e->counts.zero, 1);
		ret = uffd_fault_zero(f, PAGE);
	} else if (e->o.cache) {
		ret = uffd_fault_continue(f, PAGE);
	} else {
		ret = uffd_fault_copy(f, buf, PAGE);
	}
	if (mm->root)
		record(e, off / PAGE);
out:
	if (!ret)
		bitmap_set_atomic(&inst[r], k);
	if (mm->root)
		mark_dead(e, ret);
	else
		mm_mark_dead(mm, ret);
	mm_unlock(mm);
	return ret;
}

static void note(struct serve_mm *mm, uint32_t type, uint64_t a, uint64_t b, uint64_t c,
		 int fd)
{
	struct serve_event ev = { .type = type, .mm = mm->id, .a = a, .b = b, .c = c };
	struct serve_engine *e = mm->e;

	if (e->o.note)
		e->o.note(e->o.note_arg, &ev, fd);
}

/* REMOVE: the pages of [lo, hi) are zero from now on. */
static void mark_removed(struct serve_mm *mm, uint64_t lo, uint64_t hi)
{
	struct serve_engine *e = mm->e;
	int i;

	for (i = 0; i < mm->nspans; i++) {
		const struct serve_span *s = &mm->spans[i];
		uint64_t a = s->start > lo ? s->start : lo, b = s->end < hi ? s->end : hi;
		struct bitmap *bm = &mm->removed[s->region];

		if (a >= b)
			continue;
		if (!bm->nbits && bitmap_resize(bm, e->regions[s->region].pages))
			continue;	/* no memory: those pages keep their image */
		bitmap_set_range(bm, s->page + (a - s->start) / PAGE,
				 s->page + (b - s->start) / PAGE);
	}
}

/* A piece that was at [old, old + len) is now at [to, to + len). */
static void move_span(struct serve_mm *mm, uint64_t old, uint64_t to, uint64_t len)
{
	int i;

	/* Whatever was at the destination is gone. */
	spans_cut(mm, to, to + len);
	if (spans_split_at(mm, old, old + len))
		return;
	for (i = 0; i < mm->nspans; i++) {
		if (mm->spans[i].start < old || mm->spans[i].start >= old + len)
			continue;
		mm->spans[i].start = mm->spans[i].start - old + to;
		mm->spans[i].end = mm->spans[i].end - old + to;
	}
	spans_sort(mm);
}

static void serve_event(struct uffd_region *r, const struct uffd_event *ev)
{
	struct serve_rdata *d = uffd_region_data(r);
	struct serve_mm *mm = d->mm, *child;
	uint64_t start = (uintptr_t)uffd_region_addr(r), end = start + uffd_region_len(r);
	uint64_t lo, hi;
	bool created;

	switch (ev->type) {
	case UFFD_EV_FORK:
		/* r is the child's copy of one of our regions, made before
		 * the child's thread starts: it gets data of its own. */
		run_test_hook(mm->e, SERVE_HOOK_FORK, mm);
		mm_lock(mm);
		child = mm_fork(mm, uffd_region_uffd(r), 0, &created);
		mm_unlock(mm);
		if (!child)
			return;
		uffd_region_set_data(r, &child->rdata[d->index]);
		if (created)
			note(child, SERVE_EV_FORK, mm->id, 0, 0, child->u->fd);
		if (created && child->complete)
			note(child, SERVE_EV_DONE, 0, 0, 0, -1);
		return;
	case UFFD_EV_REMAP:
		/* Called once per piece, after the move: r is where it is now. */
		lo = start - (ev->remap.to - ev->remap.from);
		mm_lock(mm);
		move_span(mm, lo, start, end - start);
		mm_unlock(mm);
		note(mm, SERVE_EV_REMAP, lo, start, end - start, -1);
		return;
	case UFFD_EV_REMOVE:
	case UFFD_EV_UNMAP:
		lo = ev->range.start > start ? ev->range.start : start;
		hi = ev->range.end < end ? ev->range.end : end;
		if (lo >= hi)
			return;
		mm_lock(mm);
		if (ev->type == UFFD_EV_REMOVE)
			mark_removed(mm, lo, hi);
		else
			spans_cut(mm, lo, hi);
		mm_unlock(mm);
		note(mm, ev->type == UFFD_EV_REMOVE ? SERVE_EV_REMOVE : SERVE_EV_UNMAP, lo, hi, 0,
		     -1);
		return;
	default:
		return;
	}
}

/* A MINOR fault comes only from regions mapped from the shared cache:
 * the page is in that file (maybe a zero page the kernel filled a hole
 * with), not in the process - the same as a missing one to us. */
static const struct uffd_region_ops serve_ops = {
	.missing = serve_missing,
	.minor = serve_missing,
	.event = serve_event,
};

static unsigned reg_mode(const struct serve_engine *e)
{
	return UFFD_REG_MISSING | (e->o.shared ? UFFD_REG_MINOR : 0);
}

/* ---- setup ---------------------------------------------------------------- */

int serve_engine_init(struct serve_engine *e, const struct serve_mapping *m, int n,
		      const struct serve_engine_opts *o)
{
	int i, j;

	memset(e, 0, sizeof(*e));
	e->o = *o;
	e->u.fd = -1;
	e->nregions = n;
	e->fill_root = e->fill_children = o->fill;
	e->ws_done = !o->ws || !o->src;
	pthread_mutex_init(&e->mms_lock, NULL);
	e->regions = calloc(n, sizeof(*e->regions));
	e->by_offset = calloc(n, sizeof(*e->by_offset));
	e->installed = calloc(n, sizeof(*e->installed));
	e->buf = aligned_alloc(PAGE, WS_PIECE * PAGE);
	if (!e->regions || !e->by_offset || !e->installed || !e->buf)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		e->regions[i] = (struct serve_region){ m[i].addr, m[i].len, m[i].offset,
						       m[i].len / PAGE };
		if (bitmap_resize(&e->installed[i], e->regions[i].pages))
			return -ENOMEM;
		/* by_offset: insertion sort (a few regions, once) */
		for (j = i; j > 0 && m[e->by_offset[j - 1]].offset > m[i].offset; j--)
			e->by_offset[j] = e->by_offset[j - 1];
		e->by_offset[j] = i;
	}
	e->root = mm_new(e, true);
	if (!e->root)
		return -ENOMEM;
	e->root->u = &e->u;
	for (i = 0; i < n; i++) {
		struct serve_span s = { m[i].addr, m[i].addr + m[i].len, i, 0 };

		if (span_insert(e->root, s))
			return -ENOMEM;
	}
	if (o->record && o->src) {
		e->rec_cap = o->src->size / PAGE;
		e->rec = malloc(e->rec_cap * sizeof(*e->rec) + 1);
		if (!e->rec || bitmap_resize(&e->rec_seen, e->rec_cap))
			return -ENOMEM;
	}
	return 0;
}

int serve_engine_apply(struct serve_engine *e, const struct serve_event *ev, int fd)
{
	struct serve_mm *mm = mm_by_id(e, ev->type == SERVE_EV_FORK ? (uint32_t)ev->a : ev->mm);
	struct serve_mm *child;
	bool created;

	if (!mm || (ev->type == SERVE_EV_FORK && mm_by_id(e, ev->mm))) {
		if (fd >= 0)
			close(fd);
		e->inexact = true;
		return -ENOENT;
	}
	switch (ev->type) {
	case SERVE_EV_DONE:
		/* Complete: nothing is left to serve it with that fd. */
		if (!mm->root && mm->own_u.fd >= 0)
			uffd_close(&mm->own_u);
		mm->complete = true;
		mm->dead = 1;
		break;
	case SERVE_EV_REMAP:
		move_span(mm, ev->a, ev->b, ev->c);
		break;
	case SERVE_EV_REMOVE:
		mark_removed(mm, ev->a, ev->b);
		break;
	case SERVE_EV_UNMAP:
		spans_cut(mm, ev->a, ev->b);
		break;
	case SERVE_EV_FORK:
		/* Not started: no other thread looks at these. */
		child = mm_fork(mm, NULL, ev->mm, &created);
		if (!child) {
			if (fd >= 0)
				close(fd);
			e->inexact = true;
			return -ENOMEM;
		}
		/* The server's numbering (children of ours are numbered after
		 * it), and the fd it passed on. */
		if (ev->mm > __atomic_load_n(&e->next_mm_id, __ATOMIC_RELAXED))
			__atomic_store_n(&e->next_mm_id, ev->mm, __ATOMIC_RELAXED);
		child->u = &child->own_u;
		if (fd < 0 || uffd_adopt(&child->own_u, fd, 0)) {
			if (fd >= 0)
				close(fd);
			child->dead = 1;	/* nothing to serve it with */
		}
		break;
	}
	return 0;
}

int serve_engine_apply_unread(struct serve_engine *e, const struct uffd_event *ev)
{
	struct serve_event se = { .mm = e->root->id };

	switch (ev->type) {
	case UFFD_EV_FORK:
		se = (struct serve_event){ .type = SERVE_EV_FORK, .a = e->root->id,
					   .mm = __atomic_add_fetch(&e->next_mm_id, 1,
								    __ATOMIC_RELAXED) };
		return serve_engine_apply(e, &se, ev->fork.fd);
	case UFFD_EV_REMAP:
		se.type = SERVE_EV_REMAP;
		se.a = ev->remap.from;
		se.b = ev->remap.to;
		se.c = ev->remap.len;
		break;
	case UFFD_EV_REMOVE:
	case UFFD_EV_UNMAP:
		se.type = ev->type == UFFD_EV_REMOVE ? SERVE_EV_REMOVE : SERVE_EV_UNMAP;
		se.a = ev->range.start;
		se.b = ev->range.end;
		break;
	default:
		return 0;	/* a fault: raised again by the start's wake */
	}
	return serve_engine_apply(e, &se, -1);
}

void serve_engine_set_inexact(struct serve_engine *e)
{
	e->inexact = true;
}

bool serve_engine_inexact(const struct serve_engine *e)
{
	return e->inexact;
}

void serve_engine_drop_children(struct serve_engine *e, bool all)
{
	struct serve_mm *mm;

	for (mm = e->mms; mm; mm = mm->next) {
		if (mm->root || mm->own_u.fd < 0 || mm->h || (!all && mm_alive(mm)))
			continue;
		uffd_close(&mm->own_u);
		mm->own_u.fd = -1;
		mm->dead = 1;
	}
}

int serve_engine_children(const struct serve_engine *e)
{
	const struct serve_mm *mm;
	int n = 0;

	for (mm = e->mms; mm; mm = mm->next)
		n += !mm->root && mm->own_u.fd >= 0;
	return n;
}

void serve_engine_root_gone(struct serve_engine *e)
{
	__atomic_store_n(&e->dead, 1, __ATOMIC_RELEASE);
}

void serve_engine_finish(struct serve_engine *e, bool root)
{
	e->fill_children = true;
	if (root)
		e->fill_root = true;
	e->finishing = true;
}

/*
 * Kept children get a handler each: a thread that serves their faults
 * and follows their events (and their own children's), as the runtime
 * does for a child of a served process.  A child that cannot be served
 * (no memory for a thread) keeps its fd: its faults wait, never zeros.
 * The list is read from its head as it is now: children forked from here
 * on are put before it, and are the runtime's, not kept.
 */
void serve_engine_start_children(struct serve_engine *e, bool wake_all)
{
	UFFD_OPTS(uffd_handler_opts, ho, .threads = 1);
	struct serve_mm *mm, *first;
	int i;

	pthread_mutex_lock(&e->mms_lock);
	first = e->mms;
	pthread_mutex_unlock(&e->mms_lock);
	for (mm = first; mm; mm = mm->next) {
		if (mm->root || mm->own_u.fd < 0 || mm->h || !mm_alive(mm))
			continue;
		mm->own_u.features = e->u.features;	/* a child's are its parent's */
		mm->h = uffd_handler_new(&mm->own_u, &ho);
		if (!mm->h)
			continue;
		for (i = 0; i < mm->nspans; i++) {
			const struct serve_span *s = &mm->spans[i];

			uffd_handler_add(mm->h, (void *)(uintptr_t)s->start, s->end - s->start, 0,
					 reg_mode(e), &serve_ops, &mm->rdata[s->region]);
		}
		mm->reader = mm->h;
		if (uffd_handler_start(mm->h))
			continue;
		for (i = 0; wake_all && i < mm->nspans; i++)
			uffd_wake(&mm->own_u, (void *)(uintptr_t)mm->spans[i].start,
				  mm->spans[i].end - mm->spans[i].start);
	}
}

int serve_engine_prepare(struct serve_engine *e, const struct uffd *u)
{
	UFFD_OPTS(uffd_handler_opts, ho, .threads = 1, .wait = UFFD_WAIT_EPOLL);

	e->u = *u;
	e->h = uffd_handler_new(&e->u, &ho);
	if (!e->h)
		return -errno;
	/* No region yet: nothing is registered, and nothing read until the
	 * first uffd_handler_dispatch(). */
	return uffd_handler_start(e->h);
}

int serve_engine_start_root(struct serve_engine *e, bool wake_all, int *bad)
{
	int i;

	if (bad)
		*bad = -1;
	for (i = 0; i < e->root->nspans; i++) {
		const struct serve_span *s = &e->root->spans[i];

		if (!uffd_handler_add(e->h, (void *)(uintptr_t)s->start, s->end - s->start, 0,
				      reg_mode(e), &serve_ops, &e->root->rdata[s->region])) {
			if (bad)
				*bad = s->region;
			return -errno;
		}
	}
	e->started = true;
	if (!e->ws_done && e->o.ws_active) {
		__atomic_fetch_add(e->o.ws_active, 1, __ATOMIC_ACQ_REL);
		e->ws_counted = true;
	}
	for (i = 0; wake_all && i < e->root->nspans; i++)
		uffd_wake(&e->u, (void *)(uintptr_t)e->root->spans[i].start,
			  e->root->spans[i].end - e->root->spans[i].start);
	e->last_activity_ns = mono_ns();
	run_test_hook(e, SERVE_HOOK_STARTED, e->root);
	return 0;
}

int serve_engine_start(struct serve_engine *e, const struct uffd *u, bool wake_all, int *bad)
{
	int ret;

	if (bad)
		*bad = -1;
	ret = serve_engine_prepare(e, u);
	if (!ret)
		ret = serve_engine_start_root(e, wake_all, bad);
	if (!ret)
		serve_engine_start_children(e, wake_all);
	return ret;
}

int serve_engine_dispatch(struct serve_engine *e)
{
	int n = uffd_handler_dispatch(e->h);

	if (n > 0)
		e->last_activity_ns = mono_ns();
	return n;
}

/* ---- background work ---------------------------------------------------- */

static bool fault_queued(const struct serve_engine *e)
{
	struct pollfd p = { .fd = e->u.fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/*
 * Put the source page at off, whose data is page, everywhere the root maps
 * it (a region that is neither removed nor already filled there).  0, or
 * the first -EAGAIN/-ESRCH/-ENOSPC.
 */
static int install_ws_page(struct serve_engine *e, uint64_t off, const void *page)
{
	int j;

	for (j = 0; j < e->nregions; j++) {
		const struct serve_region *reg = &e->regions[e->by_offset[j]];
		int r = e->by_offset[j];
		uint64_t k, addr, end;
		int ret;

		if (reg->offset > off)
			break;
		if (off >= reg->offset + reg->len)
			continue;
		k = (off - reg->offset) / PAGE;
		if (bitmap_test(&e->installed[r], k) || is_removed(e->root, r, k))
			continue;
		addr = span_addr(e->root, r, k, &end);
		if (!addr)
			continue;
		ret = put_pages(e, &e->u, addr, page, 1, UFFD_DONTWAKE, NULL);
		if (ret == 0) {
			count(&e->counts.prefetched, 1);
			bitmap_set_atomic(&e->installed[r], k);
		} else if (ret == -EEXIST) {
			bitmap_set_atomic(&e->installed[r], k);
		} else if (ret == -EAGAIN || ret == -ESRCH || ret == -ENOSPC) {
			return ret;
		}
		/* -ENOENT: gone meanwhile; anything else: left to demand */
	}
	return 0;
}

/*
 * Where the root maps the source page at off: 1 when exactly one region
 * holds it and the page there is neither filled nor removed (*r, *k, *addr
 * and its span's *end set), 0 when there is nothing to do, 2 when several
 * regions hold it (install_ws_page() takes care of those).
 */
static int ws_target(struct serve_engine *e, uint64_t off, int *r, uint64_t *k, uint64_t *addr,
		     uint64_t *end)
{
	int j, found = 0;

	for (j = 0; j < e->nregions; j++) {
		const struct serve_region *reg = &e->regions[e->by_offset[j]];

		if (reg->offset > off)
			break;
		if (off >= reg->offset + reg->len)
			continue;
		if (found++)
			return 2;
		*r = e->by_offset[j];
		*k = (off - reg->offset) / PAGE;
	}
	if (!found || bitmap_test(&e->installed[*r], *k) || is_removed(e->root, *r, *k))
		return 0;
	*addr = span_addr(e->root, *r, *k, end);
	return *addr ? 1 : 0;
}

static void wake_root(struct serve_engine *e)
{
	int i;

	for (i = 0; i < e->root->nspans; i++)
		uffd_wake(&e->u, (void *)(uintptr_t)e->root->spans[i].start,
			  e->root->spans[i].end - e->root->spans[i].start);
}

/* The working set is in (or went bad): one wake for every waiter. */
static void ws_finish(struct serve_engine *e)
{
	if (e->ws_done)
		return;
	wake_root(e);
	e->ws_done = true;
	if (e->ws_counted) {
		__atomic_fetch_sub(e->o.ws_active, 1, __ATOMIC_RELEASE);
		e->ws_counted = false;
	}
}

/* Keep the kernel reading the working set's file ADVISE_AHEAD to twice
 * that ahead of entry `first`. */
static void ws_advise(struct serve_engine *e, uint64_t first)
{
	const struct serve_wset *ws = e->o.ws;
	uint64_t at = ws->data_offset + first * PAGE, end = ws->data_offset + ws->count * PAGE;

	if (e->advised < end && e->advised < at + ADVISE_AHEAD) {
		uint64_t from = e->advised > at ? e->advised : at;
		uint64_t to = from + ADVISE_AHEAD < end ? from + ADVISE_AHEAD : end;

		posix_fadvise(ws->fd, from, to - from, POSIX_FADV_WILLNEED);
		e->advised = to;
	}
}

/*
 * With the shared cache: the aligned piece holding entry ws_next is in the
 * cache (its good pages; a bad or unreadable one is left to demand), read
 * by this engine if it is the first to want it.  0, or 1 when another
 * engine is reading it (check again later).
 */
static int ws_load_piece_shared(struct serve_engine *e)
{
	const struct serve_wset *ws = e->o.ws;
	struct serve_cache *c = e->o.cache;
	uint64_t j = e->ws_next / WS_PIECE, first = j * WS_PIECE, n, i;

	n = ws->count - first < WS_PIECE ? ws->count - first : WS_PIECE;
	if (!serve_cache_is_loaded(c, j)) {
		if (!serve_cache_claim(c, j))
			return serve_cache_is_loaded(c, j) ? 0 : 1;
		ws_advise(e, first);
		if (!serve_wset_read(ws, first, n, e->buf))
			for (i = 0; i < n; i++)
				if (!serve_cache_has(c, ws->pages[first + i]) &&
				    serve_wset_page_ok(ws, first + i, e->buf + i * PAGE))
					serve_cache_put(c, ws->pages[first + i], e->buf + i * PAGE);
		serve_cache_loaded(c, j);
	}
	e->piece_first = first;
	e->piece_n = n;
	return 0;
}

/* The piece holding entry ws_next in buf (or, with the shared cache, in
 * the cache): 0, 1 (shared: another engine is reading it), or -EIO (the
 * set went bad: finished, demand serves the rest). */
static int ws_load_piece(struct serve_engine *e)
{
	const struct serve_wset *ws = e->o.ws;
	uint64_t n;

	if (e->ws_next < e->piece_first + e->piece_n)
		return 0;
	if (e->o.cache)
		return ws_load_piece_shared(e);
	n = ws->count - e->ws_next < WS_PIECE ? ws->count - e->ws_next : WS_PIECE;
	ws_advise(e, e->ws_next);
	if (serve_wset_read(ws, e->ws_next, n, e->buf)) {
		ws_finish(e);
		return -EIO;
	}
	e->piece_first = e->ws_next;
	e->piece_n = n;
	return 0;
}

/* Working-set entry i (of the piece loaded) can go in: its page is good
 * (or, shared, in the cache). */
static bool ws_entry_ok(const struct serve_engine *e, uint64_t i)
{
	const struct serve_wset *ws = e->o.ws;

	if (e->o.cache)
		return serve_cache_has(e->o.cache, ws->pages[i]);
	return serve_wset_page_ok(ws, i, e->buf + (i - e->piece_first) * PAGE);
}

/*
 * Install working-set entries from ws_next up to end (exclusive).
 * Consecutive entries that are consecutive pages of one span go in one
 * UFFDIO_COPY with DONTWAKE, straight from the piece buffer, where they
 * are consecutive too (with the shared cache: one UFFDIO_CONTINUE).
 * check: stop when a fault is queued (looked at every PREFETCH_CHECK
 * pages).  0, 1 (shared: another engine is reading the next piece into
 * the cache; with check, stopped to wait for it), -EAGAIN (events are
 * pending: stopped), or -ESRCH/-ENOSPC (the process is gone).
 */
static int ws_install(struct serve_engine *e, uint64_t end, bool check)
{
	const struct serve_wset *ws = e->o.ws;
	uint64_t since_check = 0;

	while (!e->ws_done && e->ws_next < end) {
		uint64_t i = e->ws_next, off, k, addr, span_end, n;
		const uint8_t *page;
		size_t done = 0;
		int r, ret;

		if (i >= ws->count) {
			ws_finish(e);
			break;
		}
		ret = ws_load_piece(e);
		if (ret == 1)
			return check ? 1 : 0;	/* a fault does not wait for it */
		if (ret)
			break;
		if (check && since_check >= PREFETCH_CHECK) {
			if (fault_queued(e))
				return 0;
			since_check = 0;
		}
		/* (unused with the shared cache: pages come from there) */
		page = e->buf + (i - e->piece_first) * PAGE;
		off = ws->pages[i] * PAGE;
		if (!ws_entry_ok(e, i)) {
			e->ws_next++;		/* left to the source */
			continue;
		}
		ret = ws_target(e, off, &r, &k, &addr, &span_end);
		if (ret != 1) {
			ret = ret ? install_ws_page(e, off, page) : 0;
			if (ret) {
				mark_dead(e, ret);
				return ret;
			}
			e->ws_next++;
			since_check++;
			continue;
		}
		for (n = 1; i + n < end && i + n < e->piece_first + e->piece_n && n < WS_PIECE; n++) {
			if (ws->pages[i + n] != ws->pages[i] + n || addr + n * PAGE >= span_end ||
			    k + n >= e->regions[r].pages || bitmap_test(&e->installed[r], k + n) ||
			    is_removed(e->root, r, k + n) || !ws_entry_ok(e, i + n))
				break;
		}
		ret = put_pages(e, &e->u, addr, page, n, UFFD_DONTWAKE, &done);
		done /= PAGE;
		bitmap_set_range(&e->installed[r], k, k + done);
		count(&e->counts.prefetched, done);
		since_check += n;
		switch (ret) {
		case 0:
			e->ws_next += n;
			break;
		case -EEXIST:
			bitmap_set_atomic(&e->installed[r], k + done);
			e->ws_next += done + 1;
			break;
		case -EAGAIN:
			e->ws_next += done;
			return -EAGAIN;
		case -ESRCH:
		case -ENOSPC:
			mark_dead(e, ret);
			return ret;
		default:		/* -ENOENT (gone), or left to demand */
			e->ws_next += done + 1;
			break;
		}
	}
	if (!e->ws_done && e->ws_next >= ws->count)
		ws_finish(e);
	return 0;
}

/* 0, 1 (waiting for another engine's piece: yield), or -ESRCH/-ENOSPC. */
static int prefetch_slice(struct serve_engine *e)
{
	int ret = ws_install(e, e->ws_next + PREFETCH_SLICE, true);

	return ret == -EAGAIN ? 0 : ret;
}

/*
 * A fault on a page of the working set the prefetch has not reached: the
 * program is there already.  Install the set up to BURST pages past it
 * before answering - the faulting thread waits one copy batch longer, and
 * then finds that many pages in instead of faulting on each.
 */
static void ws_burst(struct serve_engine *e, uint64_t off)
{
	uint32_t slot = e->o.ws->slot[off / PAGE];

	if (!slot || slot - 1 < e->ws_next || slot - 1 >= e->ws_next + BURST_REACH)
		return;
	ws_install(e, slot - 1 + BURST, false);
}

/*
 * Fill pages of region r from k in address space mm (the root, or a child
 * under its lock): one run of pages of one kind that are mapped
 * contiguously and neither filled nor removed.  The cursor is mm's.
 * 0, -EAGAIN (events pending: later), -ESRCH/-ENOSPC (the process is gone).
 */
static int fill_run(struct serve_engine *e, struct serve_mm *mm, int r, uint64_t k, int budget)
{
	const struct serve_region *reg = &e->regions[r];
	struct bitmap *inst = installed_of(mm);
	struct uffd *u = (struct uffd *)mm->u;
	uint64_t end, addr = span_addr(mm, r, k, &end), m = 0;
	int kind = -1, ret = 0;
	size_t done = 0;

	if (!addr) {
		mm->fill_page = k + 1;	/* unmapped: nothing to fill */
		return 0;
	}
	while ((int)m < budget && k + m < reg->pages && addr + m * PAGE < end &&
	       !bitmap_test(&inst[r], k + m) && !is_removed(mm, r, k + m)) {
		uint64_t off = reg->offset + (k + m) * PAGE;

		ret = e->o.cache ? cache_page(e, off, e->buf + m * PAGE) :
				   read_source_page(e, off, e->buf + m * PAGE);
		if (ret < 0)
			break;
		if (kind >= 0 && ret != kind)
			break;
		kind = ret;
		m++;
	}
	if (m == 0) {
		if (ret < 0) {
			/* Unreadable: SIGBUS on access if we can, else end it
			 * (a child's page stays missing: served on demand). */
			count(&e->counts.errors, 1);
			if (has_poison(e))
				uffd_poison(u, (void *)(uintptr_t)addr, PAGE, 0, NULL);
			else if (mm->root)
				unreadable(e);
			else
				mm->fill_incomplete = true;
		}
		mm->fill_page = k + 1;
		return 0;
	}
	ret = kind ? put_pages(e, u, addr, e->buf, m, 0, &done) :
		     uffd_zeropage(u, (void *)(uintptr_t)addr, m * PAGE, 0, &done);
	done /= PAGE;
	bitmap_set_range(&inst[r], k, k + done);
	count(&e->counts.filled, done);
	if (!kind)
		count(&e->counts.zero, done);
	switch (ret) {
	case 0:
		mm->fill_page = k + m;
		return 0;
	case -EEXIST:
		bitmap_set_atomic(&inst[r], k + done);
		/* fall through */
	case -ENOENT:
		mm->fill_page = k + done + 1;
		return 0;
	case -EAGAIN:
		mm->fill_page = k + done;
		return -EAGAIN;
	case -ESRCH:
	case -ENOSPC:
		return ret;
	default:
		/* Not filled, and never to be taken for filled: the regions
		 * stay registered and a touch of it is served on demand. */
		count(&e->counts.errors, 1);
		mm->fill_incomplete = true;
		mm->fill_page = k + done + 1;
		return 0;
	}
}

/* A slice of mm's fill: 1 when it reached the end, 0 not yet, or
 * fill_run()'s -EAGAIN, -ESRCH, -ENOSPC.  check: stop for queued faults
 * of the root (a child's are served by its own thread meanwhile). */
static int fill_slice(struct serve_engine *e, struct serve_mm *mm, bool check)
{
	struct bitmap *inst = installed_of(mm);
	int budget = FILL_SLICE, skips = SKIP_SLICE;

	while (budget > 0 && skips > 0) {
		int r = mm->fill_region, ret;
		uint64_t k = mm->fill_page, before;

		if (r >= e->nregions)
			return 1;
		if (k >= e->regions[r].pages) {
			mm->fill_region++;
			mm->fill_page = 0;
			continue;
		}
		if (bitmap_test(&inst[r], k) || is_removed(mm, r, k)) {
			mm->fill_page++;
			skips--;
			continue;
		}
		/* A fault waits for at most one run. */
		if (check && budget < FILL_SLICE && fault_queued(e))
			return 0;
		before = mm->fill_page;
		ret = fill_run(e, mm, r, k, budget < FILL_RUN ? budget : FILL_RUN);
		if (ret)
			return ret;
		budget -= mm->fill_page > before ? (int)(mm->fill_page - before) : 1;
	}
	return 0;
}

/* The first child that is alive and not complete (NULL: none). */
static struct serve_mm *child_pending(struct serve_engine *e)
{
	struct serve_mm *mm;

	pthread_mutex_lock(&e->mms_lock);
	for (mm = e->mms; mm; mm = mm->next)
		if (!mm->root && !mm->complete && !mm_dead(mm) && mm->u && mm->u->fd >= 0)
			break;
	pthread_mutex_unlock(&e->mms_lock);
	return mm;
}

/*
 * A slice of the first pending child's fill, under its lock: ENGINE_BUSY,
 * ENGINE_YIELD (its events are pending: its thread reads them), or 0 when
 * no child is left to fill.  A child whose fill went through with a page
 * it could not put in is filled again from the start, for as long as it
 * lives: such a page is served on demand, and the child never let go.
 *
 * The child's messages are read by another thread, and the kernel lets an
 * madvise(DONTNEED) zap as soon as its REMOVE is read - before the event
 * callback has marked the pages removed: a copy landing in between would
 * give a removed page the image's contents.  So the slice also holds the
 * reading of the child's messages off (and waits for a reader that has
 * not listed the child yet).
 */
static int fill_children(struct serve_engine *e)
{
	struct serve_mm *mm = child_pending(e);
	pthread_mutex_t *reading = NULL;
	int ret;

	if (!mm)
		return 0;
	if (mm->reader) {
		reading = uffd__handler_events_lock_of(mm->reader, mm->u);
		if (!reading)
			return ENGINE_YIELD;
		pthread_mutex_lock(reading);
	}
	mm_lock(mm);
	ret = fill_slice(e, mm, false);
	if (ret == 1) {
		if (mm->fill_incomplete) {
			mm->fill_incomplete = false;
			mm->fill_region = 0;
			mm->fill_page = 0;
			ret = mm_alive(mm) ? ENGINE_YIELD : ENGINE_BUSY;
		} else {
			mm->complete = true;
			note(mm, SERVE_EV_DONE, 0, 0, 0, -1);
			ret = ENGINE_BUSY;
		}
	} else if (ret == -ESRCH || ret == -ENOSPC) {
		mm_mark_dead(mm, ret);
		ret = ENGINE_BUSY;
	} else {
		ret = ret == -EAGAIN ? ENGINE_YIELD : ENGINE_BUSY;
	}
	mm_unlock(mm);
	if (reading)
		pthread_mutex_unlock(reading);
	return ret;
}

/* Children that are alive and not complete, without filling them. */
static bool children_pending(struct serve_engine *e)
{
	struct serve_mm *mm;
	bool any = false;

	pthread_mutex_lock(&e->mms_lock);
	for (mm = e->mms; mm && !any; mm = mm->next)
		any = !mm->root && !mm->complete && mm->u && mm->u->fd >= 0 && mm_alive(mm);
	pthread_mutex_unlock(&e->mms_lock);
	return any;
}

/* Every page is in: the kernel's own zero-fill is right from now on. */
static void finish(struct serve_engine *e)
{
	int i;

	for (i = 0; i < e->root->nspans; i++)
		uffd_unregister(&e->u, (void *)(uintptr_t)e->root->spans[i].start,
				e->root->spans[i].end - e->root->spans[i].start);
	e->done = true;
}

int serve_engine_step(struct serve_engine *e)
{
	bool root_dead;
	int n, ret;

	if (e->done)
		return ENGINE_DONE;
	n = uffd_handler_dispatch(e->h);
	root_dead = __atomic_load_n(&e->dead, __ATOMIC_ACQUIRE);
	if (e->fatal_called)
		return -EIO;
	if (n < 0 && !root_dead)
		return n;
	if (n > 0) {
		e->last_activity_ns = mono_ns();
		return ENGINE_BUSY;
	}
	if (root_dead) {
		/* Its children have nobody else: finish them, then end. */
		if (!e->fill_children && children_pending(e))
			serve_engine_finish(e, false);
		ret = e->fill_children ? fill_children(e) : 0;
		return ret ? ret : -ESRCH;
	}
	if (!e->ws_done) {
		ret = prefetch_slice(e);
		if (ret == 1)
			return ENGINE_YIELD;
		return ret ? ret : ENGINE_BUSY;
	}
	/* Children first: a child cannot serve itself, the root can. */
	if (e->fill_children && (ret = fill_children(e)))
		return ret;
	if (e->fill_root && (e->o.src || has_poison(e)) && !e->fill_done) {
		if (!e->finishing && e->o.ws_active &&
		    __atomic_load_n(e->o.ws_active, __ATOMIC_ACQUIRE) > 0)
			return ENGINE_YIELD;
		/* Demand first: while the client faults, the fill waits. */
		if (!e->finishing && mono_ns() - __atomic_load_n(&e->last_fault_ns, __ATOMIC_RELAXED) <
					     FILL_BACKOFF_NS)
			return ENGINE_YIELD;
		ret = fill_slice(e, e->root, true);
		if (ret == 1)
			e->fill_done = true;
		else if (ret == -EAGAIN)
			ret = 0;
		if (ret < 0) {
			mark_dead(e, ret);
			return ret;
		}
		return ENGINE_BUSY;
	}
	if (e->fill_root && e->fill_done && !e->root->fill_incomplete) {
		finish(e);
		return ENGINE_DONE;
	}
	/* A stop cannot leave a page out: try those again. */
	if (e->finishing && e->fill_root && e->fill_done) {
		e->root->fill_incomplete = false;
		e->root->fill_region = 0;
		e->root->fill_page = 0;
		e->fill_done = false;
		return ENGINE_YIELD;
	}
	/* Finishing the children only: done with them, the root is not ours. */
	if (e->finishing && !e->fill_root) {
		e->done = true;
		return ENGINE_DONE;
	}
	return ENGINE_IDLE;
}

static bool extra_ready(struct pollfd *extra, int nextra, int timeout_ms)
{
	return nextra > 0 && poll(extra, nextra, timeout_ms) > 0;
}

int serve_engine_run(struct serve_engine *e, struct pollfd *extra, int nextra)
{
	uint64_t spin_ns = (uint64_t)(e->o.spin_us ? e->o.spin_us : UFFD_DEFAULT_SPIN_US) * 1000;
	struct pollfd p[8];
	int i, ret;

	if (nextra > 7)
		return -EINVAL;
	for (;;) {
		ret = serve_engine_step(e);
		if (ret < 0 || ret == ENGINE_DONE)
			return ret;
		/* The caller's fds are looked at between any two steps. */
		if (extra_ready(extra, nextra, 0))
			return ENGINE_IDLE;
		if (ret == ENGINE_BUSY)
			continue;
		if ((ret == ENGINE_IDLE || ret == ENGINE_YIELD) &&
		    mono_ns() - e->last_activity_ns < spin_ns) {
			sched_yield();
			continue;
		}
		p[0] = (struct pollfd){ .fd = e->u.fd, .events = POLLIN };
		for (i = 0; i < nextra; i++)
			p[i + 1] = extra[i];
		if (poll(p, nextra + 1, ret == ENGINE_YIELD ? 1 : -1) < 0 &&
		    errno != EINTR)
			return -errno;
		for (i = 0; i < nextra; i++)
			extra[i].revents = p[i + 1].revents;
		if (extra_ready(extra, nextra, 0))
			return ENGINE_IDLE;
	}
}

void serve_engine_counts(const struct serve_engine *e, struct serve_engine_counts *c)
{
	c->faults = __atomic_load_n(&e->counts.faults, __ATOMIC_RELAXED);
	c->prefetched = __atomic_load_n(&e->counts.prefetched, __ATOMIC_RELAXED);
	c->filled = __atomic_load_n(&e->counts.filled, __ATOMIC_RELAXED);
	c->zero = __atomic_load_n(&e->counts.zero, __ATOMIC_RELAXED);
	c->errors = __atomic_load_n(&e->counts.errors, __ATOMIC_RELAXED);
}

void serve_engine_release(struct serve_engine *e)
{
	struct serve_mm *mm, *next;
	int fd = e->u.fd, i;

	/*
	 * The runtime unregisters its regions when it stops.  The client's
	 * memory is not ours to unregister: that would turn every page not
	 * yet in into a zero page of a process that still expects its data.
	 * An fd of -1 makes those calls fail harmlessly.
	 */
	e->u.fd = -1;
	uffd_handler_free(e->h);
	if (fd >= 0)
		close(fd);
	if (e->ws_counted)
		__atomic_fetch_sub(e->o.ws_active, 1, __ATOMIC_RELEASE);
	for (mm = e->mms; mm; mm = next) {
		next = mm->next;
		/* Kept children: their own handlers, then their fds. */
		uffd_handler_free(mm->h);
		if (mm->own_u.fd >= 0)
			uffd_close(&mm->own_u);
		mm_destroy(mm);
	}
	for (i = 0; e->installed && i < e->nregions; i++)
		bitmap_free(&e->installed[i]);
	free(e->installed);
	free(e->regions);
	free(e->by_offset);
	free(e->buf);
	free(e->rec);
	bitmap_free(&e->rec_seen);
	pthread_mutex_destroy(&e->mms_lock);
	memset(e, 0, sizeof(*e));
	e->u.fd = -1;
}
