/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client's writes to memory served from the shared page cache are its
 * own: client A, on demand, reads every page (each now maps the cache's
 * page), then writes half of them, writes pages it never touched before
 * (the write fault gets the cache's page, then a private copy), and gives
 * a range back with madvise(DONTNEED) (zero from then on, not the cache's
 * page again).  Client B, attached after all that, reads exactly the
 * image everywhere; A still reads its own writes, its zeros, and the
 * image elsewhere.
 */
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 256
#define WRITTEN (NPAGES / 2)		/* [0, WRITTEN) written after reading */
#define REMOVED 200			/* [REMOVED, REMOVED + 16) given back */
#define FRESH (NPAGES - 8)		/* [FRESH, NPAGES) written, never read */

static struct t_ps_image im;
static int a_done[2], b_done[2];

static bool all_bytes(const char *p, size_t len, char v)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void check_a(const char *mem)
{
	CHECK(all_bytes(mem, WRITTEN * PAGE, (char)0xa5));
	t_ps_check("A, unwritten", mem + WRITTEN * PAGE, WRITTEN, REMOVED - WRITTEN, im.seed);
	CHECK(all_bytes(mem + REMOVED * PAGE, 16 * PAGE, 0));
	t_ps_check("A, after the removed range", mem + (REMOVED + 16) * PAGE, REMOVED + 16,
		   FRESH - REMOVED - 16, im.seed);
	CHECK(all_bytes(mem + FRESH * PAGE, (NPAGES - FRESH) * PAGE, (char)0x5a));
}

static int client_a(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0);

	(void)arg;
	t_ps_check("A, read first", mem, 0, FRESH, im.seed);
	memset(mem, 0xa5, WRITTEN * PAGE);
	memset(mem + FRESH * PAGE, 0x5a, (NPAGES - FRESH) * PAGE);
	CHECK_OK(madvise(mem + REMOVED * PAGE, 16 * PAGE, MADV_DONTNEED));
	check_a(mem);
	CHECK_EQ(write(a_done[1], "x", 1), 1);
	t_ps_hear(b_done[0], 20000);
	check_a(mem);
	uffd_serve_detach(c, true);
	return 0;
}

static int client_b(void *arg)
{
	(void)arg;
	return t_ps_second_client(&im, a_done[0], b_done[1], "B");
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .shared_cache = true, .demand_only = true);
	struct uffd_serve_stats st;
	size_t data = 0;
	pid_t server, a, b;
	int i;

	t_require(UFFD_FEAT_MINOR_SHMEM);
	t_ps_make_image(&im, NPAGES, 23);
	for (i = 0; i < NPAGES; i++)
		data += i % 7 != 3;		/* t_ps_make_image()'s holes */
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(a_done));
	CHECK_OK(pipe(b_done));
	a = t_ps_spawn(client_a, NULL);
	b = t_ps_spawn(client_b, NULL);
	CHECK_EQ(t_ps_join(a, 30000), 0);
	CHECK_EQ(t_ps_join(b, 30000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 2);
	CHECK_EQ(st.errors, 0);
	CHECK_EQ(st.events[2], 1);		/* A's REMOVE */
	CHECK_EQ(st.cached, data);
	return 0;
}
