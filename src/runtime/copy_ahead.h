/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copies ahead of faults that must know what went in.  The resolve
 * helpers (uffd_fault_copy_at, uffd_region_copy) answer 0 when the kernel
 * says ENOENT - the range went away, the fault is dropped and re-faults -
 * which is all a fault needs.  A service that fills pages nobody asked
 * for yet and counts them as mapped (the pager's read-ahead) needs more:
 * the kernel copies into one mapping at a time and fails a range that
 * crosses into another one (split by mprotect, or unmapped in part by the
 * program) with ENOENT having copied nothing, and stops at a page already
 * there (EEXIST).  These do exactly what those helpers do, and also say
 * how far the pages are in.
 */
#ifndef LIBUFFD_RUNTIME_COPY_AHEAD_H
#define LIBUFFD_RUNTIME_COPY_AHEAD_H

#include <stdbool.h>
#include <stddef.h>

struct uffd_fault;
struct uffd_region;

/*
 * uffd_fault_copy_at() (wp: uffd_fault_copy_wp()) and uffd_region_copy()
 * (uffd_region_copy_wp()), same answers; *in: the bytes from dst that are
 * in the map now - copied, or found there (EEXIST) - up to the first that
 * is not, whatever the answer.  Those past *in were not copied: ENOENT
 * for them, or not tried after a page found there.
 */
int uffd__fault_copy_ahead(struct uffd_fault *f, void *dst, const void *src, size_t len,
			   bool wp, size_t *in);
int uffd__region_copy_ahead(struct uffd_region *r, void *dst, const void *src, size_t len,
			    bool wp, size_t *in);

#endif
