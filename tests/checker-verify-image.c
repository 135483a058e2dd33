/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_checker_verify_image() accepts exactly an image chain of the table
 * at the marked instant and names the first page that differs:
 *  - a base image of the pre-filled table, marked before the writers start
 *    (every non-zero page; the others are holes), verifies (0) while the
 *    writers are changing pages;
 *  - so does a base written while paused at a later instant;
 *  - at the next instant, about 1000 writes later, a delta holding exactly the pages whose version
 *    changed since the first: the chain delta -> base verifies (0), and the
 *    base alone no longer does (its first stale page is named);
 *  - a delta that leaves out one changed page: the chain reads that page
 *    from the base, -EBADMSG "page P: version OLD (older), expected NEW";
 *  - a region of another length: -EINVAL; a region that does not exist:
 *    -EINVAL.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/checker.h>
#include <uffd/image.h>

#include "lib/harness.h"

#define TABLE_BYTES	(32UL << 20)
/* Writes between the instants: few enough to leave most pages unchanged. */
#define WRITES_BETWEEN	1000
#define NPAGES		(TABLE_BYTES / PAGE)

static char dir[] = "/tmp/checker-image-XXXXXX";
static char prefill_path[64], base_path[64], delta_path[64], tampered_path[64];

static uint64_t version_of(const char *area, size_t page)
{
	return *(const uint64_t *)(area + page * PAGE);
}

/*
 * Write the table (paused) to path: the pages whose version differs from
 * since[] (all non-zero pages when since is NULL), except page skip.
 */
static void write_image(const char *path, const char *parent, const char *area,
			const uint64_t *since, size_t skip, size_t *written)
{
	struct uffd_image_region r = {
		.addr = (uintptr_t)area, .len = TABLE_BYTES, .page_size = PAGE,
		.flags = UFFD_IMAGE_ANON,
	};
	struct uffd_image_writer *w = uffd_image_create(path, &r, 1, parent, 0);
	size_t p;

	if (!w)
		FAIL("uffd_image_create(%s): %s", path, strerror(errno));
	*written = 0;
	for (p = 0; p < NPAGES; p++) {
		uint64_t v = version_of(area, p);

		if (p == skip || (since ? v == since[p] : v == 0))
			continue;
		CHECK_OK(uffd_image_put_page(w, 0, p, area + p * PAGE));
		(*written)++;
	}
	CHECK_OK(uffd_image_commit(w));
}

static int verify(struct uffd_checker *c, const char *path, int region,
		  char *msg, size_t msglen)
{
	struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);
	int ret;

	if (!chain)
		FAIL("uffd_image_chain_open(%s): %s", path, strerror(errno));
	ret = uffd_checker_verify_image(c, chain, region, msg, msglen);
	uffd_image_chain_close(chain);
	return ret;
}

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, o, .bytes = TABLE_BYTES, .writers = 2, .seed = 11, .fill = 0.5);
	struct uffd_checker *c = uffd_checker_new(&o);
	uint64_t *first = calloc(NPAGES, sizeof(*first));
	size_t p, skipped, written, changed = 0;
	char msg[256], want[256];
	uint64_t writes;
	char *area;

	CHECK(c && first);
	CHECK(mkdtemp(dir));
	snprintf(prefill_path, sizeof(prefill_path), "%s/prefill", dir);
	snprintf(base_path, sizeof(base_path), "%s/base", dir);
	snprintf(delta_path, sizeof(delta_path), "%s/delta", dir);
	snprintf(tampered_path, sizeof(tampered_path), "%s/tampered", dir);
	area = uffd_checker_area(c);

	/* An instant before start: a base image of the pre-fill, with holes. */
	uffd_checker_mark_instant(c);
	write_image(prefill_path, NULL, area, NULL, NPAGES, &written);
	CHECK(written > 0 && written < NPAGES);
	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(20);
	CHECK_OK(verify(c, prefill_path, 0, msg, sizeof(msg)));

	/* The first instant, paused: a base. */
	uffd_checker_pause(c);
	uffd_checker_mark_instant(c);
	for (p = 0; p < NPAGES; p++)
		first[p] = version_of(area, p);
	write_image(base_path, NULL, area, NULL, NPAGES, &written);
	writes = uffd_checker_writes(c);
	uffd_checker_resume(c);
	while (uffd_checker_writes(c) < writes + WRITES_BETWEEN)
		;

	/* The second: a delta, and one that misses a page. */
	uffd_checker_pause(c);
	uffd_checker_mark_instant(c);
	for (p = 0, skipped = NPAGES; p < NPAGES; p++) {
		if (version_of(area, p) == first[p])
			continue;
		changed++;
		if (skipped == NPAGES)
			skipped = p;
	}
	CHECK(changed >= WRITES_BETWEEN / 2);
	if (changed == NPAGES)	/* a long pause; the chain is still right */
		fprintf(stderr, "note: every page changed between the instants\n");
	write_image(delta_path, base_path, area, first, NPAGES, &written);
	CHECK_EQ(written, changed);
	write_image(tampered_path, base_path, area, first, skipped, &written);
	CHECK_EQ(written, changed - 1);
	snprintf(want, sizeof(want), "page %zu: version %llu (%s), expected %llu",
		 skipped, (unsigned long long)first[skipped],
		 first[skipped] ? "older" : "zero page",
		 (unsigned long long)version_of(area, skipped));
	uffd_checker_resume(c);
	t_sleep_ms(30);

	CHECK_OK(verify(c, delta_path, 0, msg, sizeof(msg)));
	CHECK_EQ(verify(c, tampered_path, 0, msg, sizeof(msg)), -EBADMSG);
	if (strcmp(msg, want))
		FAIL("tampered: message \"%s\", want \"%s\"", msg, want);
	/* The base alone is the first instant: its first changed page is stale. */
	CHECK_EQ(verify(c, base_path, 0, msg, sizeof(msg)), -EBADMSG);
	snprintf(want, sizeof(want), "page %zu: ", skipped);
	if (strncmp(msg, want, strlen(want)))
		FAIL("base: message \"%s\", want it to start \"%s\"", msg, want);

	CHECK_EQ(verify(c, delta_path, 1, msg, sizeof(msg)), -EINVAL);
	CHECK_EQ(verify(c, delta_path, -1, msg, sizeof(msg)), -EINVAL);
	uffd_checker_stop(c);
	CHECK_OK(verify(c, delta_path, 0, msg, sizeof(msg)));

	/* A table of another size does not match the region. */
	{
		UFFD_OPTS(uffd_checker_opts, small, .bytes = TABLE_BYTES / 2, .writers = 1);
		struct uffd_checker *c2 = uffd_checker_new(&small);

		CHECK(c2);
		uffd_checker_mark_instant(c2);
		CHECK_EQ(verify(c2, delta_path, 0, msg, sizeof(msg)), -EINVAL);
		uffd_checker_free(c2);
	}

	unlink(tampered_path);
	unlink(delta_path);
	unlink(base_path);
	unlink(prefill_path);
	rmdir(dir);
	uffd_checker_free(c);
	free(first);
	return T_EXIT_PASS;
}
