/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Counters that threads bump while a caller may read them: relaxed atomic
 * adds and loads (each counter is consistent, the set is not a snapshot).
 */
#ifndef LIBUFFD_UTIL_STATS_H
#define LIBUFFD_UTIL_STATS_H

/* Add n to st->field. */
#define STAT_ADD(st, field, n) __atomic_fetch_add(&(st)->field, (n), __ATOMIC_RELAXED)
/* Copy one counter from src to dst (field by field: a struct copy could
 * tear, and a cast to an array of words breaks on the first field that is
 * not a counter). */
#define STAT_COPY(dst, src, field) \
	((dst)->field = __atomic_load_n(&(src)->field, __ATOMIC_RELAXED))

#endif
