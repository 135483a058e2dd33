/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a store's failure looks like to the program, and bad input:
 * - a page the store can not read raises SIGBUS at that page (and stays
 *   so), on_error is told, and the neighbours still read fine;
 * - the end of the store: the partial last page reads as data then zeros,
 *   a page wholly past the end raises SIGBUS (both as mmap of a file does);
 * - a failed write-back: flush returns -EIO, stats.write_errors counts it,
 *   the page stays dirty and a later flush writes it;
 * - unaligned, read-only or unknown input gives EINVAL / EACCES.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/sigbus.h"
#include "lib/test-store.h"

#define NPAGES 8

static int errors_seen;
static void *error_addr;
static int error_code;

static void on_error(void *addr, size_t len, int err, void *arg)
{
	__atomic_store_n(&error_addr, addr, __ATOMIC_SEQ_CST);
	__atomic_store_n(&error_code, err, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&errors_seen, 1, __ATOMIC_SEQ_CST);
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 1 << 20, .on_error = on_error,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	/* 5.5 pages of data under a map of 8 pages. */
	struct t_store *ts = t_store_new(5 * PAGE + PAGE / 2, 11);
	struct uffd_store ro = ts->store;
	struct uffd_store_ops ro_ops = *ts->store.ops;
	struct uffd_pager_stats st;
	struct t_sigbus bus;
	struct uffd_pager *p;
	char v, *map;
	size_t i;

	t_sigbus_catch();
	p = t_pager_new(&o);

	/* bad input */
	errno = 0;
	CHECK(!uffd_pager_map(p, &ts->store, 100, NPAGES * PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE + 1, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ, 0, 6000));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_pager_map(p, &ts->store, 0, 0, PROT_READ, 0, 0));
	CHECK_EQ(errno, EINVAL);
	CHECK(!uffd_pager_map(p, &ts->store, 0, PAGE, PROT_READ | PROT_EXEC, 0, 0));
	CHECK_EQ(errno, EINVAL);
	ro_ops.write = NULL;
	ro.ops = &ro_ops;
	CHECK(!uffd_pager_map(p, &ro, 0, PAGE, PROT_READ | PROT_WRITE, 0, 0));
	CHECK_EQ(errno, EACCES);
	CHECK_EQ(uffd_pager_unmap(p, &v), -EINVAL);
	CHECK_EQ(uffd_pager_flush(p, &v, 1), -EINVAL);
	CHECK_EQ(uffd_pager_evict(p, &v, 1), -EINVAL);

	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	CHECK_EQ(uffd_pager_unmap(p, map + PAGE), -EINVAL);	/* not its start */
	CHECK_EQ(uffd_pager_prefetch(p, &(struct uffd_pager_range){ map, 0 }, 1, 0), -EINVAL);

	/* A read error: SIGBUS at that page, on_error told, sticky. */
	__atomic_store_n(&ts->fail_read_page, 2, __ATOMIC_SEQ_CST);
	CHECK(t_access_catching_sigbus(map + 2 * PAGE + 5, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr & ~(PAGE - 1), (uintptr_t)(map + 2 * PAGE));
	CHECK_EQ(__atomic_load_n(&errors_seen, __ATOMIC_SEQ_CST), 1);
	CHECK_EQ((uintptr_t)__atomic_load_n(&error_addr, __ATOMIC_SEQ_CST),
		 (uintptr_t)(map + 2 * PAGE));
	CHECK_EQ(__atomic_load_n(&error_code, __ATOMIC_SEQ_CST), -EIO);
	__atomic_store_n(&ts->fail_read_page, -1, __ATOMIC_SEQ_CST);
	CHECK(t_access_catching_sigbus(map + 2 * PAGE, false, &v, &bus));
	/* Its neighbours read. */
	CHECK_EQ(*(uint64_t *)(map + PAGE), t_word(PAGE, 11));
	CHECK_EQ(*(uint64_t *)(map + 3 * PAGE), t_word(3 * PAGE, 11));
	/* Evicting the poisoned page lets it be read again. */
	CHECK_OK(uffd_pager_evict(p, map + 2 * PAGE, PAGE));
	CHECK_EQ(*(uint64_t *)(map + 2 * PAGE + 8), t_word(2 * PAGE + 8, 11));

	/* The end of the store. */
	CHECK_EQ(*(uint64_t *)(map + 5 * PAGE + 8), t_word(5 * PAGE + 8, 11));
	CHECK(t_is_zero(map + 5 * PAGE + PAGE / 2, PAGE / 2));
	CHECK(t_access_catching_sigbus(map + 6 * PAGE, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr & ~(PAGE - 1), (uintptr_t)(map + 6 * PAGE));

	/* A failed write-back. */
	map[PAGE] = 'x';
	map[5 * PAGE + 1] = 'y';
	__atomic_store_n(&ts->fail_writes, 1, __ATOMIC_SEQ_CST);
	CHECK_EQ(uffd_pager_flush(p, map, 0), -EIO);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.write_errors >= 1);
	CHECK(ts->data[PAGE] != 'x');
	__atomic_store_n(&ts->fail_writes, 0, __ATOMIC_SEQ_CST);
	CHECK_OK(uffd_pager_flush(p, map, 0));
	CHECK_EQ(ts->data[PAGE], 'x');
	CHECK_EQ(ts->data[5 * PAGE + 1], 'y');
	/* Written back clipped to the store's end, once per dirty page. */
	CHECK_EQ(t_writes(ts, 1), 1);
	CHECK_EQ(t_writes(ts, 5), 1);
	for (i = 0; i < 5; i++)
		if (i != 1)
			CHECK_EQ(t_writes(ts, i), 0);
	/* Clean now: unmap writes nothing more. */
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_EQ(t_store_writes(ts), 2);
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return 0;
}
