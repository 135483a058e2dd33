/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The server of a shared page cache dies mid-restore (SIGKILL): the
 * client's fallback, which has no cache of its own, serves the rest of
 * its memory by copying from the image - MINOR faults on pages the dead
 * server's cache holds (another client read them all) as well as MISSING
 * ones - and the restore completes (wait() says 0, stats say fallback)
 * with every page exactly the image's.  The client had given a range back
 * with madvise(DONTNEED) before: once the restore is complete its regions
 * are a private mapping of the cache, so those pages read the image's
 * again (the kernel's rule for a private file mapping, documented in
 * uffd_serve_new(3)).
 */
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 512
#define TOUCHED 128
#define REMOVED 100		/* [REMOVED, REMOVED + 16) given back */

static struct t_ps_image im;
static int b_done[2], to_parent[2], to_child[2];

/* Every page into the cache. */
static int client_b(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach(&im, 0);

	(void)arg;
	t_ps_check("B", uffd_serve_client_addr(c, 0), 0, NPAGES, im.seed);
	uffd_serve_detach(c, true);
	CHECK_EQ(write(b_done[1], "x", 1), 1);
	return 0;
}

static int client_a(void *arg)
{
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c;
	char *mem;

	(void)arg;
	t_ps_hear(b_done[0], 10000);
	c = t_ps_attach(&im, 0);
	mem = uffd_serve_client_addr(c, 0);
	t_ps_check("before", mem, 0, TOUCHED, im.seed);
	CHECK_OK(madvise(mem + REMOVED * PAGE, 16 * PAGE, MADV_DONTNEED));
	/* madvise() returned once the server read the REMOVE; the server
	 * sends its note before it answers a later stats request, and the
	 * client applies frames in order: the fallback knows of the REMOVE. */
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK_EQ(write(to_parent[1], "x", 1), 1);
	t_ps_hear(to_child[0], 10000);			/* the server is dead */
	t_ps_check("after the kill, below the range given back", mem, 0, REMOVED, im.seed);
	t_ps_check("after the kill, above it", mem + (REMOVED + 16) * PAGE, REMOVED + 16,
		   NPAGES - REMOVED - 16, im.seed);
	CHECK_OK(uffd_serve_client_wait(c, 10000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.done && st.fallback);
	CHECK_EQ(st.errors, 0);
	t_ps_check("complete, the range given back", mem + REMOVED * PAGE, REMOVED, 16, im.seed);
	uffd_serve_detach(c, false);
	t_ps_check("after detach", mem, 0, NPAGES, im.seed);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .shared_cache = true, .demand_only = true);
	pid_t server, a, b;

	t_require(UFFD_FEAT_MINOR_SHMEM);
	t_ps_make_image(&im, NPAGES, 31);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(b_done));
	CHECK_OK(pipe(to_parent));
	CHECK_OK(pipe(to_child));
	b = t_ps_spawn(client_b, NULL);
	a = t_ps_spawn(client_a, NULL);
	CHECK_EQ(t_ps_join(b, 20000), 0);
	t_ps_hear(to_parent[0], 10000);
	t_ps_server_kill(server);
	CHECK_EQ(write(to_child[1], "x", 1), 1);
	CHECK_EQ(t_ps_join(a, 20000), 0);
	return 0;
}
