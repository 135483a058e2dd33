/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_region_copy() (and _copy_wp, and the pager's copy ahead) retries a
 * -EAGAIN from past what went in, not from the start of the range.
 *
 * The kernel's UFFDIO_COPY can copy part of a range and then answer
 * EAGAIN: it drops its locks to fault in a source page, and on the way
 * back finds an event pending (a REMOVE, UNMAP or REMAP not read yet).
 * Retried from the start, the copy found its first page there (EEXIST),
 * which the EEXIST policy counts as success: the helper answered 0 while
 * the pages after the partial copy were never filled.
 *
 * Made to happen here, without timing: page K of the copy's source is a
 * MISSING page of a second userfaultfd that the test serves by hand.  The
 * copy of NPAGES pages takes pages 0..K-1, then blocks faulting in the
 * source's page K.  Meanwhile a helper thread changes the destination's
 * layout; the handler is UFFD_WAIT_EPOLL, so its event stays unread until
 * the test dispatches.  The source fault resolved, the kernel meets the
 * pending event: EAGAIN with K pages copied (the handler's pages_resolved
 * says K once that answer is in).  Then the test dispatches the event and
 * the helper's retry goes on (it gives up after a second without
 * progress: the test dispatches as soon as it sees the K pages counted).
 *
 *  - MADV_DONTNEED of a page beyond the copy (REMOVE): uffd_region_copy,
 *    uffd_region_copy_wp and uffd__region_copy_ahead answer 0 and every
 *    page holds the source's bytes (present in /proc/self/pagemap first:
 *    a read of a missing page would wait on the handler), write-protected
 *    for _copy_wp; the copy ahead says all NPAGES pages are in.
 *  - mremap(MREMAP_DONTUNMAP) of the copy's rest, pages K.., elsewhere
 *    (REMAP): the region keeps pages 0..K-1 and the old range of the rest
 *    is in no region any more (though mapped, and registered with the
 *    userfaultfd).  That rest went away, as an ENOENT would say: the copy
 *    ahead answers 0 with K pages in, not -EINVAL.  Almost always: the
 *    kernel lets the retry through as soon as the REMAP is read, and the
 *    table changes just after, so a retry in between copies the rest to
 *    the old range, which is still mapped (0, all NPAGES pages in, there).
 *    Either way, nothing at the range's new address.
 *
 * Each case runs in a child with a deadline (a missed wake hangs).
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/handler.h>

#include "abi/userfaultfd.h"
#include "lib/harness.h"
#include "lib/mm-job.h"
#include "runtime/copy_ahead.h"

#define NPAGES 8	/* pages copied */
#define K 3		/* the source page that faults: pages 0..K-1 go first */
#define SEED 71
#define WAIT_MS 5000

enum helper { HELPER_COPY, HELPER_COPY_WP, HELPER_COPY_AHEAD };
enum change { REMOVE_BEYOND, REMAP_REST };

struct tcase {
	const char *name;
	enum helper helper;
	enum change change;
};

struct copier {
	pthread_t thread;
	enum helper helper;
	struct uffd_region *r;
	char *dst;
	const char *src;
	int ret;
	size_t in;		/* copy ahead: the bytes in */
	int done;		/* atomic: 1 once the helper returned */
};

static int pagemap_fd;

static uint64_t pagemap_entry(const void *p)
{
	uint64_t entry;
	off_t off = (off_t)((uintptr_t)p / PAGE * sizeof(entry));

	if (pread(pagemap_fd, &entry, sizeof(entry), off) != sizeof(entry))
		FAIL("pread pagemap: %s", strerror(errno));
	return entry;
}

static void *copy_main(void *arg)
{
	struct copier *c = arg;
	size_t len = NPAGES * PAGE;

	switch (c->helper) {
	case HELPER_COPY:
		c->ret = uffd_region_copy(c->r, c->dst, c->src, len);
		break;
	case HELPER_COPY_WP:
		c->ret = uffd_region_copy_wp(c->r, c->dst, c->src, len);
		break;
	case HELPER_COPY_AHEAD:
		c->ret = uffd__region_copy_ahead(c->r, c->dst, c->src, len, false, &c->in);
		break;
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static uint64_t pages_resolved(struct uffd_handler *h)
{
	struct uffd_handler_stats s;

	CHECK_OK(uffd_handler_stats(h, &s));
	return s.pages_resolved;
}

/* Wait up to ms until the helper's fills add up to n pages. */
static bool wait_resolved(struct uffd_handler *h, uint64_t n, int ms)
{
	int i;

	for (i = 0; i < ms; i++) {
		if (pages_resolved(h) == n)
			return true;
		t_sleep_ms(1);
	}
	return false;
}

static bool readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n = poll(&pfd, 1, ms);

	CHECK(n >= 0);
	return n == 1 && (pfd.revents & POLLIN);
}

static int run_case(void *arg)
{
	const struct tcase *tc = arg;
	UFFD_OPTS(uffd_handler_opts, opts, .wait = UFFD_WAIT_EPOLL);
	bool wp = tc->helper == HELPER_COPY_WP;
	uint64_t features = UFFD_F(UFFD_FEAT_EVENT_REMOVE) | UFFD_F(UFFD_FEAT_EVENT_REMAP);
	unsigned modes = UFFD_REG_MISSING | (wp ? UFFD_REG_WP : 0);
	size_t in_pages;
	struct uffd_handler_stats s;
	struct uffd_handler *h;
	struct uffd_region *r;
	struct t_mm_job job;
	struct copier c;
	struct uffd u, us;
	char *dst, *src, *want, *away = NULL;
	size_t i;

	fprintf(stderr, "case: %s\n", tc->name);
	/* This process's: the child's memory, not the parent's. */
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap_fd < 0)
		SKIP("cannot open /proc/self/pagemap: %s", strerror(errno));
	if (wp)
		features |= UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP);
	t_open(&u, features, 0);
	t_open(&us, 0, 0);

	/* The source: NPAGES pages of want's bytes but page K, missing on us. */
	want = t_map_anon(NPAGES * PAGE);
	t_fill(want, NPAGES * PAGE, SEED);
	src = t_map_anon(NPAGES * PAGE);
	memcpy(src, want, NPAGES * PAGE);
	CHECK_EQ(madvise(src + K * PAGE, PAGE, MADV_DONTNEED), 0);
	CHECK_OK(uffd_register(&us, src + K * PAGE, PAGE, UFFD_REG_MISSING, NULL));

	/* The destination: NPAGES pages to copy and one beyond them. */
	dst = t_map_anon((NPAGES + 1) * PAGE);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	r = uffd_handler_add(h, dst, (NPAGES + 1) * PAGE, 0, modes, NULL, NULL);
	CHECK(r);
	CHECK_OK(uffd_handler_start(h));

	memset(&c, 0, sizeof(c));
	c.helper = tc->helper;
	c.r = r;
	c.dst = dst;
	c.src = src;
	if (pthread_create(&c.thread, NULL, copy_main, &c))
		FAIL("pthread_create");

	/* The copy took pages 0..K-1 and waits for the source's page K. */
	t_expect_fault(&us, src + K * PAGE, UFFD_FAULT_MISSING, false);
	for (i = 0; i < K; i++)
		CHECK(pagemap_entry(dst + i * PAGE) & PM_ENTRY_PRESENT);
	CHECK(!(pagemap_entry(dst + K * PAGE) & PM_ENTRY_PRESENT));
	CHECK_EQ(pages_resolved(h), 0);

	/* An event on the destination, left unread. */
	if (tc->change == REMOVE_BEYOND) {
		t_mm_job_start(&job, T_MM_DONTNEED, dst + NPAGES * PAGE, PAGE, NULL);
	} else {
		away = t_map_anon((NPAGES - K) * PAGE);
		t_mm_job_start(&job, T_MM_MREMAP_DONTUNMAP, dst + K * PAGE,
			       (NPAGES - K) * PAGE, away);
	}
	CHECK(readable(uffd_handler_fd(h), WAIT_MS));

	/* The source page in: the kernel meets the event, EAGAIN after K. */
	CHECK_OK(uffd_copy(&us, src + K * PAGE, want + K * PAGE, PAGE, 0, NULL));
	CHECK(wait_resolved(h, K, WAIT_MS));
	CHECK(!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE));
	CHECK(!__atomic_load_n(&job.done, __ATOMIC_ACQUIRE));

	/* The event read, the helper's retry goes on. */
	CHECK_EQ(uffd_handler_dispatch(h), 1);
	CHECK(t_mm_job_wait(&job, WAIT_MS));
	t_mm_job_join(&job);
	CHECK_EQ(job.ret, 0);
	CHECK(t_wait_flag(&c.done, WAIT_MS));
	pthread_join(c.thread, NULL);

	CHECK_EQ(c.ret, 0);
	/* REMAP: K pages in, or all where the retry came before the table
	 * changed (see the top). */
	in_pages = tc->change == REMAP_REST && c.in != NPAGES * PAGE ? K : NPAGES;
	if (tc->change == REMAP_REST && in_pages == NPAGES)
		fprintf(stderr, "note: the retry came before the REMAP was applied\n");
	if (tc->helper == HELPER_COPY_AHEAD)
		CHECK_EQ(c.in, in_pages * PAGE);
	CHECK_EQ(pages_resolved(h), in_pages);
	for (i = 0; i < in_pages; i++) {
		uint64_t e = pagemap_entry(dst + i * PAGE);

		if (!(e & PM_ENTRY_PRESENT))
			FAIL("page %zu of %d not filled", i, NPAGES);
		if (wp && !(e & PM_ENTRY_UFFD_WP))
			FAIL("page %zu not write-protected", i);
	}
	t_check_bytes("the copied pages", dst, want, in_pages * PAGE);
	if (tc->change == REMOVE_BEYOND) {
		CHECK(!(pagemap_entry(dst + NPAGES * PAGE) & PM_ENTRY_PRESENT));
	} else {
		/* Not filled where the rest went, nor past what went in. */
		for (i = K; i < NPAGES; i++) {
			CHECK(!(pagemap_entry(away + (i - K) * PAGE) & PM_ENTRY_PRESENT));
			if (i >= in_pages)
				CHECK(!(pagemap_entry(dst + i * PAGE) & PM_ENTRY_PRESENT));
		}
	}
	CHECK_OK(uffd_handler_stats(h, &s));
	if (tc->change == REMOVE_BEYOND) {
		CHECK_EQ(s.events[2], 1);		/* REMOVE */
		CHECK_EQ(uffd_region_len(r), (NPAGES + 1) * PAGE);
	} else {
		CHECK_EQ(s.events[1], 1);		/* REMAP */
		CHECK_EQ(uffd_region_len(r), K * PAGE);
	}
	CHECK_EQ(uffd_handler_dispatch(h), 0);
	t_expect_no_event(&us, 0);

	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	uffd_close(&us);
	close(pagemap_fd);
	return T_EXIT_PASS;
}

int main(void)
{
	static const struct tcase cases[] = {
		{ "uffd_region_copy, a REMOVE beyond", HELPER_COPY, REMOVE_BEYOND },
		{ "uffd_region_copy_wp, a REMOVE beyond", HELPER_COPY_WP, REMOVE_BEYOND },
		{ "uffd__region_copy_ahead, a REMOVE beyond", HELPER_COPY_AHEAD, REMOVE_BEYOND },
		{ "uffd__region_copy_ahead, the rest moved (DONTUNMAP)", HELPER_COPY_AHEAD,
		  REMAP_REST },
	};
	int failed, ran;

	failed = t_run_each_in_child(run_case, cases, sizeof(cases[0]),
				     sizeof(cases) / sizeof(cases[0]), 30000, &ran);
	if (failed)
		FAIL("%d case(s) failed (see above)", failed);
	if (!ran)
		SKIP("no case could run here");
	return T_EXIT_PASS;
}
