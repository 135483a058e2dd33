/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_pager_map_ex with UFFD_PAGER_FIXED puts the map where it is told,
 * replacing what the process had there (a reservation), as mmap's
 * MAP_FIXED: the map is at that address and reads the store; a second
 * fixed map over it is EEXIST, an unaligned address or no address EINVAL,
 * uffd_pager_map with the flag EINVAL, an unknown flag EINVAL; once the
 * first map is gone the same address takes a map again.
 */
#include <errno.h>
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"

#define NPAGES	32
#define LEN	(NPAGES * PAGE)

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, po, .buffer_bytes = 16 * PAGE);
	struct t_store *ts = t_store_new(LEN, 4);
	struct uffd_pager *p = t_pager_new(&po);
	char *want, *map;
	size_t i;

	/* The caller's reservation of the range. */
	want = mmap(NULL, 2 * LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(want != MAP_FAILED);
	{
		UFFD_OPTS(uffd_pager_map_opts, o, .len = LEN, .prot = PROT_READ,
			  .flags = UFFD_PAGER_FIXED, .addr = want + PAGE);
		map = uffd_pager_map_ex(p, &ts->store, &o);
		CHECK(map == want + PAGE);
		for (i = 0; i < NPAGES; i++)
			CHECK_EQ(*(volatile uint64_t *)(map + i * PAGE + 40),
				 t_word(i * PAGE + 40, 4));
		/* Over the first map, in part: refused, the map intact. */
		o.addr = want + 2 * PAGE;
		CHECK(!uffd_pager_map_ex(p, &ts->store, &o) && errno == EEXIST);
		CHECK_EQ(*(volatile uint64_t *)(map + 40), t_word(40, 4));
		o.addr = want + 100;
		CHECK(!uffd_pager_map_ex(p, &ts->store, &o) && errno == EINVAL);
		o.addr = NULL;
		CHECK(!uffd_pager_map_ex(p, &ts->store, &o) && errno == EINVAL);
		o.addr = want + PAGE;
		o.flags = UFFD_PAGER_FIXED | (1u << 30);
		CHECK(!uffd_pager_map_ex(p, &ts->store, &o) && errno == EINVAL);
		CHECK(!uffd_pager_map(p, &ts->store, 0, LEN, PROT_READ, UFFD_PAGER_FIXED, 0) &&
		      errno == EINVAL);
		CHECK(!uffd_pager_map_ex(p, &ts->store, NULL) && errno == EINVAL);
		CHECK_OK(uffd_pager_unmap(p, map));

		/* The address is free again. */
		o.flags = UFFD_PAGER_FIXED;
		o.off = 4 * PAGE;
		o.len = 8 * PAGE;
		map = uffd_pager_map_ex(p, &ts->store, &o);
		CHECK(map == want + PAGE);
		CHECK_EQ(*(volatile uint64_t *)(map + 8), t_word(4 * PAGE + 8, 4));
		CHECK_OK(uffd_pager_unmap(p, map));
	}
	CHECK_OK(uffd_pager_free(p));
	munmap(want, 2 * LEN);
	t_store_free(ts);
	return 0;
}
