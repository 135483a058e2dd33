/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pager's API: maps of a store served by MISSING faults, dirty pages
 * found by write-protect faults, and a two-list CLOCK that keeps the
 * resident pages within the buffer (see include/uffd/pager.h for the
 * user's view, pager_internal.h for a page's life and the other files).
 *
 * A pager is one userfaultfd, the runtime's fault-servicing threads
 * (fault.c), the read-ahead threads (readahead.c) and the evictors
 * (evict.c).  A map is anonymous memory registered with the runtime, plus
 * its shadow - the same length, private, where inactive pages wait - and a
 * byte or two of state per page.  Unmapping writes the dirty pages back and
 * then lets go of the map only once no thread works on it.
 *
 * In-thread mode (opts.in_thread) differs in the userfaultfd (SIGBUS
 * instead of messages), the runtime's mode (its one thread reads events;
 * the faulting threads serve their own faults, fault.c) and two
 * allocations made up front for the fault path: its read buffers
 * (bounce.c) and an inactive queue for the whole buffer (queue.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pager_internal.h"
#include "store_internal.h"
#include "util/failalloc.h"
#include "util/mmalloc.h"
#include "util/opts.h"

#define DEFAULT_BUFFER	(256UL << 20)
#define DEFAULT_RA	(2UL << 20)

static void fill_defaults(struct uffd_pager_opts *o)
{
	size_t base = uffd_page_size();

	if (!o->buffer_bytes)
		o->buffer_bytes = DEFAULT_BUFFER;
	if (!o->page_size)
		o->page_size = base;
	if (o->fillers <= 0)
		o->fillers = 1;
	if (o->evictors <= 0)
		o->evictors = 1;
	if (o->high_water <= 0 || o->high_water > 100)
		o->high_water = 90;
	if (o->low_water <= 0 || o->low_water >= o->high_water)
		o->low_water = o->high_water * 7 / 9;
	if (!o->read_ahead)
		o->read_ahead = DEFAULT_RA;
	if (o->max_fault_events <= 0)
		o->max_fault_events = 64;
}

struct uffd_pager *uffd_pager_new(const struct uffd_pager_opts *o)
{
	UFFD_OPTS(uffd_handler_opts, ho);
	struct uffd_pager_opts opts;
	struct uffd_pager *p;
	int i, ret;

	ret = uffd__load_opts(&opts, o, struct uffd_pager_opts, in_thread, arg);
	if (ret) {
		errno = -ret;
		return NULL;
	}
	p = fa_calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->o = opts;
	p->pidfd = p->mem_fd = p->pagemap_fd = -1;
	fill_defaults(&p->o);
	if (p->o.page_size % uffd_page_size() ||
	    p->o.buffer_bytes < p->o.page_size) {
		free(p);
		errno = EINVAL;
		return NULL;
	}
	p->min_evict = p->o.buffer_bytes / uffd_page_size() / 64;
	p->min_evict = p->min_evict > 16 ? 16 : p->min_evict ? p->min_evict : 1;
	p->high = p->o.buffer_bytes / 100 * p->o.high_water;
	p->low = p->o.buffer_bytes / 100 * p->o.low_water;
	ret = uffd_open(&p->u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
			(p->o.in_thread ? UFFD_F(UFFD_FEAT_SIGBUS) : 0),
			UFFD_F(UFFD_FEAT_POISON), UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY);
	if (ret) {
		free(p);
		errno = -ret;
		return NULL;
	}
	p->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	uffd__zapped_open(p);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->read_work, NULL);
	if ((ret = pthread_key_create(&p->bounce_key, uffd__bounce_free))) {
		errno = ret;
		goto fail;
	}
	p->bounce_key_made = true;
	if (uffd__queue_init(p))
		goto fail;
	if (p->o.in_thread && (ret = uffd__signal_bounces_new(p))) {
		errno = -ret;
		goto fail;
	}
	/* In-thread, the runtime's one thread only reads events. */
	ho.threads = p->o.in_thread ? 1 : p->o.fillers;
	ho.batch = p->o.max_fault_events;
	ho.in_thread = p->o.in_thread;
	p->h = uffd_handler_new(&p->u, &ho);
	if (!p->h)
		goto fail;
	if ((ret = uffd_handler_start(p->h))) {
		errno = -ret;
		goto fail;
	}
	p->threads = fa_calloc(p->o.evictors + READERS, sizeof(*p->threads));
	if (!p->threads)
		goto fail;
	for (i = 0; i < p->o.evictors + READERS; i++) {
		/* (A thread's stack is an allocation.) */
		ret = uffd__alloc_fails() ? EAGAIN :
		      pthread_create(&p->threads[i], NULL, i >= READERS ?
				     uffd__evictor_main : uffd__readahead_main, p);
		if (ret) {
			errno = ret;
			goto fail;
		}
		p->nthreads++;
	}
	return p;
fail:
	ret = errno;
	uffd_pager_free(p);
	errno = ret;
	return NULL;
}

/* Anonymous memory aligned to align (a power of two; else the base page). */
static void *map_aligned(size_t len, size_t align, int prot)
{
	size_t extra = (align & (align - 1)) ? 0 : align - uffd_page_size();
	char *a = fa_mmap(NULL, len + extra, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0), *start;

	if (a == MAP_FAILED || !extra)
		return a;
	start = (char *)(((uintptr_t)a + align - 1) & ~(uintptr_t)(align - 1));
	if (start > a)
		munmap(a, start - a);
	if (start + len < a + len + extra)
		munmap(start + len, a + len + extra - (start + len));
	return start;
}

static struct pmap *find_map(struct uffd_pager *p, const void *addr)
{
	struct pmap *m;

	for (m = p->maps; m; m = m->next)
		if ((const char *)addr >= m->addr && (const char *)addr < m->addr + m->len)
			return m;
	return NULL;
}

/*
 * A store owned by one of its maps is freed when that map goes: it may be
 * in no other map (of this pager: the others are not known here).  Lock
 * held.
 */
static bool owned_elsewhere(const struct uffd_pager *p, const struct uffd_store *s,
			    unsigned flags)
{
	const struct pmap *m;

	for (m = p->maps; m; m = m->next)
		if (m->store == s && ((m->flags | flags) & UFFD_PAGER_OWN_STORE))
			return true;
	return false;
}

/* Does [addr, addr+len) overlap a map of p?  Lock held. */
static bool overlaps_map(const struct uffd_pager *p, const char *addr, size_t len)
{
	const struct pmap *m;

	for (m = p->maps; m; m = m->next)
		if (addr < m->addr + m->len && m->addr < addr + len)
			return true;
	return false;
}

#define MAP_FLAGS (UFFD_PAGER_PRIVATE | UFFD_PAGER_OWN_STORE | UFFD_PAGER_FIXED)

/* Both ways in: with UFFD_PAGER_FIXED the map goes at addr. */
static void *pager_map(struct uffd_pager *p, struct uffd_store *s, uint64_t off,
		       size_t len, int prot, unsigned flags, size_t page_size, void *addr)
{
	/* Write-protect: a writable map's first writes; and a read-only
	 * map's pages are never protected, but asking to take the protection
	 * off tells whether they are still the map's (zapped.c). */
	unsigned modes = UFFD_REG_MISSING | UFFD_REG_WP;
	struct pmap *m;
	int64_t size;
	int err = EINVAL;

	if (p && !page_size)
		page_size = p->o.page_size;
	if (!p || !s || !s->ops || !s->ops->read || !len || page_size % uffd_page_size() ||
	    len % page_size || off % page_size ||
	    (prot & ~(PROT_READ | PROT_WRITE)) != 0 || !(prot & PROT_READ)) {
		errno = EINVAL;
		return NULL;
	}
	/* A fixed map: at an address of its page size, not over a map of
	 * this pager (whatever else is there is replaced, as mmap's
	 * MAP_FIXED replaces it). */
	if (flags & UFFD_PAGER_FIXED) {
		if (!addr || (uintptr_t)addr % page_size ||
		    (uintptr_t)addr > UINTPTR_MAX - len) {
			errno = EINVAL;
			return NULL;
		}
		pthread_mutex_lock(&p->lock);
		err = overlaps_map(p, addr, len) ? EEXIST : 0;
		pthread_mutex_unlock(&p->lock);
		if (err) {
			errno = err;
			return NULL;
		}
	}
	/* A store is addressed by off_t: no map reaches past 2^63 - 1 (so
	 * none wraps around 2^64 either). */
	if (off > INT64_MAX || len > INT64_MAX - off) {
		errno = EINVAL;
		return NULL;
	}
	if ((prot & PROT_WRITE) && !(flags & UFFD_PAGER_PRIVATE) && !s->ops->write) {
		errno = EACCES;
		return NULL;
	}
	/* In-thread faults read in a signal handler: not with hiredis. */
	if (p->o.in_thread && uffd__store_is_redis(s)) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	/* A map may run past the store's end, as mmap of a file may (its
	 * pages there raise SIGBUS), but it must start inside the store. */
	size = s->ops->size ? s->ops->size(s->data) : -1;
	if (size >= 0 && off >= (uint64_t)size) {
		errno = EINVAL;
		return NULL;
	}
	m = fa_calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	m->p = p;
	m->store = s;
	m->off = off;
	m->len = len;
	m->psize = page_size;
	m->npages = len / page_size;
	m->flags = flags;
	m->writable = prot & PROT_WRITE;
	m->store_size = size;
	m->addr = flags & UFFD_PAGER_FIXED ?
		  fa_mmap(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
			  -1, 0) :
		  map_aligned(len, page_size, prot);
	m->shadow = fa_mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	m->state = fa_mm_zalloc(m->npages);
	m->pflags = fa_mm_zalloc(m->npages);
	m->gen = fa_mm_zalloc(m->npages);
	m->dropped_seq = fa_mm_zalloc(m->npages * sizeof(*m->dropped_seq));
	err = ENOMEM;
	if (m->addr == MAP_FAILED || m->shadow == MAP_FAILED || !m->state || !m->pflags ||
	    !m->gen || !m->dropped_seq)
		goto fail;
	/* No THP: the buffer counts pages of the map's own size. */
	madvise(m->addr, len, MADV_NOHUGEPAGE);
	madvise(m->shadow, len, MADV_NOHUGEPAGE);
	m->region = uffd_handler_add(p->h, m->addr, len, 0, modes, &uffd__pager_ops, m);
	if (!m->region) {
		err = errno;
		goto fail;
	}
	pthread_mutex_lock(&p->lock);
	/* Checked as the map joins the list, so two maps made at once can
	 * not both own, or share an owned, store. */
	if (owned_elsewhere(p, s, flags)) {
		pthread_mutex_unlock(&p->lock);
		uffd_handler_remove(m->region);
		err = EBUSY;
		goto fail;
	}
	m->next = p->maps;
	p->maps = m;
	pthread_mutex_unlock(&p->lock);
	return m->addr;
fail:
	if (m->addr != MAP_FAILED && m->addr)
		munmap(m->addr, len);
	if (m->shadow != MAP_FAILED && m->shadow)
		munmap(m->shadow, len);
	mm_free(m->state);
	mm_free(m->pflags);
	mm_free(m->gen);
	mm_free(m->dropped_seq);
	free(m);
	errno = err;
	return NULL;
}

void *uffd_pager_map(struct uffd_pager *p, struct uffd_store *s, uint64_t off,
		     size_t len, int prot, unsigned flags, size_t page_size)
{
	if (flags & UFFD_PAGER_FIXED) {		/* (no address to put it at) */
		errno = EINVAL;
		return NULL;
	}
	return pager_map(p, s, off, len, prot, flags, page_size, NULL);
}

void *uffd_pager_map_ex(struct uffd_pager *p, struct uffd_store *s,
			const struct uffd_pager_map_opts *opts)
{
	struct uffd_pager_map_opts o;
	int ret = uffd__load_opts(&o, opts, struct uffd_pager_map_opts, addr, addr);

	if (ret || !opts || (o.flags & ~MAP_FLAGS)) {
		errno = ret ? -ret : EINVAL;
		return NULL;
	}
	return pager_map(p, s, o.off, o.len, o.prot, o.flags, o.page_size, o.addr);
}


/* The map holding [addr, addr+len) and its page range; len 0 = all. */
static struct pmap *lookup_range(struct uffd_pager *p, void *addr, size_t len,
				 size_t *idx, size_t *n)
{
	struct pmap *m;
	char *a = addr;

	pthread_mutex_lock(&p->lock);
	m = find_map(p, addr);
	pthread_mutex_unlock(&p->lock);
	if (!m)
		return NULL;
	if (!len) {
		a = m->addr;
		len = m->len;
	}
	if (a + len > m->addr + m->len || a + len < a)
		return NULL;
	*idx = page_index(m, a);
	*n = page_index(m, a + len - 1) - *idx + 1;
	return m;
}

int uffd_pager_flush(struct uffd_pager *p, void *addr, size_t len)
{
	size_t idx, n;
	struct pmap *m;
	int ret;

	if (!p || !(m = lookup_range(p, addr, len, &idx, &n)))
		return -EINVAL;
	ret = uffd__writeback_range(p, m, idx, n, false);
	if (!ret && m->store->ops->flush && !(m->flags & UFFD_PAGER_PRIVATE))
		ret = m->store->ops->flush(m->store->data);
	return ret;
}

int uffd_pager_evict(struct uffd_pager *p, void *addr, size_t len)
{
	size_t idx, n;
	struct pmap *m;

	if (!p || !len || !(m = lookup_range(p, addr, len, &idx, &n)))
		return -EINVAL;
	return uffd__writeback_range(p, m, idx, n, true);
}

int uffd_pager_unmap(struct uffd_pager *p, void *addr)
{
	struct pmap *m, **pp;
	int ret, r2;
	bool whole;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	m = find_map(p, addr);
	if (!m || m->addr != addr || m->dying) {
		pthread_mutex_unlock(&p->lock);
		return -EINVAL;
	}
	m->dying = true;
	/* Read-ahead and eviction see dying and let go of it. */
	while (m->users)
		pthread_cond_wait(&p->changed, &p->lock);
	pthread_mutex_unlock(&p->lock);
	ret = uffd__writeback_range(p, m, 0, m->npages, true);
	if (ret)
		m->error = ret;
	/* Part of it unmapped by the program, and maybe mapped again by
	 * someone: only what is still the map's goes (zapped.c). */
	whole = uffd__range_ours(p, m, 0, m->npages);
	if (!whole)
		uffd__unmap_ours(p, m);
	r2 = uffd_handler_remove(m->region);
	pthread_mutex_lock(&p->lock);
	/* No fault can reach the map now, but one that came during the
	 * write-back may have filled a page again: it goes with the map. */
	uffd__map_forget_pages(p, m);
	for (pp = &p->maps; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	if (p->hand_map == m) {
		p->hand_map = NULL;
		p->hand_idx = 0;
	}
	uffd__queue_forget(p, m);
	/* Pending shadow frees may be this map's: done before its address
	 * range can be reused by another mapping. */
	uffd__zap_flush(p, &p->shadow_zap);
	pthread_mutex_unlock(&p->lock);
	ret = m->error ? m->error : r2;
	if (!ret && m->store->ops->flush && !(m->flags & UFFD_PAGER_PRIVATE))
		ret = m->store->ops->flush(m->store->data);
	if (whole)
		munmap(m->addr, m->len);
	munmap(m->shadow, m->len);
	mm_free(m->state);
	mm_free(m->pflags);
	mm_free(m->gen);
	mm_free(m->dropped_seq);
	if (m->flags & UFFD_PAGER_OWN_STORE)
		uffd_store_free(m->store);
	free(m);
	return ret;
}

long uffd_pager_prefetch(struct uffd_pager *p, const struct uffd_pager_range *r,
			 int n, unsigned flags)
{
	long total = 0;
	int i;

	if (!p || n < 0 || (n && !r) || (flags & ~UFFD_PAGER_PIN))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		size_t idx, cnt, j;
		struct pmap *m = lookup_range(p, r[i].addr, r[i].len, &idx, &cnt);

		if (!m || !r[i].len)
			return -EINVAL;
		pthread_mutex_lock(&p->lock);
		for (j = idx; j < idx + cnt;) {
			size_t win = uffd__ra_pages(p, m), k;
			bool ours;
			int ret;

			uffd__wait_settled(p, m, j);
			if ((flags & UFFD_PAGER_PIN) && m->state[j] != P_EMPTY)
				uffd__page_pin(p, m, j);
			if (win > idx + cnt - j)
				win = idx + cnt - j;
			k = uffd__claim_empty(p, m, j, win);
			if (!k) {
				j++;
				continue;
			}
			for (size_t q = j; q < j + k && (flags & UFFD_PAGER_PIN); q++)
				uffd__page_pin(p, m, q);
			m->users++;
			pthread_mutex_unlock(&p->lock);
			/* Not into a range the program unmapped (zapped.c). */
			ours = uffd__range_ours(p, m, j, k);
			ret = ours ? uffd__fill_claimed(p, m, NULL, j, k, SIZE_MAX, false) : -ENOENT;
			pthread_mutex_lock(&p->lock);
			if (!ours)
				uffd__unclaim(p, m, j, k, P_EMPTY);
			uffd__map_unuse(p, m);
			if (ret) {
				pthread_mutex_unlock(&p->lock);
				return ret;
			}
			total += k;
			j += k;
		}
		pthread_mutex_unlock(&p->lock);
	}
	return total;
}

int uffd_pager_stats(struct uffd_pager *p, struct uffd_pager_stats *s)
{
	if (!p || !s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&p->lock);
	STAT_COPY(s, &p->st, faults);
	STAT_COPY(s, &p->st, wp_faults);
	STAT_COPY(s, &p->st, hits);
	STAT_COPY(s, &p->st, fills);
	STAT_COPY(s, &p->st, read_ahead);
	STAT_COPY(s, &p->st, evictions);
	STAT_COPY(s, &p->st, deactivations);
	STAT_COPY(s, &p->st, writebacks);
	STAT_COPY(s, &p->st, bytes_read);
	STAT_COPY(s, &p->st, bytes_written);
	STAT_COPY(s, &p->st, read_errors);
	STAT_COPY(s, &p->st, write_errors);
	s->resident_bytes = p->resident;
	s->resident_peak_bytes = p->resident_peak;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int uffd_pager_config(struct uffd_pager *p, struct uffd_pager_opts *o)
{
	size_t sz;

	if (!p || !o || o->sz < uffd__offsetofend(struct uffd_pager_opts, arg))
		return -EINVAL;
	/* An older caller's struct is shorter: fill only what it has. */
	sz = o->sz < sizeof(p->o) ? o->sz : sizeof(p->o);
	memcpy(o, &p->o, sz);
	o->sz = sz;
	return 0;
}

int uffd_pager_free(struct uffd_pager *p)
{
	int ret = 0, i;

	if (!p)
		return 0;
	while (p->maps) {
		int r = uffd_pager_unmap(p, p->maps->addr);

		if (r && !ret)
			ret = r;
	}
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_cond_broadcast(&p->read_work);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	if (p->h)
		uffd_handler_free(p->h);
	uffd_close(&p->u);
	if (p->pidfd >= 0)
		close(p->pidfd);
	uffd__zapped_close(p);
	if (p->bounce_key_made) {
		void *b = pthread_getspecific(p->bounce_key);

		if (b)
			uffd__bounce_free(b);
		pthread_key_delete(p->bounce_key);
	}
	uffd__signal_bounces_free(p);
	pthread_cond_destroy(&p->changed);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->read_work);
	pthread_mutex_destroy(&p->lock);
	free(p->q);
	free(p);
	return ret;
}
