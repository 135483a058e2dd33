/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A graceful stop (uffd_serve_free()) with clients still being served on
 * demand leaves none of them hanging and none of them reading zeros:
 *  - a Firecracker VM, which has no fallback and keeps its own reference
 *    to its userfaultfd, is filled completely - every page it never got -
 *    and its memory unregistered before the server lets go: its memory is
 *    then plain anonymous memory, exactly the source's;
 *  - a libuffd client's forked child is finished (filled, unregistered)
 *    the same way, and the client itself goes on from its fallback: every
 *    page of both exact, the client's restore complete.
 */
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "util/sock.h"

#define NPAGES 256

static struct t_ps_image im;
/* per process: up to the test, down from it */
static int up[2][2], down[2][2];
static int cup[2], cdown[2];

/* A Firecracker VMM: one region, the JSON with the fd, socket closed. */
static int vm(void *arg)
{
	struct sockaddr_un addr;
	struct uffd u;
	char json[512], *mem;
	int n, sock;

	(void)arg;
	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	mem = t_map_anon(NPAGES * PAGE);
	CHECK_OK(uffd_register(&u, mem, NPAGES * PAGE, UFFD_REG_MISSING, NULL));
	n = snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,\"size\":%lu,"
		     "\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096}]",
		     (unsigned long long)(uintptr_t)mem, NPAGES * PAGE);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(sock >= 0);
	CHECK_OK(uffd__unix_addr(&addr, im.sock));
	CHECK_OK(connect(sock, (struct sockaddr *)&addr, sizeof(addr)));
	CHECK_OK(uffd__send_with_fd(sock, json, n, u.fd));
	close(sock);
	t_ps_check("vm, before", mem, 0, 16, im.seed);
	t_ps_say(up[0][1]);
	t_ps_hear(down[0][0], 15000);			/* the server stopped */
	/* Let go, whole: nothing is registered, nothing waits for anyone. */
	CHECK(!t_ps_registered(mem));
	t_ps_check("vm, after the stop", mem, 0, NPAGES, im.seed);
	return 0;
}

static int child_main(char *mem)
{
	int i;

	t_ps_check("child, before", mem + 32 * PAGE, 32, 16, im.seed);
	t_ps_say(cup[1]);
	t_ps_hear(cdown[0], 15000);
	for (i = 0; i < 10000 && t_ps_registered(mem); i++)
		usleep(1000);
	CHECK(!t_ps_registered(mem));
	t_ps_check("child, after the stop", mem, 0, NPAGES, im.seed);
	return 0;
}

static int client(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach_forking(&im, 0, "client, before");
	char *mem = uffd_serve_client_addr(c, 0);
	pid_t child;

	(void)arg;
	CHECK_OK(pipe(cup));
	CHECK_OK(pipe(cdown));
	child = fork();
	CHECK(child >= 0);
	if (!child)
		_exit(child_main(mem));
	t_ps_hear(cup[0], 15000);
	t_ps_say(up[1][1]);
	t_ps_hear(down[1][0], 15000);			/* the server stopped */
	t_ps_say(cdown[1]);
	CHECK_EQ(t_wait_child(child, 15000), 0);
	t_ps_check("client, after the stop", mem, 0, NPAGES, im.seed);
	t_ps_finish_alone(c);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	struct uffd_serve_stats st;
	pid_t server, a, b;
	int i, ret;

	t_ps_make_image(&im, NPAGES, 23);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	for (i = 0; i < 2; i++) {
		CHECK_OK(pipe(up[i]));
		CHECK_OK(pipe(down[i]));
	}
	a = t_ps_spawn(vm, NULL);
	b = t_ps_spawn(client, NULL);
	t_ps_hear(up[0][0], 15000);
	t_ps_hear(up[1][0], 15000);
	t_ps_server_stop_now(server, &st);
	CHECK_EQ(st.accepted, 2);
	t_ps_say(down[0][1]);
	t_ps_say(down[1][1]);
	CHECK_EQ(t_ps_join(a, 15000), 0);
	ret = t_ps_join(b, 20000);
	if (ret == T_EXIT_SKIP)
		return ret;
	CHECK_EQ(ret, 0);
	return 0;
}
