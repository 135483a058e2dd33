/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One stuck client never delays another.  While one connection says
 * nothing, another has sent half a hello (both with 30 s left before the
 * handshake deadline), and a third client is stopped (SIGSTOP) in the
 * middle of its restore, a fourth client attaches and is restored
 * completely and exactly; the stopped one, continued, is exact too; once
 * they close, the half hello is refused and the connection that never
 * said a word is let go uncounted (a probe, not a client), and stopping
 * the server does not wait for anything.
 */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "serve/proto.h"
#include "util/sock.h"

#define NPAGES 1024

static struct t_ps_image im;
static int ready[2];

static int client(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0);

	t_ps_check("first pages", mem, 0, 8, im.seed);
	if (arg)
		CHECK_EQ(write(ready[1], "x", 1), 1);	/* then stopped here */
	t_ps_check("all", mem, 0, NPAGES, im.seed);
	CHECK_OK(uffd_serve_client_wait(c, 20000));
	t_ps_check("after done", mem, 0, NPAGES, im.seed);
	uffd_serve_detach(c, true);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .handshake_ms = 30000);
	struct uffd_serve_stats st;
	uint8_t hello[SERVE_HDR];
	pid_t server, stuck, d;
	int silent, half;
	char c;

	t_ps_make_image(&im, NPAGES, 23);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	silent = t_ps_connect(&im);
	half = t_ps_connect(&im);
	uffd__serve_frame_put(hello, SF_HELLO, NULL, 0);
	CHECK_EQ(send(half, hello, 10, 0), 10);
	CHECK_OK(pipe(ready));
	stuck = t_ps_spawn(client, (void *)1);
	close(ready[1]);
	/* (A client that failed closes its end: no wait without end.) */
	CHECK_EQ(read(ready[0], &c, 1), 1);
	CHECK_OK(kill(stuck, SIGSTOP));

	d = t_ps_spawn(client, NULL);
	CHECK_EQ(t_ps_join(d, 10000), 0);

	CHECK_OK(kill(stuck, SIGCONT));
	CHECK_EQ(t_ps_join(stuck, 10000), 0);
	close(silent);
	close(half);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 2);
	CHECK_EQ(st.done, 2);
	CHECK_EQ(st.refused, 1);
	return 0;
}
