/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-thread runtime, as services use it (see inthread.c): what a
 * callback running in the faulting thread's SIGBUS handler may call, and
 * how a service keeps its own lock-free structures for such callbacks.
 */
#ifndef LIBUFFD_RUNTIME_INTHREAD_H
#define LIBUFFD_RUNTIME_INTHREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <uffd/handler.h>

/* True in a callback the in-thread runtime runs in a signal handler. */
bool uffd__in_fault_handler(void);

/*
 * Copy n pages of page_size bytes from src, page by page, page i into
 * dst[i]: a page that is unmapped while it is read stops the copy instead
 * of killing the process.  Returns the pages copied.  Async-signal-safe;
 * needs a guard reference (uffd__guard_get) held while it may be called.
 */
size_t uffd__guarded_copy(void *const *dst, const void *src, size_t n, size_t page_size);
/* Install (first reference) or drop the SIGSEGV handler behind it: 0 or
 * -errno. */
int uffd__guard_get(void);
void uffd__guard_put(void);

/*
 * Wait until every event h's thread read before this call has been
 * applied (the region table updated, event callbacks returned): the
 * signal-safe uffd_handler_sync() of an in-thread handler, for its
 * callbacks.  For another handler it is uffd_handler_sync().
 */
void uffd__handler_events_settle(struct uffd_handler *h);

/*
 * Memory that in-thread callbacks may still be reading: freed (mm_free)
 * once every callback running now has returned.  And the wait for that
 * (not from a callback).  Services publish their own lock-free structures
 * with these: a new version, published with a release store, retires the
 * old one.
 */
void uffd__inthread_retire(void *p);
void uffd__inthread_synchronize(void);

#endif
