/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server restores a client exactly: a client attaches with
 * libuffd's handshake, its region appears at the image's address, every
 * page it touches (in an order of its own) holds the image's bytes (holes
 * read as zeros), the background fill brings in the rest until the server
 * says done, and the counters add up: every page was served once, by a
 * fault or by the fill.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 512

static struct t_ps_image im;

static int client(void *arg)
{
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem;
	size_t i;

	(void)arg;
	CHECK_EQ(uffd_serve_client_regions(c), 1);
	mem = uffd_serve_client_addr(c, 0);
	CHECK_EQ((uintptr_t)mem, T_PS_ADDR);
	CHECK_EQ(uffd_serve_client_len(c, 0), NPAGES * PAGE);
	/* Touch a strided order: every page once, not in address order. */
	for (i = 0; i < NPAGES; i++) {
		size_t p = (i * 37) % NPAGES;

		t_ps_check("touched", mem + p * PAGE, p, 1, im.seed);
	}
	CHECK_OK(uffd_serve_client_wait(c, 10000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.done);
	CHECK(!st.fallback);
	CHECK_EQ(st.pages, NPAGES);
	CHECK_EQ(st.faults + st.filled, NPAGES);
	CHECK_EQ(st.errors, 0);
	CHECK(st.features & UFFD_F(UFFD_FEAT_EVENT_REMOVE));
	t_ps_check("after done", mem, 0, NPAGES, im.seed);
	uffd_serve_detach(c, false);
	/* Detached after done: the memory stays, exactly. */
	t_ps_check("after detach", mem, 0, NPAGES, im.seed);
	return 0;
}

int main(int argc, char **argv)
{
	struct uffd_serve_stats st;
	pid_t server, pid;

	if (argc == 3 && !strcmp(argv[1], "--make")) {
		t_ps_make_image_in(&im, argv[2], NPAGES, 7);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--client")) {
		im.seed = 7;
		snprintf(im.sock, sizeof(im.sock), "%s", argv[2]);
		return client(NULL);
	}
	t_ps_make_image(&im, NPAGES, 7);
	{
		UFFD_OPTS(uffd_serve_opts, o, .socket_path = im.sock, .image = im.path);
		server = t_ps_server_start(&o);
	}
	pid = t_ps_spawn(client, NULL);
	CHECK_EQ(t_ps_join(pid, 20000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 1);
	CHECK_EQ(st.refused, 0);
	CHECK_EQ(st.done, 1);
	CHECK_EQ(st.faults + st.filled, NPAGES);
	CHECK_EQ(st.errors, 0);
	return 0;
}
