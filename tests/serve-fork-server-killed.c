/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A forked child's memory stays exact when the server dies (SIGKILL): the
 * client keeps the child's userfaultfd (the server passed it on with the
 * fork) and its fallback serves the child too.
 *
 * A client of a demand-only server touches part of its memory and forks;
 * the child touches more, gives some pages back (madvise DONTNEED) and
 * moves others (mremap); the server is killed; then the child touches
 * everything: every page is the image's - the removed ones zero, the
 * moved ones where they are now - and never a zero page for one it never
 * got.  The parent's memory is exact too.
 *
 * A second client says UFFD_SERVE_NO_FALLBACK: its child gets SIGBUS on
 * a page it never got once the server is dead (poisoned), never zeros,
 * and keeps the pages it had.
 */
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "lib/sigbus.h"

#define NPAGES 256

static struct t_ps_image im;
/* test <-> client, client <-> its child */
static int up[2], down[2], cup[2], cdown[2];

static void check_zero(const char *what, const char *p, size_t npages)
{
	static const char zero[PAGE];
	size_t i;

	for (i = 0; i < npages; i++)
		t_check_bytes(what, p + i * PAGE, zero, PAGE);
}

/* The child of the client with a fallback. */
static int child_exact(char *mem)
{
	char *moved;

	t_ps_check("child, before", mem + 32 * PAGE, 32, 32, im.seed);
	CHECK_OK(madvise(mem + 64 * PAGE, 16 * PAGE, MADV_DONTNEED));
	moved = mmap(NULL, 32 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(moved != MAP_FAILED);
	CHECK(mremap(mem + 96 * PAGE, 32 * PAGE, 32 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		     moved) == moved);
	t_ps_check("child, moved, before", moved, 96, 4, im.seed);
	t_ps_say(cup[1]);
	t_ps_hear(cdown[0], 10000);				/* the server is dead */
	t_ps_check("child, touched before", mem, 0, 64, im.seed);
	check_zero("child, removed", mem + 64 * PAGE, 16);
	t_ps_check("child, after the removed", mem + 80 * PAGE, 80, 16, im.seed);
	t_ps_check("child, moved", moved, 96, 32, im.seed);
	t_ps_check("child, the rest", mem + 128 * PAGE, 128, NPAGES - 128, im.seed);
	return 0;
}

/* The child of the client without one: SIGBUS, never zeros. */
static int child_poisoned(char *mem)
{
	struct t_sigbus bus;
	char v;
	size_t i;

	t_sigbus_catch();
	t_ps_check("child, before", mem + 32 * PAGE, 32, 32, im.seed);
	t_ps_say(cup[1]);
	t_ps_hear(cdown[0], 10000);				/* the server is dead */
	for (i = 64; i < NPAGES; i += 13) {
		if (!t_access_catching_sigbus(mem + i * PAGE, false, &v, &bus))
			FAIL("child: page %zu read without SIGBUS (0x%02x)", i, v & 0xff);
		CHECK_EQ(bus.addr, mem + i * PAGE);
	}
	t_ps_check("child, pages it had", mem, 0, 64, im.seed);
	return 0;
}

static int client(void *arg)
{
	unsigned flags = (unsigned)(uintptr_t)arg;
	struct uffd_serve_client *c = t_ps_attach_forking(&im, flags, "parent, before");
	char *mem = uffd_serve_client_addr(c, 0);
	pid_t child;

	CHECK_OK(pipe(cup));
	CHECK_OK(pipe(cdown));
	child = fork();
	CHECK(child >= 0);
	if (!child)
		_exit(flags ? child_poisoned(mem) : child_exact(mem));
	t_ps_hear(cup[0], 10000);
	t_ps_say(up[1]);
	t_ps_hear(down[0], 10000);				/* the server is dead */
	t_ps_say(cdown[1]);
	CHECK_EQ(t_wait_child(child, 15000), 0);
	if (flags) {
		CHECK_EQ(uffd_serve_client_wait(c, 5000), -EIO);
		uffd_serve_detach(c, true);
		return 0;
	}
	t_ps_check("parent, after", mem, 0, NPAGES, im.seed);
	t_ps_finish_alone(c);
	return 0;
}

static int run(unsigned flags)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	pid_t server, a;

	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(up));
	CHECK_OK(pipe(down));
	a = t_ps_spawn(client, (void *)(uintptr_t)flags);
	t_ps_hear(up[0], 10000);
	t_ps_server_kill(server);
	t_ps_say(down[1]);
	close(up[0]), close(up[1]), close(down[0]), close(down[1]);
	return t_ps_join(a, 30000);
}

int main(void)
{
	int ret;

	t_require(UFFD_FEAT_POISON);
	t_ps_make_image(&im, NPAGES, 17);
	ret = run(0);
	if (ret == T_EXIT_SKIP)
		return ret;
	CHECK_EQ(ret, 0);
	CHECK_EQ(run(UFFD_SERVE_NO_FALLBACK), 0);
	return 0;
}
