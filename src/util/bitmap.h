/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A bitmap of pages, shared by the services: bits are set with atomic ORs
 * (fault handlers and signal handlers set them concurrently) and read and
 * cleared in runs by one collector.
 */
#ifndef LIBUFFD_UTIL_BITMAP_H
#define LIBUFFD_UTIL_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct bitmap {
	uint64_t *words;
	size_t nbits;
};

#define BITMAP_WORDS(n) (((n) + 63) / 64)

/* Grow to nbits (new bits clear); 0 or -ENOMEM. */
int bitmap_resize(struct bitmap *b, size_t nbits);
void bitmap_free(struct bitmap *b);

static inline void bitmap_set_atomic(struct bitmap *b, size_t i)
{
	__atomic_fetch_or(&b->words[i / 64], 1ULL << (i % 64), __ATOMIC_RELAXED);
}

static inline bool bitmap_test(const struct bitmap *b, size_t i)
{
	return __atomic_load_n(&b->words[i / 64], __ATOMIC_RELAXED) & (1ULL << (i % 64));
}

/* Set bits [from, to). */
void bitmap_set_range(struct bitmap *b, size_t from, size_t to);
/* Clear bits [from, to). */
void bitmap_clear_range(struct bitmap *b, size_t from, size_t to);

/* The bits set (a snapshot of them, while others may be setting more). */
size_t bitmap_count(const struct bitmap *b);

/*
 * The next run of set bits at or after *pos and before end: returns true
 * with [*run_start, *run_end) and moves *pos past it, false when none.
 */
bool bitmap_next_run(const struct bitmap *b, size_t *pos, size_t end,
		     size_t *run_start, size_t *run_end);

#endif
