/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Only allowed uids are served.  A client running as nobody (65534) is
 * refused with EACCES by a server that allows only its own user and root,
 * even through a socket file anyone may open: the server checks the
 * peer's credentials (SO_PEERCRED) before it reads a byte.  Once 65534 is
 * allowed, the same client is served exactly - through the unprivileged
 * path: a userfaultfd for user-mode faults only, without EVENT_FORK
 * (which needs CAP_SYS_PTRACE), with the events a server needs.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 128

static struct t_ps_image im;

static int refused(void *arg)
{
	UFFD_OPTS(uffd_serve_attach_opts, o, .socket_path = im.sock);

	(void)arg;
	CHECK(!uffd_serve_attach(&o));
	CHECK_EQ(errno, EACCES);
	return 0;
}

static int served(void *arg)
{
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0);

	(void)arg;
	t_ps_check("unprivileged", mem, 0, NPAGES, im.seed);
	CHECK_OK(uffd_serve_client_wait(c, 10000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(!(st.features & UFFD_F(UFFD_FEAT_EVENT_FORK)));
	CHECK(st.features & UFFD_F(UFFD_FEAT_EVENT_REMOVE));
	CHECK(st.features & UFFD_F(UFFD_FEAT_EVENT_REMAP));
	CHECK(st.features & UFFD_F(UFFD_FEAT_EVENT_UNMAP));
	uffd_serve_detach(c, true);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .socket_mode = 0666);
	uid_t nobody = 65534;
	struct uffd_serve_stats st;
	pid_t server;
	int ret;

	if (geteuid() != 0)
		SKIP("needs root to run a client as another user");
	t_ps_make_image(&im, NPAGES, 17);
	CHECK_OK(chmod(im.dir, 0711));		/* nobody reaches the socket */
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	ret = t_run_unprivileged(refused, NULL);
	if (ret == T_EXIT_SKIP)
		SKIP("cannot switch to uid 65534");
	CHECK_EQ(ret, 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.refused, 1);
	CHECK_EQ(st.accepted, 0);

	so.socket_mode = 0;			/* allowing another uid: 0666 */
	so.allow_uids = &nobody;
	so.nallow_uids = 1;
	server = t_ps_server_start(&so);
	ret = t_run_unprivileged(served, NULL);
	if (ret == T_EXIT_SKIP)
		SKIP("no userfaultfd for an unprivileged process here");
	CHECK_EQ(ret, 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 1);
	CHECK_EQ(st.done, 1);
	return 0;
}
