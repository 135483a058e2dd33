/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mremap(MREMAP_DONTUNMAP) of a region the runtime serves: the REMAP
 * message looks like any other (it carries no flags), so the region moves
 * to the new address, while the kernel leaves the old range mapped, empty
 * and still registered with the userfaultfd - in no region.  A fault there
 * used to be woken and come back forever (a thread stuck for good, a
 * servicing thread spinning).  Now it gets what the kernel gives memory
 * no one serves: a zero page.
 *
 *  (a) page 0 was served before the move: it travels with the mapping
 *      and does not fault again at the new address;
 *  (b) page 1 at the new address is served by the region's callback, for
 *      the new address (the region moved);
 *  (c) pages 0 and 1 at the old address read zeros within 2 s each, with
 *      no callback run, and a write there sticks;
 *  (d) the handler stops cleanly, and the old range can be unmapped.
 *
 * The missing callback fills a page with its own address, so the contents
 * prove which address was served.
 */
#include <sys/mman.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/mm-job.h"

#define NPAGES 4

static int served;	/* atomic: callbacks run */

static int fill_with_address(struct uffd_fault *f)
{
	uint64_t page[PAGE / 8];
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		page[i] = (uintptr_t)f->addr;
	__atomic_add_fetch(&served, 1, __ATOMIC_RELAXED);
	return uffd_fault_copy(f, page, PAGE);
}

static const struct uffd_region_ops ops = { .missing = fill_with_address };

/* Read the first word at p from another thread, 2 s deadline. */
static uint64_t read_word(char *p)
{
	struct t_access a;

	t_access_start(&a, p, false, 0);
	if (!t_access_wait(&a, 2000))
		FAIL("read at %p not answered within 2 s", (void *)p);
	t_access_join(&a);
	return *(volatile uint64_t *)p;
}

static bool filled_with(const char *p, uint64_t want)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		if (w[i] != want)
			return false;
	return true;
}

int main(void)
{
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2);
	struct uffd_handler *h;
	struct uffd_region *r;
	struct t_mm_job j;
	struct uffd u;
	char *old, *to;

	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMAP) | UFFD_F(UFFD_FEAT_EVENT_UNMAP) |
		   UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	old = t_map_anon(NPAGES * PAGE);
	to = mmap(NULL, NPAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED);
	r = uffd_handler_add(h, old, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL);
	CHECK(r);
	CHECK_OK(uffd_handler_start(h));

	CHECK_EQ(read_word(old), (uintptr_t)old);
	CHECK_EQ(__atomic_load_n(&served, __ATOMIC_RELAXED), 1);

	t_mm_job_start(&j, T_MM_MREMAP_DONTUNMAP, old, NPAGES * PAGE, to);
	if (!t_mm_job_wait(&j, 2000))
		FAIL("mremap blocked for 2 s: REMAP not read?");
	t_mm_job_join(&j);
	if (j.err == EINVAL)
		SKIP("mremap(MREMAP_DONTUNMAP) of an anonymous mapping: EINVAL (kernel before 5.7)");
	CHECK_EQ(j.err, 0);
	CHECK(j.res == to);
	/* mremap returns once its REMAP is read, maybe before the table has
	 * it (uffd_handler_sync, handler.h). */
	CHECK_OK(uffd_handler_sync(h));
	CHECK(uffd_region_addr(r) == to);

	/* (a) */
	CHECK(filled_with(to, (uintptr_t)old));
	CHECK_EQ(__atomic_load_n(&served, __ATOMIC_RELAXED), 1);
	/* (b) */
	CHECK_EQ(read_word(to + PAGE), (uintptr_t)(to + PAGE));
	CHECK(filled_with(to + PAGE, (uintptr_t)(to + PAGE)));
	CHECK_EQ(__atomic_load_n(&served, __ATOMIC_RELAXED), 2);
	/* (c) */
	CHECK_EQ(read_word(old), 0);
	CHECK(filled_with(old, 0));
	CHECK_EQ(read_word(old + PAGE), 0);
	CHECK(filled_with(old + PAGE, 0));
	CHECK_EQ(__atomic_load_n(&served, __ATOMIC_RELAXED), 2);
	memset(old + PAGE, 0x5a, PAGE);
	CHECK(filled_with(old + PAGE, 0x5a5a5a5a5a5a5a5aull));
	CHECK(filled_with(to + PAGE, (uintptr_t)(to + PAGE)));

	/* (d) */
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	CHECK_OK(munmap(old, NPAGES * PAGE));
	CHECK_OK(munmap(to, NPAGES * PAGE));
	return T_EXIT_PASS;
}
