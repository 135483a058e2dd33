/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Page bitmaps: see bitmap.h.  Runs are found a word at a time. */
#include <errno.h>
#include <string.h>

#include "bitmap.h"
#include "mmalloc.h"

int bitmap_resize(struct bitmap *b, size_t nbits)
{
	size_t old = BITMAP_WORDS(b->nbits), want = BITMAP_WORDS(nbits);
	uint64_t *w;

	if (want > old) {
		/* mm_realloc zeroes what it adds (see mmalloc.h for why). */
		w = mm_realloc(b->words, want * sizeof(*w));
		if (!w)
			return -ENOMEM;
		memset(w + old, 0, (want - old) * sizeof(*w));
		b->words = w;
	}
	b->nbits = nbits;
	return 0;
}

void bitmap_free(struct bitmap *b)
{
	mm_free(b->words);
	b->words = NULL;
	b->nbits = 0;
}

/* Apply op to the bits [from, to) word by word. */
static void range_op(struct bitmap *b, size_t from, size_t to, bool set)
{
	while (from < to) {
		size_t word = from / 64, bit = from % 64;
		size_t n = to - from < 64 - bit ? to - from : 64 - bit;
		uint64_t mask = (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << bit;

		if (set)
			__atomic_fetch_or(&b->words[word], mask, __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(&b->words[word], ~mask, __ATOMIC_RELAXED);
		from += n;
	}
}

void bitmap_set_range(struct bitmap *b, size_t from, size_t to)
{
	range_op(b, from, to, true);
}

void bitmap_clear_range(struct bitmap *b, size_t from, size_t to)
{
	range_op(b, from, to, false);
}

size_t bitmap_count(const struct bitmap *b)
{
	size_t n = 0, w;

	for (w = 0; w < BITMAP_WORDS(b->nbits); w++)
		n += __builtin_popcountll(__atomic_load_n(&b->words[w], __ATOMIC_RELAXED));
	return n;
}

/* First bit at or after pos (before end) that equals want; end if none. */
static size_t find(const struct bitmap *b, size_t pos, size_t end, bool want)
{
	while (pos < end) {
		uint64_t w = __atomic_load_n(&b->words[pos / 64], __ATOMIC_RELAXED);

		if (!want)
			w = ~w;
		w &= ~0ULL << (pos % 64);
		if (w) {
			pos = pos / 64 * 64 + __builtin_ctzll(w);
			return pos < end ? pos : end;
		}
		pos = (pos / 64 + 1) * 64;
	}
	return end;
}

bool bitmap_next_run(const struct bitmap *b, size_t *pos, size_t end,
		     size_t *run_start, size_t *run_end)
{
	size_t s = find(b, *pos, end, true);

	if (s >= end) {
		*pos = end;
		return false;
	}
	*run_start = s;
	*run_end = find(b, s, end, false);
	*pos = *run_end;
	return true;
}
