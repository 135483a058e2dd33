/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A store owned by a map (UFFD_PAGER_OWN_STORE: its unmap frees the store)
 * is in no other map of the pager: mapping it again - owned or not, at any
 * offset - and owning a store another map uses are refused with EBUSY,
 * and the caller keeps the store.  Without the check the second map read
 * the store after the first unmap freed it (AddressSanitizer: use after
 * free).  A store nobody owns may be mapped twice.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"

int main(void)
{
	struct uffd_store *owned = uffd_store_memory(NULL, 4 * PAGE);
	struct uffd_store *shared = uffd_store_memory(NULL, 4 * PAGE);
	struct uffd_pager *p;
	char *a, *b, *c;

	CHECK(owned && shared);
	p = uffd_pager_new(NULL);
	if (!p && errno == EOPNOTSUPP)
		SKIP("no userfaultfd write-protect");
	CHECK(p);

	a = uffd_pager_map(p, owned, 0, 4 * PAGE, PROT_READ | PROT_WRITE,
			   UFFD_PAGER_OWN_STORE, 0);
	CHECK(a);
	a[0] = 'a';
	errno = 0;
	CHECK(!uffd_pager_map(p, owned, 0, 4 * PAGE, PROT_READ, 0, 0));
	CHECK_EQ(errno, EBUSY);
	errno = 0;
	CHECK(!uffd_pager_map(p, owned, 2 * PAGE, 2 * PAGE, PROT_READ, UFFD_PAGER_OWN_STORE, 0));
	CHECK_EQ(errno, EBUSY);

	/* Two maps of one store nobody owns; then neither may take it. */
	b = uffd_pager_map(p, shared, 0, 4 * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	c = uffd_pager_map(p, shared, 0, 2 * PAGE, PROT_READ, 0, 0);
	CHECK(b && c);
	errno = 0;
	CHECK(!uffd_pager_map(p, shared, 0, PAGE, PROT_READ, UFFD_PAGER_OWN_STORE, 0));
	CHECK_EQ(errno, EBUSY);
	b[0] = 'b';
	CHECK_OK(uffd_pager_flush(p, b, 0));
	CHECK_EQ(c[0], 'b');

	/* The owner's unmap frees its store; nothing else reads it. */
	CHECK_OK(uffd_pager_unmap(p, a));
	CHECK_OK(uffd_pager_unmap(p, b));
	CHECK_OK(uffd_pager_unmap(p, c));
	/* Unmapped, the store is the caller's again: it may be owned. */
	a = uffd_pager_map(p, shared, 0, PAGE, PROT_READ, UFFD_PAGER_OWN_STORE, 0);
	CHECK(a);
	CHECK_EQ(a[0], 'b');
	CHECK_OK(uffd_pager_free(p));	/* frees shared with the map */
	return T_EXIT_PASS;
}
