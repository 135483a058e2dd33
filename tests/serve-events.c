/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client's memory map changes while it is being served (on demand, so
 * pages really are missing when it does):
 *  - madvise(DONTNEED) of touched and untouched pages: zero from then on;
 *  - fork: the child is served too, from the parent's state at the fork
 *    (its removed pages are zero, its untouched pages the image's), and
 *    its writes stay its own;
 *  - mremap of untouched pages: they arrive at the new address, the
 *    image's (the pending work moved with them);
 *  - munmap: the rest goes on being served.
 * Then the client detaches keeping its memory: it finishes the restore
 * itself from what the server told it about those changes - the moved
 * pages where they are now, the removed ones zero - and the server counts
 * one event of each kind, and two UNMAPs: with EVENT_UNMAP negotiated the
 * kernel follows a moving mremap's REMAP with an UNMAP of the old range.
 */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 256

static struct t_ps_image im;

static void check_zero(const char *what, const char *p, size_t npages)
{
	static const char zero[PAGE];
	size_t i;

	for (i = 0; i < npages; i++)
		t_check_bytes(what, p + i * PAGE, zero, PAGE);
}

static int client(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach_forking(&im, 0, "touched");
	struct uffd_serve_client_stats st;
	char *mem = uffd_serve_client_addr(c, 0), *moved;
	pid_t child;
	int status;

	(void)arg;
	t_ps_check("touched", mem + 128 * PAGE, 128, 16, im.seed);
	CHECK_OK(madvise(mem + 128 * PAGE, 32 * PAGE, MADV_DONTNEED));
	check_zero("removed", mem + 128 * PAGE, 8);

	child = fork();
	CHECK(child >= 0);
	if (!child) {
		t_ps_check("child, untouched", mem + 32 * PAGE, 32, 32, im.seed);
		check_zero("child, removed", mem + 136 * PAGE, 24);
		t_ps_check("child, late", mem + 192 * PAGE, 192, 8, im.seed);
		memset(mem, 0xcc, PAGE);
		_exit(0);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	t_ps_check("parent after the child wrote", mem, 0, 1, im.seed);

	/* Move 64 untouched pages somewhere else. */
	moved = mmap(NULL, 64 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(moved != MAP_FAILED);
	CHECK(mremap(mem + 64 * PAGE, 64 * PAGE, 64 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		     moved) == moved);
	t_ps_check("moved, first touch", moved, 64, 16, im.seed);

	CHECK_OK(munmap(mem + 160 * PAGE, 32 * PAGE));
	t_ps_check("after munmap", mem + 192 * PAGE, 192, 32, im.seed);

	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(!st.done && !st.fallback);
	/* Finish here: the rest of each piece, wherever it is. */
	uffd_serve_detach(c, false);
	t_ps_check("after detach", mem, 0, 64, im.seed);
	t_ps_check("moved, after detach", moved, 64, 64, im.seed);
	check_zero("removed, after detach", mem + 128 * PAGE, 32);
	t_ps_check("last, after detach", mem + 192 * PAGE, 192, 64, im.seed);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	struct uffd_serve_stats st;
	pid_t server;
	int ret;

	t_ps_make_image(&im, NPAGES, 9);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	ret = t_ps_join(t_ps_spawn(client, NULL), 20000);
	t_ps_server_stop(server, &st);
	if (ret == T_EXIT_SKIP)
		return ret;
	CHECK_EQ(ret, 0);
	CHECK_EQ(st.accepted, 1);
	CHECK_EQ(st.gone, 1);		/* it detached before done */
	CHECK_EQ(st.events[0], 1);	/* fork */
	CHECK_EQ(st.events[1], 1);	/* remap */
	CHECK_EQ(st.events[2], 1);	/* remove */
	CHECK_EQ(st.events[3], 2);	/* the mremap's old range, the munmap */
	CHECK_EQ(st.errors, 0);
	return 0;
}
