/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Many clients restored from one image at once: eight processes attach
 * together, each touches the pages in an order of its own while the
 * others do, and each ends with exactly the image's memory; the server
 * counts eight clients restored and every page of every client served
 * once (by a fault or by the fill).
 */
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 1024
#define CLIENTS 8

static struct t_ps_image im;
static int go[2];

static int client(void *arg)
{
	size_t step = 1 + 2 * (uintptr_t)arg, i;	/* odd: a permutation */
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c;
	char *mem, b;

	close(go[1]);
	CHECK_EQ(read(go[0], &b, 1), 0);	/* all start when the pipe closes */
	c = t_ps_attach(&im, 0);
	mem = uffd_serve_client_addr(c, 0);
	for (i = 0; i < NPAGES; i++) {
		size_t p = (i * step + (uintptr_t)arg * 97) % NPAGES;

		t_ps_check("touched", mem + p * PAGE, p, 1, im.seed);
	}
	CHECK_OK(uffd_serve_client_wait(c, 15000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.done && !st.fallback);
	CHECK_EQ(st.faults + st.filled, NPAGES);
	t_ps_check("after done", mem, 0, NPAGES, im.seed);
	uffd_serve_detach(c, true);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so);
	struct uffd_serve_stats st;
	pid_t server, pids[CLIENTS];
	int i;

	t_ps_make_image(&im, NPAGES, 5);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(go));
	for (i = 0; i < CLIENTS; i++)
		pids[i] = t_ps_spawn(client, (void *)(uintptr_t)i);
	close(go[0]);
	close(go[1]);
	for (i = 0; i < CLIENTS; i++)
		CHECK_EQ(t_ps_join(pids[i], 30000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, CLIENTS);
	CHECK_EQ(st.done, CLIENTS);
	CHECK_EQ(st.gone, 0);
	CHECK_EQ(st.faults + st.filled, CLIENTS * NPAGES);
	CHECK_EQ(st.errors, 0);
	return 0;
}
