/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LLNL umap's C API over the libuffd pager, so an umap program relinks
 * against libumap.so unchanged.
 *
 * umap has one engine per process, configured once from the environment;
 * so does this: the configuration is read at the first call into the API
 * (as umap reads it when its region manager is first used) and one pager
 * is created from it at the first umap() and kept for the life of the
 * process.  Each umap() maps the caller's fd as a pager store; a small
 * table of live maps, under one mutex, is what lets uunmap(addr) and
 * umap_flush() find them.  The table only names maps: the pager does the
 * work, and slow calls (write-back at unmap) run outside the mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>
#include <umap/umap.h>

/* umap's defaults (its RegionManager), used where a variable is unset. */
#define UMAP_DEFAULT_MAX_FAULT_EVENTS	256
#define UMAP_DEFAULT_HIGH_WATER		90	/* percent of the buffer */
#define UMAP_DEFAULT_LOW_WATER		70
#define UMAP_DEFAULT_READ_AHEAD		0	/* pages */
#define UMAP_DEFAULT_BUFFER_PERCENT	90	/* of MemFree */
/* Only when /proc/meminfo can not be read: the pager's own default. */
#define UMAP_FALLBACK_BUFFER_BYTES	(256UL << 20)

/* Ranges handed to the pager per call by umap_prefetch(). */
#define PREFETCH_BATCH			64

struct umap_config {
	long system_page_size;
	uint64_t page_size;		/* bytes */
	uint64_t max_fault_events;
	uint64_t fillers;
	uint64_t evictors;
	uint64_t buffer_pages;		/* umap pages */
	uint64_t read_ahead;		/* umap pages */
	int low_water;			/* percent */
	int high_water;
};

struct live_map {
	void *addr;
	size_t len;
	unsigned flags;			/* UFFD_PAGER_* it was mapped with */
};

static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static struct umap_config config;

static pthread_mutex_t umap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uffd_pager *pager;	/* under umap_lock; never freed */
static struct live_map *maps;		/* under umap_lock */
static size_t nr_maps, maps_cap;

/*
 * A positive decimal number from the environment, read as umap reads it:
 * the leading digits count, and a value that is 0 or has none leaves the
 * default in place.
 */
static bool env_number(const char *name, uint64_t *val)
{
	const char *s = getenv(name);
	unsigned long long v;
	char *end;

	if (!s)
		return false;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v == 0)
		return false;
	*val = v;
	return true;
}

static uint64_t env_or(const char *name, uint64_t dflt)
{
	uint64_t v;

	return env_number(name, &v) ? v : dflt;
}

static int env_percent_or(const char *name, int dflt)
{
	uint64_t v;

	return env_number(name, &v) && v <= INT_MAX ? (int)v : dflt;
}

/* umap's default buffer: 90% of the memory free now, in umap pages. */
static uint64_t default_buffer_pages(uint64_t page_size)
{
	unsigned long long free_kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "MemFree: %llu kB", &free_kb) == 1)
				break;
		fclose(f);
	}
	if (!free_kb)
		return UMAP_FALLBACK_BUFFER_BYTES / page_size;
	return free_kb / (page_size / 1024) * UMAP_DEFAULT_BUFFER_PERCENT / 100;
}

static void config_read(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t threads = cpus > 0 ? (uint64_t)cpus : 16;

	config.system_page_size = sysconf(_SC_PAGESIZE);
	config.page_size = env_or("UMAP_PAGESIZE",
				  (uint64_t)config.system_page_size);
	config.max_fault_events = env_or("UMAP_MAX_FAULT_EVENTS",
					 UMAP_DEFAULT_MAX_FAULT_EVENTS);
	config.fillers = env_or("UMAP_PAGE_FILLERS", threads);
	config.evictors = env_or("UMAP_PAGE_EVICTORS", threads);
	config.high_water = env_percent_or("UMAP_EVICT_HIGH_WATER_THRESHOLD",
					   UMAP_DEFAULT_HIGH_WATER);
	config.low_water = env_percent_or("UMAP_EVICT_LOW_WATER_THRESHOLD",
					  UMAP_DEFAULT_LOW_WATER);
	config.read_ahead = env_or("UMAP_READ_AHEAD", UMAP_DEFAULT_READ_AHEAD);
	/* The default depends on the page size, so it comes last.  A page
	 * size that is not a multiple of the system's is kept as given
	 * (umapcfg_get_umap_page_size reports it) and refused by umap(). */
	if (config.page_size % (uint64_t)config.system_page_size)
		config.buffer_pages = env_or("UMAP_BUFSIZE", 0);
	else
		config.buffer_pages = env_or("UMAP_BUFSIZE",
				default_buffer_pages(config.page_size));
}

static const struct umap_config *config_get(void)
{
	pthread_once(&config_once, config_read);
	return &config;
}

static int clamp_int(uint64_t v)
{
	return v > INT_MAX ? INT_MAX : (int)v;
}

/* The process's pager, created at the first call.  Under umap_lock. */
static struct uffd_pager *pager_get_locked(void)
{
	const struct umap_config *c = config_get();
	UFFD_OPTS(uffd_pager_opts, o);

	if (pager)
		return pager;
	if (!c->page_size || c->page_size % (uint64_t)c->system_page_size ||
	    c->page_size > SIZE_MAX || !c->buffer_pages ||
	    c->buffer_pages > SIZE_MAX / c->page_size) {
		errno = EINVAL;
		return NULL;
	}
	o.buffer_bytes = c->buffer_pages * c->page_size;
	o.page_size = c->page_size;
	o.fillers = clamp_int(c->fillers);
	o.evictors = clamp_int(c->evictors);
	o.high_water = c->high_water;
	o.low_water = c->low_water;
	o.max_fault_events = clamp_int(c->max_fault_events);
	if (!c->read_ahead)
		o.read_ahead = UFFD_PAGER_NO_READ_AHEAD;
	else if (c->read_ahead > SIZE_MAX / c->page_size)
		o.read_ahead = SIZE_MAX / c->page_size * c->page_size;
	else
		o.read_ahead = c->read_ahead * c->page_size;
	pager = uffd_pager_new(&o);
	return pager;
}

static struct uffd_pager *pager_peek(void)
{
	struct uffd_pager *p;

	pthread_mutex_lock(&umap_lock);
	p = pager;
	pthread_mutex_unlock(&umap_lock);
	return p;
}

/* Room in the table for one more map, made before the map is (so adding
 * it can not fail after).  0 or -ENOMEM. */
static int map_table_reserve_locked(void)
{
	if (nr_maps == maps_cap) {
		size_t cap = maps_cap ? 2 * maps_cap : 16;
		struct live_map *m = realloc(maps, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		maps = m;
		maps_cap = cap;
	}
	return 0;
}

static void map_table_add_locked(void *addr, size_t len, unsigned flags)
{
	maps[nr_maps++] = (struct live_map){ addr, len, flags };
}

/* Take the map that starts at addr out of the table; false if none does. */
static bool map_table_remove_locked(void *addr, struct live_map *out)
{
	for (size_t i = 0; i < nr_maps; i++) {
		if (maps[i].addr != addr)
			continue;
		*out = maps[i];
		maps[i] = maps[--nr_maps];
		return true;
	}
	return false;
}

/*
 * What mmap would say about this fd: it must be readable, and writable too
 * when writes go back to it.  The file store takes any fd, and would find
 * out only when the first write-back failed.
 */
static int fd_access_check(int fd, int prot, int flags)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return EBADF;
	if ((fl & O_ACCMODE) == O_WRONLY)
		return EACCES;
	if ((fl & O_ACCMODE) == O_RDONLY && (prot & PROT_WRITE) &&
	    !(flags & UMAP_NO_WRITEBACK))
		return EACCES;
	return 0;
}

static void *umap_fail(int err)
{
	errno = err;
	return UMAP_FAILED;
}

/*
 * Map length bytes of store s from offset, as umap() does for a file: the
 * checks umap makes, then the pager's map (at addr exactly with
 * UMAP_FIXED), which owns s from then on.  The map, or UMAP_FAILED with
 * errno (s is then still the caller's).
 */
static void *map_store(void *addr, size_t length, int prot, int flags, off_t offset,
		       struct uffd_store *s)
{
	const struct umap_config *c = config_get();
	UFFD_OPTS(uffd_pager_map_opts, o, .flags = UFFD_PAGER_OWN_STORE);
	struct uffd_pager *p;
	void *map;
	int err;

	if (flags & ~(UMAP_PRIVATE | UMAP_NO_WRITEBACK | UMAP_FIXED))
		return umap_fail(EINVAL);
	if (!(prot & (PROT_READ | PROT_WRITE)) ||
	    (prot & ~(PROT_READ | PROT_WRITE)))
		return umap_fail(EINVAL);
	if (prot & PROT_WRITE)
		prot |= PROT_READ;	/* there is no write-only map */
	if (flags & UMAP_NO_WRITEBACK)
		o.flags |= UFFD_PAGER_PRIVATE;
	/* At addr exactly, as umap's mmap(MAP_FIXED), on an umap page;
	 * without UMAP_FIXED addr is only a hint, as for mmap. */
	if (flags & UMAP_FIXED) {
		if ((uintptr_t)addr % c->page_size)
			return umap_fail(EINVAL);
		o.flags |= UFFD_PAGER_FIXED;
		o.addr = addr;
	}

	/* Whole umap pages, as mmap rounds to whole pages. */
	if (!length || length > SIZE_MAX - c->page_size)
		return umap_fail(EINVAL);
	o.len = (length + c->page_size - 1) / c->page_size * c->page_size;
	if (offset < 0 || (uint64_t)offset % c->page_size)
		return umap_fail(EINVAL);
	o.off = (uint64_t)offset;
	o.prot = prot;

	pthread_mutex_lock(&umap_lock);
	p = pager_get_locked();
	if (!p) {
		err = errno;
		goto out_unlock;
	}
	err = -map_table_reserve_locked();
	if (err)
		goto out_unlock;
	map = uffd_pager_map_ex(p, s, &o);
	if (!map) {
		err = errno;
		goto out_unlock;
	}
	map_table_add_locked(map, o.len, o.flags);
	pthread_mutex_unlock(&umap_lock);
	return map;

out_unlock:
	pthread_mutex_unlock(&umap_lock);
	return umap_fail(err);
}

void *umap(void *addr, size_t length, int prot, int flags, int fd,
	   off_t offset)
{
	struct uffd_store *s;
	void *map;
	int err;

	if (flags & ~(UMAP_PRIVATE | UMAP_NO_WRITEBACK | UMAP_FIXED))
		return umap_fail(EINVAL);
	err = fd_access_check(fd, prot, flags);
	if (err)
		return umap_fail(err);
	s = uffd_store_fd(fd, 0);
	if (!s)
		return UMAP_FAILED;
	map = map_store(addr, length, prot, flags, offset, s);
	if (map == UMAP_FAILED) {
		err = errno;
		uffd_store_free(s);
		errno = err;
	}
	return map;
}

void *umap_with_store(void *addr, size_t length, int prot, int flags,
		      struct uffd_store *store, off_t offset)
{
	if (!store || !store->ops || !store->ops->read)
		return umap_fail(EINVAL);
	return map_store(addr, length, prot, flags, offset, store);
}

int uunmap(void *addr, size_t length)
{
	struct live_map m;
	struct uffd_pager *p;
	int err;

	(void)length;	/* umap unmaps the whole map addr starts, too */
	pthread_mutex_lock(&umap_lock);
	p = pager;
	if (!p || !map_table_remove_locked(addr, &m)) {
		pthread_mutex_unlock(&umap_lock);
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_unlock(&umap_lock);

	err = uffd_pager_unmap(p, m.addr);
	if (err < 0) {
		errno = -err;
		return -1;
	}
	return 0;
}

int umap_flush(void)
{
	int first_err = 0;

	/* Under the lock, so a concurrent uunmap can not take a map away
	 * while it is being flushed. */
	pthread_mutex_lock(&umap_lock);
	for (size_t i = 0; i < nr_maps; i++) {
		int err;

		if (maps[i].flags & UFFD_PAGER_PRIVATE)
			continue;
		err = uffd_pager_flush(pager, maps[i].addr, 0);
		if (err < 0 && !first_err)
			first_err = err;
	}
	pthread_mutex_unlock(&umap_lock);
	if (first_err) {
		errno = -first_err;
		return -1;
	}
	return 0;
}

/*
 * umap's prefetch reports nothing (its errors abort); a page that can not
 * be read here is left out and faults, or raises SIGBUS, when touched.
 * The pager stops a batch at its first bad range, so after a failure the
 * batch is retried a range at a time: one stray address costs only itself.
 */
static void prefetch_ranges(struct uffd_pager *p,
			    const struct uffd_pager_range *r, int n,
			    unsigned flags)
{
	if (uffd_pager_prefetch(p, r, n, flags) >= 0 || n == 1)
		return;
	for (int i = 0; i < n; i++)
		uffd_pager_prefetch(p, &r[i], 1, flags);
}

/*
 * The start of the umap page holding addr.  Pages are counted from the
 * start of their map, which the pager aligns to the umap page only when
 * its size is a power of two.
 */
static char *umap_page_of(const void *addr, uint64_t psize)
{
	uintptr_t a = (uintptr_t)addr, base = a - a % psize;

	pthread_mutex_lock(&umap_lock);
	for (size_t i = 0; i < nr_maps; i++) {
		uintptr_t start = (uintptr_t)maps[i].addr;

		if (a >= start && a - start < maps[i].len) {
			base = start + (a - start) / psize * psize;
			break;
		}
	}
	pthread_mutex_unlock(&umap_lock);
	return (char *)base;
}

/* Consecutive pages go to the pager as one range. */
void umap_prefetch(int npages, struct umap_prefetch_item *page_array)
{
	struct uffd_pager *p = pager_peek();
	uint64_t psize = config_get()->page_size;
	struct uffd_pager_range r[PREFETCH_BATCH];
	int n = 0;

	if (!p || npages <= 0 || !page_array)
		return;
	for (int i = 0; i < npages; i++) {
		char *page = umap_page_of(page_array[i].page_base_addr, psize);

		if (n && (char *)r[n - 1].addr + r[n - 1].len == page) {
			r[n - 1].len += psize;
			continue;
		}
		if (n == PREFETCH_BATCH) {
			prefetch_ranges(p, r, n, 0);
			n = 0;
		}
		r[n++] = (struct uffd_pager_range){ page, psize };
	}
	if (n)
		prefetch_ranges(p, r, n, 0);
}

void umap_fetch_and_pin(char *paddr, uint64_t size)
{
	struct uffd_pager *p = pager_peek();
	uint64_t psize = config_get()->page_size;
	uintptr_t start, end;
	struct uffd_pager_range r;

	if (!p || !size || size > UINTPTR_MAX - (uintptr_t)paddr - psize)
		return;
	/* From the page holding the first byte to the one holding the last:
	 * the pager reads whole pages of whatever range it is given. */
	start = (uintptr_t)umap_page_of(paddr, psize);
	end = (uintptr_t)paddr + size;
	r = (struct uffd_pager_range){ (void *)start, end - start };
	prefetch_ranges(p, &r, 1, UFFD_PAGER_PIN);
}

int umap_has_write_support(void)
{
	return 1;
}

long umapcfg_get_system_page_size(void)
{
	return config_get()->system_page_size;
}

uint64_t umapcfg_get_umap_page_size(void)
{
	return config_get()->page_size;
}

uint64_t umapcfg_get_max_fault_events(void)
{
	return config_get()->max_fault_events;
}

uint64_t umapcfg_get_num_fillers(void)
{
	return config_get()->fillers;
}

uint64_t umapcfg_get_num_evictors(void)
{
	return config_get()->evictors;
}

uint64_t umapcfg_get_max_pages_in_buffer(void)
{
	return config_get()->buffer_pages;
}

uint64_t umapcfg_get_read_ahead(void)
{
	return config_get()->read_ahead;
}

int umapcfg_get_evict_low_water_threshold(void)
{
	return config_get()->low_water;
}

int umapcfg_get_evict_high_water_threshold(void)
{
	return config_get()->high_water;
}
