/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Allocations that live in mappings of their own.
 *
 * A snapshot of "all of this process's memory" write-protects the heap.
 * The threads that serve the faults (and the one that writes the image)
 * must never write to protected memory, or they would fault on themselves:
 * so everything they write is allocated here, in fresh mappings made after
 * the snapshot's regions were listed, never inside them.  Each allocation
 * costs a system call and whole pages: use it for the few long-lived
 * structures of the runtime and the services, not for small hot objects.
 */
#ifndef LIBUFFD_UTIL_MMALLOC_H
#define LIBUFFD_UTIL_MMALLOC_H

#include <stddef.h>

/* Zeroed memory, or NULL with errno. */
void *mm_zalloc(size_t size);
/* Grow or shrink (new bytes zeroed); NULL with errno and p untouched. */
void *mm_realloc(void *p, size_t size);
void mm_free(void *p);

/*
 * A thread whose stack (and so its TLS) is a fresh mapping too: glibc would
 * otherwise hand it a cached stack of an earlier thread, which may lie in
 * memory a snapshot protects.  *stack receives the stack, for
 * mm_thread_join.  0 or -errno.
 */
#include <pthread.h>
int mm_thread_create(pthread_t *thread, void **stack, void *(*fn)(void *), void *arg);
void mm_thread_join(pthread_t thread, void *stack);

#endif
