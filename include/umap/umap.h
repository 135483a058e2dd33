/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An LLNL umap compatible C API over the libuffd pager (include/uffd/pager.h),
 * so that a program written for umap builds and links against libumap.so
 * from libuffd without being changed.
 *
 * The prototypes, constants and environment variables are umap's (release
 * 2.x), and so is, in C++, its Store API (umap/store/Store.hpp).  What
 * behaves differently is listed in docs/umap.md and umap(3); the one thing
 * to know first is that the file offset given to umap() is honoured here,
 * where umap ignores it.
 */
#ifndef LIBUFFD_UMAP_H
#define LIBUFFD_UMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>		/* umap programs get PROT_* through this */
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Map length bytes of the file open on fd, from offset; UMAP_FAILED with
 * errno on failure. */
void *umap(void *addr, size_t length, int prot, int flags, int fd,
	   off_t offset);
/* Write the map's dirty pages back and unmap it; 0, or -1 with errno. */
int uunmap(void *addr, size_t length);
/* Write back the dirty pages of every map; 0, or -1 with errno. */
int umap_flush(void);

/*
 * libuffd's own: umap() over any store of the libuffd pager
 * (uffd/pager.h) instead of a file - what the C++ Umap::umap_ex() uses for
 * an Umap::Store.  The map owns the store from then on (uunmap frees it);
 * on failure it is still the caller's.
 */
struct uffd_store;
void *umap_with_store(void *addr, size_t length, int prot, int flags,
		      struct uffd_store *store, off_t offset);

struct umap_prefetch_item {
	void *page_base_addr;
};
typedef struct umap_prefetch_item umap_prefetch_item;

/* Read these umap pages in now. */
void umap_prefetch(int npages, struct umap_prefetch_item *page_array);
/* Read [paddr, paddr+size) in now and keep it resident until uunmap. */
void umap_fetch_and_pin(char *paddr, uint64_t size);
/* 1: maps may be written and are written back. */
int umap_has_write_support(void);

/* The configuration in force (read from the environment once, at the
 * first call into this API). */
long     umapcfg_get_system_page_size(void);
uint64_t umapcfg_get_umap_page_size(void);
uint64_t umapcfg_get_max_fault_events(void);
uint64_t umapcfg_get_num_fillers(void);
uint64_t umapcfg_get_num_evictors(void);
uint64_t umapcfg_get_max_pages_in_buffer(void);
uint64_t umapcfg_get_read_ahead(void);
int      umapcfg_get_evict_low_water_threshold(void);
int      umapcfg_get_evict_high_water_threshold(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

/*
 * umap() flags.  As in umap, UMAP_PRIVATE is what every map passes and the
 * map is still written back to the file (it names no copy-on-write);
 * UMAP_FIXED puts the map at addr exactly (an umap page boundary),
 * replacing what is mapped there, as mmap's MAP_FIXED.  UMAP_NO_WRITEBACK
 * is libuffd's own: writes stay in memory and never reach the file, like
 * mmap's MAP_PRIVATE.
 */
#define UMAP_PRIVATE		MAP_PRIVATE
#define UMAP_FIXED		MAP_FIXED
#define UMAP_NO_WRITEBACK	0x40000000	/* no MAP_* flag uses this bit */

#define UMAP_FAILED		((void *)-1)

/* C++: umap's Store API - Umap::Store, Umap::umap_ex() (and, in their own
 * headers, Umap::StoreFile and Umap::SparseStore). */
#ifdef __cplusplus
#include <umap/store/Store.hpp>
#endif

#endif
