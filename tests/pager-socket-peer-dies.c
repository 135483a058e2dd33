/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pager over another process's memory (the socket store), and that
 * process going away: pages read and written through the map reach the
 * server (a second client reads them back after a flush), and once the
 * server is killed a page not yet read raises SIGBUS at its address within
 * the store's timeout, a flush of a dirty page returns -EIO, the resident
 * pages still read, and unmap and free return without hanging.
 */
#include <sys/mman.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/sigbus.h"
#include "lib/test-store.h"

#define LEN	(64 * PAGE)

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 16 * PAGE,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	const char *path = t_img_path(0, t_img_dir(), "mem.sock");
	static char model[LEN], page[PAGE];
	struct uffd_store *s, *other;
	struct uffd_pager_stats st;
	struct t_sigbus bus;
	struct uffd_pager *p;
	pid_t server;
	char v, *map;
	int i;

	t_sigbus_catch();
	/* (The server is forked before the pager's threads exist.) */
	server = t_serve_start(path, LEN, 3);
	p = t_pager_new(&o);
	s = uffd_store_socket(path);
	CHECK(s);
	map = uffd_pager_map(p, s, 0, LEN, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	CHECK(map);

	/* Reads and writes through the map, under eviction (16-page buffer). */
	t_fill(model, LEN, 3);
	t_check_bytes("first 32 pages", map, model, 32 * PAGE);
	for (i = 0; i < 32; i += 3) {
		map[i * PAGE + 1] = 'w';
		model[i * PAGE + 1] = 'w';
	}
	CHECK_OK(uffd_pager_flush(p, map, 0));
	other = uffd_store_socket(path);
	CHECK(other);
	CHECK_EQ(other->ops->read(other->data, page, PAGE, 30 * PAGE), PAGE);
	t_check_bytes("page 30 seen by another client", page, model + 30 * PAGE, PAGE);
	uffd_store_free(other);

	/* The server goes away. */
	map[31 * PAGE + 2] = 'x';		/* resident, dirty */
	t_serve_kill(server);
	CHECK(t_access_catching_sigbus(map + 40 * PAGE + 5, false, &v, &bus));
	CHECK_EQ((uintptr_t)bus.addr & ~(PAGE - 1), (uintptr_t)(map + 40 * PAGE));
	CHECK_EQ(map[31 * PAGE + 2], 'x');
	CHECK_EQ(uffd_pager_flush(p, map + 31 * PAGE, PAGE), -EIO);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.read_errors >= 1);
	CHECK(st.write_errors >= 1);
	CHECK_EQ(uffd_pager_unmap(p, map), -EIO);
	CHECK_OK(uffd_pager_free(p));
	return 0;
}
