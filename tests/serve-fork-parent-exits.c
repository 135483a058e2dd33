/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parent exits first: a client of a demand-only server forks and
 * exits at once, without a word to the server.  Its child has touched
 * only part of its memory.  The server sees the parent go (its pidfd)
 * and, before it lets go of the child, fills every page the child never
 * got - once the server closes the child's userfaultfd the kernel would
 * hand such a page out as a zero page.  The child sees its memory
 * unregistered (the server let go), the server is then killed, and every
 * page of the child is the image's: the ones it had, the ones it gave
 * back (zero), and the ones it never touched.
 */
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 256

static struct t_ps_image im;
static int up[2], down[2];

static int child_main(char *mem)
{
	static const char zero[PAGE];
	int i;

	t_ps_check("child, before", mem + 32 * PAGE, 32, 16, im.seed);
	CHECK_OK(madvise(mem + 64 * PAGE, 8 * PAGE, MADV_DONTNEED));
	/* The parent is gone; the server finishes this child, then lets go. */
	for (i = 0; i < 15000 && t_ps_registered(mem); i++)
		usleep(1000);
	CHECK(!t_ps_registered(mem));
	t_ps_say(up[1]);
	t_ps_hear(down[0], 15000);				/* the server is dead */
	t_ps_check("child, touched", mem, 0, 48, im.seed);
	t_ps_check("child, untouched", mem + 48 * PAGE, 48, 16, im.seed);
	for (i = 64; i < 72; i++)
		t_check_bytes("child, removed", mem + i * PAGE, zero, PAGE);
	t_ps_check("child, the rest", mem + 72 * PAGE, 72, NPAGES - 72, im.seed);
	return 0;
}

static int client(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach_forking(&im, 0, "parent");
	char *mem = uffd_serve_client_addr(c, 0);
	pid_t child;

	(void)arg;
	child = fork();
	CHECK(child >= 0);
	if (!child)
		_exit(child_main(mem));
	/* Gone, without detaching: the child is the server's alone. */
	_exit(0);
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	pid_t server;
	int ret;

	/* The client's child is reparented here, to be waited for. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	t_ps_make_image(&im, NPAGES, 21);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(up));
	CHECK_OK(pipe(down));
	ret = t_ps_join(t_ps_spawn(client, NULL), 10000);
	if (ret == T_EXIT_SKIP)
		return ret;
	CHECK_EQ(ret, 0);
	t_ps_hear(up[0], 15000);
	t_ps_server_kill(server);
	t_ps_say(down[1]);
	/* The grandchild: the only child of ours left. */
	for (ret = 0; ret < 10000; ret++) {
		int status;
		pid_t got = waitpid(-1, &status, WNOHANG);

		CHECK(got >= 0);
		if (got > 0) {
			CHECK(WIFEXITED(status));
			CHECK_EQ(WEXITSTATUS(status), 0);
			return 0;
		}
		usleep(1000);
	}
	FAIL("the client's child did not exit");
}
