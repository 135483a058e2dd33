/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's map of a client's memory (its spans: address range ->
 * region and page) follows the changes a server reports, exactly: a
 * piece moved out of the middle of a span, a move onto part of another
 * span (what was there is gone), an munmap across spans and one that
 * punches a hole in one, a move of several spans at once, madvise's
 * removed pages, and a forked child's copy that changes on its own.
 * Driven through serve_engine_apply() on an engine that is never
 * started: no process, no userfaultfd, only the table (which the engine
 * edits in place, so that an event callback allocates nothing).
 */
#include "lib/harness.h"
#include "serve/engine.h"

#define R0 0x100000ull		/* region 0: 16 pages at source offset 0 */
#define R1 0x200000ull		/* region 1: 8 pages after them */
#define P(n) ((uint64_t)(n) * PAGE)

struct want {
	uint64_t start, npages;
	int region;
	uint64_t page;
};

static void check_spans(const char *what, const struct serve_mm *mm, const struct want *w,
			int n)
{
	int i;

	for (i = 0; i < mm->nspans && i < n; i++) {
		const struct serve_span *s = &mm->spans[i];

		if (s->start != w[i].start || s->end != w[i].start + P(w[i].npages) ||
		    s->region != w[i].region || s->page != w[i].page)
			FAIL("%s: span %d is [0x%llx, 0x%llx) region %d page %llu, want "
			     "[0x%llx, 0x%llx) region %d page %llu", what, i,
			     (unsigned long long)s->start, (unsigned long long)s->end, s->region,
			     (unsigned long long)s->page, (unsigned long long)w[i].start,
			     (unsigned long long)(w[i].start + P(w[i].npages)), w[i].region,
			     (unsigned long long)w[i].page);
	}
	if (mm->nspans != n)
		FAIL("%s: %d spans, want %d", what, mm->nspans, n);
}

static void apply(struct serve_engine *e, uint32_t type, uint32_t mm, uint64_t a, uint64_t b,
		  uint64_t c)
{
	struct serve_event ev = { .type = type, .mm = mm, .a = a, .b = b, .c = c };

	CHECK_OK(serve_engine_apply(e, &ev, -1));
}

static struct serve_mm *child_of(struct serve_engine *e, uint32_t id)
{
	struct serve_mm *mm;

	for (mm = e->mms; mm && mm->id != id; mm = mm->next)
		;
	CHECK(mm);
	return mm;
}

int main(void)
{
	const struct serve_mapping m[] = {
		{ .addr = R0, .len = P(16), .offset = 0, .page_size = PAGE },
		{ .addr = R1, .len = P(8), .offset = P(16), .page_size = PAGE },
	};
	const struct serve_engine_opts o = { .fill = true };
	struct serve_engine e;
	struct serve_mm *child;

	CHECK_OK(serve_engine_init(&e, m, 2, &o));
	{
		const struct want w[] = { { R0, 16, 0, 0 }, { R1, 8, 1, 0 } };

		check_spans("at first", e.root, w, 2);
	}
	/* Pages 4-7 of region 0 out of the middle of its span. */
	apply(&e, SERVE_EV_REMAP, 0, R0 + P(4), 0x300000, P(4));
	{
		const struct want w[] = { { R0, 4, 0, 0 }, { R0 + P(8), 8, 0, 8 }, { R1, 8, 1, 0 },
					  { 0x300000, 4, 0, 4 } };

		check_spans("a piece moved out", e.root, w, 4);
	}
	/* Pages 10-11 of region 0 onto pages 2-3 of region 1, which go. */
	apply(&e, SERVE_EV_REMAP, 0, R0 + P(10), R1 + P(2), P(2));
	{
		const struct want w[] = { { R0, 4, 0, 0 }, { R0 + P(8), 2, 0, 8 },
					  { R0 + P(12), 4, 0, 12 }, { R1, 2, 1, 0 },
					  { R1 + P(2), 2, 0, 10 }, { R1 + P(4), 4, 1, 4 },
					  { 0x300000, 4, 0, 4 } };

		check_spans("a piece moved onto another span", e.root, w, 7);
	}
	/* An munmap across three spans and the gaps between them. */
	apply(&e, SERVE_EV_UNMAP, 0, R0 + P(2), R0 + P(13), 0);
	{
		const struct want w[] = { { R0, 2, 0, 0 }, { R0 + P(13), 3, 0, 13 },
					  { R1, 2, 1, 0 }, { R1 + P(2), 2, 0, 10 },
					  { R1 + P(4), 4, 1, 4 }, { 0x300000, 4, 0, 4 } };

		check_spans("an munmap across spans", e.root, w, 6);
	}
	/* A hole in one span. */
	apply(&e, SERVE_EV_UNMAP, 0, 0x300000 + P(1), 0x300000 + P(3), 0);
	{
		const struct want w[] = { { R0, 2, 0, 0 }, { R0 + P(13), 3, 0, 13 },
					  { R1, 2, 1, 0 }, { R1 + P(2), 2, 0, 10 },
					  { R1 + P(4), 4, 1, 4 }, { 0x300000, 1, 0, 4 },
					  { 0x300000 + P(3), 1, 0, 7 } };

		check_spans("a hole", e.root, w, 7);
	}
	/* A child forked now has the same map. */
	apply(&e, SERVE_EV_FORK, 1, 0, 0, 0);
	child = child_of(&e, 1);
	/* Three spans moved at once, and pages given back across two. */
	apply(&e, SERVE_EV_REMAP, 0, R1, 0x400000, P(8));
	apply(&e, SERVE_EV_REMOVE, 0, 0x400000 + P(1), 0x400000 + P(3), 0);
	{
		const struct want w[] = { { R0, 2, 0, 0 }, { R0 + P(13), 3, 0, 13 },
					  { 0x300000, 1, 0, 4 }, { 0x300000 + P(3), 1, 0, 7 },
					  { 0x400000, 2, 1, 0 }, { 0x400000 + P(2), 2, 0, 10 },
					  { 0x400000 + P(4), 4, 1, 4 } };

		check_spans("spans moved together", e.root, w, 7);
	}
	CHECK(e.root->removed[1].nbits && bitmap_test(&e.root->removed[1], 1));
	CHECK(!bitmap_test(&e.root->removed[1], 0));
	CHECK(e.root->removed[0].nbits && bitmap_test(&e.root->removed[0], 10));
	CHECK(!bitmap_test(&e.root->removed[0], 11));
	/* The child's map is its own: as at the fork, then its munmap. */
	apply(&e, SERVE_EV_UNMAP, 1, R0, R0 + P(16), 0);
	{
		const struct want w[] = { { R1, 2, 1, 0 }, { R1 + P(2), 2, 0, 10 },
					  { R1 + P(4), 4, 1, 4 }, { 0x300000, 1, 0, 4 },
					  { 0x300000 + P(3), 1, 0, 7 } };

		check_spans("the child's", child, w, 5);
	}
	CHECK(!child->removed[0].nbits && !child->removed[1].nbits);
	CHECK(!serve_engine_inexact(&e));
	serve_engine_release(&e);
	return T_EXIT_PASS;
}
