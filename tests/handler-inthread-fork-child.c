// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In a fork() child, in-thread regions are plain memory (uffd/handler.h):
 * in-thread mode refuses EVENT_FORK, so the kernel drops the child's
 * registration, and the SIGBUS handler the child inherits must not run the
 * parent's callbacks, whose userfaultfd acts on the parent's memory.  The
 * child reads zeros where the parent's callback would have copied a
 * pattern, and writes freely; no callback runs in the child (its count,
 * copied at the fork, stays the same); the parent's pages the child
 * touched are still missing in the parent, and resolved there as before.
 * And the child can have in-thread handlers of its own: one it makes
 * resolves its faults with its own callback.
 */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 4

static char *area, *src;
static int callbacks;

static int fill(struct uffd_fault *f)
{
	callbacks++;
	return uffd_fault_copy(f, src + ((char *)f->addr - area), PAGE);
}

static int child_fill(struct uffd_fault *f)
{
	return uffd_fault_copy(f, src + PAGE, PAGE);
}

static int child(void)
{
	static const struct uffd_region_ops ops = { .missing = child_fill };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	int before = callbacks;
	struct uffd_handler *h;
	struct uffd u;
	char *mine;

	if (area[PAGE + 1] != 0 || area[3 * PAGE] != 0)
		return 2;
	area[PAGE + 1] = 'c';
	if (area[PAGE + 1] != 'c' || callbacks != before)
		return 3;
	if (uffd_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), 0, UFFD_NONBLOCK))
		return 4;
	mine = t_map_anon(PAGE);
	h = uffd_handler_new(&u, &o);
	if (!h || !uffd_handler_add(h, mine, PAGE, 0, UFFD_REG_MISSING, &ops, NULL))
		return 5;
	if (mine[9] != src[PAGE + 9])
		return 6;
	uffd_handler_free(h);
	uffd_close(&u);
	return 0;
}

int main(void)
{
	static const struct uffd_region_ops ops = { .missing = fill };
	UFFD_OPTS(uffd_handler_opts, o, .in_thread = true);
	struct uffd_handler *h;
	struct uffd u;
	pid_t pid;

	t_require_in_thread();
	t_open(&u, UFFD_F(UFFD_FEAT_SIGBUS), UFFD_NONBLOCK);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 21);
	h = uffd_handler_new(&u, &o);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, NPAGES * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));
	CHECK_OK(uffd_handler_start(h));
	CHECK_EQ(area[0], src[0]);		/* resolved before the fork */

	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		_exit(child());
	CHECK_EQ(t_wait_child(pid, 10000), 0);

	CHECK_EQ(callbacks, 1);
	t_check_bytes("page 1", area + PAGE, src + PAGE, PAGE);
	t_check_bytes("page 3", area + 3 * PAGE, src + 3 * PAGE, PAGE);
	CHECK_EQ(callbacks, 3);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
