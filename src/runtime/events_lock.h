/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holding off the reading of a handler's messages, for a service that
 * fills pages from another thread than the one that reads them (the
 * migration's destination).  The kernel lets an madvise(DONTNEED) or a
 * munmap go on as soon as its event is read, before the event's callback
 * has run: a thread that checks "is this page still wanted?" and fills it
 * holds this around both, so no such event can be read in between.
 * Short holds only: faults are not read meanwhile either.
 */
#ifndef LIBUFFD_RUNTIME_EVENTS_LOCK_H
#define LIBUFFD_RUNTIME_EVENTS_LOCK_H

#include <pthread.h>

struct uffd;
struct uffd_handler;

/* The root userfaultfd's read lock (the one every message is read and
 * every event applied under). */
void uffd__handler_lock_events(struct uffd_handler *h);
void uffd__handler_unlock_events(struct uffd_handler *h);

/* The read lock of the context of h that reads u's messages: the root's,
 * or a forked child's (the page server fills a child's memory from
 * another thread than the child's own).  NULL: h reads no such fd (yet -
 * a child's context is listed just after its FORK callbacks ran). */
pthread_mutex_t *uffd__handler_events_lock_of(struct uffd_handler *h, const struct uffd *u);

#endif
