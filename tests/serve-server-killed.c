/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The server dies mid-restore (SIGKILL) and no client hangs.  Two clients
 * have touched part of their memory; one of them has a thread blocked on
 * a fault the server never read (the server was stopped first).  After the
 * kill:
 *  - the client with a fallback serves itself from the image: the blocked
 *    access completes, every page is exactly the image's, the restore
 *    completes (wait() says 0, stats say fallback);
 *  - the client told not to fall back gets SIGBUS on every page that was
 *    not in yet (poisoned), keeps the pages it had, and wait() says EIO.
 */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "lib/sigbus.h"

#define NPAGES 512
#define TOUCHED 64

static struct t_ps_image im;

struct sync {
	int to_parent[2], to_child[2];
};
static struct sync sy[2];

/* A word from the other side within 10 s (a failed peer says nothing). */
static int client_fallback(void *arg)
{
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0);
	struct t_access a;

	(void)arg;
	t_ps_check("before", mem, 0, TOUCHED, im.seed);
	t_ps_say(sy[0].to_parent[1]);
	t_ps_hear(sy[0].to_child[0], 10000);		/* the server is stopped */
	t_access_start(&a, mem + 300 * PAGE, false, 0);
	CHECK(!t_access_wait(&a, 100));	/* nobody answers it */
	t_ps_say(sy[0].to_parent[1]);
	t_ps_hear(sy[0].to_child[0], 10000);		/* the server is dead */
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_ps_check("the blocked page", mem + 300 * PAGE, 300, 1, im.seed);
	t_ps_check("after", mem, 0, NPAGES, im.seed);
	CHECK_OK(uffd_serve_client_wait(c, 10000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.done && st.fallback);
	CHECK_EQ(st.errors, 0);
	uffd_serve_detach(c, false);
	t_ps_check("after detach", mem, 0, NPAGES, im.seed);
	return 0;
}

static int client_poison(void *arg)
{
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c = t_ps_attach(&im, UFFD_SERVE_NO_FALLBACK);
	char *mem = uffd_serve_client_addr(c, 0), v;
	struct t_sigbus bus;
	size_t i;

	(void)arg;
	t_sigbus_catch();
	t_ps_check("before", mem, 0, TOUCHED, im.seed);
	t_ps_say(sy[1].to_parent[1]);
	t_ps_hear(sy[1].to_child[0], 10000);		/* the server is dead */
	CHECK_EQ(uffd_serve_client_wait(c, 5000), -EIO);
	for (i = TOUCHED; i < NPAGES; i += 17) {
		if (!t_access_catching_sigbus(mem + i * PAGE, false, &v, &bus))
			FAIL("page %zu read without SIGBUS", i);
		CHECK_EQ(bus.addr, mem + i * PAGE);
	}
	t_ps_check("pages it had", mem, 0, TOUCHED, im.seed);
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.fallback && !st.done);
	uffd_serve_detach(c, true);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	pid_t server, a, b;
	int i, status;

	t_require(UFFD_FEAT_POISON);
	t_ps_make_image(&im, NPAGES, 13);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	for (i = 0; i < 2; i++) {
		CHECK_OK(pipe(sy[i].to_parent));
		CHECK_OK(pipe(sy[i].to_child));
	}
	a = t_ps_spawn(client_fallback, NULL);
	b = t_ps_spawn(client_poison, NULL);
	t_ps_hear(sy[0].to_parent[0], 10000);
	t_ps_hear(sy[1].to_parent[0], 10000);
	CHECK_OK(kill(server, SIGSTOP));
	/* Stopped for sure (kill() does not wait): none of its threads runs. */
	CHECK_EQ(waitpid(server, &status, WUNTRACED), server);
	CHECK(WIFSTOPPED(status));
	t_ps_say(sy[0].to_child[1]);
	t_ps_hear(sy[0].to_parent[0], 10000);		/* a fault is pending */
	t_ps_server_kill(server);
	t_ps_say(sy[0].to_child[1]);
	t_ps_say(sy[1].to_child[1]);
	CHECK_EQ(t_ps_join(a, 20000), 0);
	CHECK_EQ(t_ps_join(b, 20000), 0);
	return 0;
}
