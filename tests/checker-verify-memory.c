/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_checker_verify_memory() accepts exactly the table at the marked
 * instant and names the first page that differs:
 *  - a copy taken while paused at the instant verifies (0) after the
 *    writers have changed most pages, both while they keep running and
 *    once they are paused again; the live table no longer does;
 *  - the copy with one page replaced by its later version from the live
 *    table: -EBADMSG, "page P: version V (after the instant), expected S";
 *  - the copy with one page's checksum taken from that later version
 *    (a page copied mid-write): "page P: torn (header S, middle of S,
 *    checksum of V)";
 *  - the copy with one page taken from a copy made before the instant:
 *    "page P: version E (older), expected S";
 *  - the copy with one page holding another page's contents: "page P:
 *    header of page Q (version V)"; with a byte set outside the stamps:
 *    "page P: stray bytes at offset 1000 (version S)";
 *  - put back, the copy verifies again (each time).
 */
#include <sys/mman.h>

#include <uffd/checker.h>

#include "lib/harness.h"

#define TABLE_BYTES	(8UL << 20)
#define NPAGES		(TABLE_BYTES / PAGE)
#define W_CHECKSUM	(4088 / 8)

static uint64_t *word(char *mem, size_t page, size_t w)
{
	return (uint64_t *)(mem + page * PAGE) + w;
}

static uint64_t version(char *mem, size_t page)
{
	return *word(mem, page, 0);
}

/* The first page at or after from whose version differs in a and b. */
static size_t first_changed(char *a, char *b, size_t from, size_t *count)
{
	size_t p, first = NPAGES;

	*count = 0;
	for (p = 0; p < NPAGES; p++) {
		if (version(a, p) == version(b, p))
			continue;
		(*count)++;
		if (p >= from && first == NPAGES)
			first = p;
	}
	return first;
}

static void expect_bad(struct uffd_checker *c, char *mem, const char *want)
{
	char msg[256] = "";
	int ret = uffd_checker_verify_memory(c, mem, msg, sizeof(msg));

	CHECK_EQ(ret, -EBADMSG);
	if (strcmp(msg, want))
		FAIL("message \"%s\", want \"%s\"", msg, want);
}

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, o, .bytes = TABLE_BYTES, .writers = 2, .seed = 7, .fill = 0.5);
	char page_copy[PAGE], want[256], msg[256];
	struct uffd_checker *c = uffd_checker_new(&o);
	char *area, *early, *snap;
	size_t p, changed;
	uint64_t s, v;

	CHECK(c);
	area = uffd_checker_area(c);
	CHECK_EQ(uffd_checker_len(c), TABLE_BYTES);
	early = t_map_anon(TABLE_BYTES);
	snap = t_map_anon(TABLE_BYTES);
	CHECK_EQ(uffd_checker_verify_memory(c, area, msg, sizeof(msg)), -EINVAL);

	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(20);
	uffd_checker_pause(c);
	memcpy(early, area, TABLE_BYTES);
	uffd_checker_resume(c);
	t_sleep_ms(20);
	uffd_checker_pause(c);
	uffd_checker_mark_instant(c);
	memcpy(snap, area, TABLE_BYTES);
	CHECK_OK(uffd_checker_verify_memory(c, area, msg, sizeof(msg)));
	uffd_checker_resume(c);
	t_sleep_ms(50);

	/* The writers are running: verify reads only their side arrays. */
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));
	uffd_checker_pause(c);
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));

	/* 1. A later version, from the live table. */
	p = first_changed(snap, area, 0, &changed);
	if (changed < NPAGES / 4)
		FAIL("only %zu of %lu pages changed after the instant", changed, NPAGES);
	s = version(snap, p);
	v = version(area, p);
	CHECK(v > s);
	memcpy(page_copy, snap + p * PAGE, PAGE);
	memcpy(snap + p * PAGE, area + p * PAGE, PAGE);
	snprintf(want, sizeof(want), "page %zu: version %llu (after the instant), expected %llu",
		 p, (unsigned long long)v, (unsigned long long)s);
	expect_bad(c, snap, want);
	memcpy(snap + p * PAGE, page_copy, PAGE);
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));

	/* 2. Torn: the checksum of the later version, the rest of the old. */
	do
		p = first_changed(snap, area, p + 1, &changed);
	while (p < NPAGES && !version(snap, p));
	CHECK(p < NPAGES);
	s = version(snap, p);
	v = version(area, p);
	memcpy(page_copy, snap + p * PAGE, PAGE);
	*word(snap, p, W_CHECKSUM) = *word(area, p, W_CHECKSUM);
	snprintf(want, sizeof(want), "page %zu: torn (header %llu, middle of %llu, checksum of %llu)",
		 p, (unsigned long long)s, (unsigned long long)s, (unsigned long long)v);
	expect_bad(c, snap, want);
	memcpy(snap + p * PAGE, page_copy, PAGE);
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));

	/* 3. An older version: the page from before the instant. */
	p = first_changed(early, snap, p + 1, &changed);
	CHECK(p < NPAGES);
	s = version(snap, p);
	v = version(early, p);
	CHECK(v < s);
	memcpy(page_copy, snap + p * PAGE, PAGE);
	memcpy(snap + p * PAGE, early + p * PAGE, PAGE);
	snprintf(want, sizeof(want), "page %zu: version %llu (%s), expected %llu", p,
		 (unsigned long long)v, v ? "older" : "zero page", (unsigned long long)s);
	expect_bad(c, snap, want);
	memcpy(snap + p * PAGE, page_copy, PAGE);
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));

	/* 4. A page restored at the wrong index: page p holds page q. */
	{
		size_t q = p + 1;

		while (q < NPAGES && !version(snap, q))
			q++;
		CHECK(q < NPAGES && version(snap, p));
		memcpy(page_copy, snap + p * PAGE, PAGE);
		memcpy(snap + p * PAGE, snap + q * PAGE, PAGE);
		snprintf(want, sizeof(want), "page %zu: header of page %zu (version %llu)",
			 p, q, (unsigned long long)version(snap, q));
		expect_bad(c, snap, want);
		memcpy(snap + p * PAGE, page_copy, PAGE);
	}

	/* 5. A byte outside the stamps. */
	snap[p * PAGE + 1000] = 1;
	snprintf(want, sizeof(want), "page %zu: stray bytes at offset 1000 (version %llu)",
		 p, (unsigned long long)version(snap, p));
	expect_bad(c, snap, want);
	snap[p * PAGE + 1000] = 0;
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));

	/* The live table has moved on: it is not the instant any more. */
	CHECK_EQ(uffd_checker_verify_memory(c, area, msg, sizeof(msg)), -EBADMSG);
	CHECK(strstr(msg, "(after the instant)"));

	uffd_checker_resume(c);
	uffd_checker_stop(c);
	CHECK_OK(uffd_checker_verify_memory(c, snap, msg, sizeof(msg)));
	munmap(early, TABLE_BYTES);
	munmap(snap, TABLE_BYTES);
	uffd_checker_free(c);
	return T_EXIT_PASS;
}
