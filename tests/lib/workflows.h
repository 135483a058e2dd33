/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Step-by-step scenarios that several tests run on different memory
 * (private anonymous, shmem, hugetlbfs): the write-protect workflow and the
 * MINOR-fault workflow.  Each takes the mapping and its page size, so a
 * test keeps only what is specific to its memory: the feature it needs,
 * how the memory is mapped, and the checks only it makes.
 *
 * The one idea: every fault is seen while its thread is provably blocked.
 * A worker thread makes the access; the test reads the message, checks the
 * worker has not completed, and only then resolves the fault and sees the
 * worker complete.
 */
#ifndef LIBUFFD_TEST_WORKFLOWS_H
#define LIBUFFD_TEST_WORKFLOWS_H

#include "harness.h"

/*
 * A worker's write of value at p, inside the write-protected page at page:
 * one WP fault message at page with the write flag, and the worker still
 * blocked 100 ms later.
 */
void t_wp_write_begin(struct uffd *u, struct t_access *a, void *page, void *p,
		      char value);
/*
 * Un-protect len bytes at page: the worker's write completes and lands
 * (reads back as the value written), and no other message follows.
 */
void t_wp_write_end(struct uffd *u, struct t_access *a, void *page,
		    size_t len);
/* A worker's write of value at p completes with no message, and lands. */
void t_write_without_fault(struct uffd *u, char *p, char value);

/* The write-protect workflow on npages pages of ps bytes at area. */
struct t_wp_workflow {
	struct uffd *u;		/* negotiated PAGEFAULT_FLAG_WP */
	char *area;
	size_t ps;		/* page size of the mapping */
	int npages;		/* at least 2 */
	size_t off;		/* where in a page the worker writes */
	unsigned seed;		/* page i holds t_fill seed + i */
};

/*
 * Register the range WP (it must offer UFFDIO_WRITEPROTECT) and fill every
 * page: registered but not protected, the writes populate it with no
 * message.
 */
void t_wp_populate(const struct t_wp_workflow *w);
/*
 * A worker writes value at page pg + off: a WP fault; while it is blocked
 * the page is as it was before the write; un-protecting the page wakes the
 * worker, its write lands and the bytes before it are unchanged.
 */
void t_wp_write_with_fault(const struct t_wp_workflow *w, int pg, char value);
/*
 * Protect all pages but the last; a write to the next-to-last page faults
 * and lands once un-protected (t_wp_write_with_fault); writes to the last
 * page (never protected) and to that un-protected page then complete
 * without a message, and the faulting write's byte stays.
 */
void t_wp_workflow(const struct t_wp_workflow *w);

/*
 * The MINOR workflow on a file mapped twice: reg, which the scenario
 * registers MINOR|WP, and alias, a plain second mapping through which the
 * test plays the manager that fills the page cache.  Before it runs, the
 * test fills through alias the cached pages: page N with t_fill seed N + 1;
 * page 0, page 1 and wp must be cached, hole and read_hole must be holes,
 * cached_then_hole cached and the page after it a hole.
 */
struct t_minor_workflow {
	/* Negotiated MINOR_*, PAGEFAULT_FLAG_WP and WP_HUGETLBFS_SHMEM. */
	struct uffd *u;
	char *reg, *alias;
	char *src;		/* a page of bytes for a COPY that fails */
	size_t ps;		/* page size of the file */
	int npages;		/* pages in reg and in alias */
	size_t read_off;	/* where in a page the worker reads */
	size_t write_off;	/* where in a page the worker writes */
	int hole;		/* continued on its own: -EFAULT */
	int cached_then_hole;	/* continued with the hole after it */
	int wp;			/* continued write-protected */
	int read_hole;		/* read through reg: the kernel fills it */
};

/*
 * Register reg MINOR|WP (CONTINUE and WRITEPROTECT offered), then:
 *  - page 0: the first touch through reg raises a MINOR fault (page
 *    address, read); contents written through alias meanwhile are what
 *    the worker and reg see after CONTINUE (which reports the page done);
 *  - page 1: COPY onto the cached page fails with -EEXIST, copies nothing
 *    and wakes no one; CONTINUE then maps it with its contents;
 *  - CONTINUE of a hole fails with -EFAULT, nothing done; of a cached page
 *    followed by a hole, the cached page is done (mapped: reading it does
 *    not fault), then -EFAULT;
 *  - CONTINUE with UFFD_MAP_WP: the read that faulted completes, a later
 *    write raises a WP fault, and un-protecting lets it through to the
 *    page cache (seen through alias);
 *  - a hole read through reg is filled with zeros by the kernel, with no
 *    message (MINOR alone does not catch missing pages).
 */
void t_minor_workflow(const struct t_minor_workflow *m);

#endif
