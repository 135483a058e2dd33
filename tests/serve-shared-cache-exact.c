/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A server with a shared page cache (uffd_serve_opts.shared_cache): three
 * clients attach at once and each touches the pages in an order of its
 * own; each has its region mapped from the cache (a private mapping of
 * the server's memfd, not anonymous memory) and ends with exactly the
 * image's memory, every page served once to it.  One of them forks while
 * the restore goes on, and its child - whose faults come on the child's
 * own userfaultfd - reads exactly the image too.  A fourth client that
 * declines the cache (UFFD_SERVE_PRIVATE) gets anonymous memory, exact.
 * The cache holds each of the image's data pages exactly once: the
 * server counts them, however many clients asked.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 1024
#define CLIENTS 3

static struct t_ps_image im;
static int go[2];

/* The line of /proc/self/maps that maps addr: whether it names the cache. */
static bool mapped_from_cache(const void *addr)
{
	char line[512], want[32];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	CHECK(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)))
			found = strstr(line, "memfd:uffd-serve-cache") != NULL;
	fclose(f);
	return found;
}

static int client(void *arg)
{
	size_t step = 1 + 2 * (uintptr_t)arg, i;	/* odd: a permutation */
	bool private = (uintptr_t)arg == CLIENTS;
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c;
	pid_t child = -1;
	int status;
	char *mem, b;

	close(go[1]);
	CHECK_EQ(read(go[0], &b, 1), 0);	/* all start when the pipe closes */
	c = t_ps_attach(&im, private ? UFFD_SERVE_PRIVATE : 0);
	mem = uffd_serve_client_addr(c, 0);
	CHECK_EQ(mapped_from_cache(mem), !private);
	CHECK(uffd_serve_client_stats(c, &st) == 0 &&
	      (st.features & UFFD_F(UFFD_FEAT_MINOR_SHMEM)) == (private ? 0 : UFFD_F(UFFD_FEAT_MINOR_SHMEM)));
	for (i = 0; i < NPAGES; i++) {
		size_t p = (i * step + (uintptr_t)arg * 97) % NPAGES;

		t_ps_check("touched", mem + p * PAGE, p, 1, im.seed);
		if (i == NPAGES / 4 && arg == 0) {
			fflush(NULL);
			child = fork();
			CHECK(child >= 0);
			if (!child) {
				t_ps_check("in the forked child", mem, 0, NPAGES, im.seed);
				_exit(0);
			}
		}
	}
	CHECK_OK(uffd_serve_client_wait(c, 15000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.done && !st.fallback);
	/* (the forking client's counts include what its child was served) */
	if (arg != 0)
		CHECK_EQ(st.faults + st.filled, NPAGES);
	t_ps_check("after done", mem, 0, NPAGES, im.seed);
	if (child > 0) {
		CHECK_EQ(waitpid(child, &status, 0), child);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	uffd_serve_detach(c, true);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .shared_cache = true);
	struct uffd_serve_stats st;
	pid_t server, pids[CLIENTS + 1];
	size_t data = 0;
	int i;

	t_require(UFFD_FEAT_MINOR_SHMEM);
	t_ps_make_image(&im, NPAGES, 21);
	for (i = 0; i < NPAGES; i++)
		data += i % 7 != 3;		/* t_ps_make_image()'s holes */
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(go));
	for (i = 0; i <= CLIENTS; i++)
		pids[i] = t_ps_spawn(client, (void *)(uintptr_t)i);
	close(go[0]);
	close(go[1]);
	for (i = 0; i <= CLIENTS; i++)
		CHECK_EQ(t_ps_join(pids[i], 30000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, CLIENTS + 1);
	CHECK_EQ(st.done, CLIENTS + 1);
	CHECK_EQ(st.errors, 0);
	CHECK_EQ(st.cached, data);
	return 0;
}
