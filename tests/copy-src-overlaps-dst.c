/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_copy() refuses a source that overlaps its destination with -EINVAL
 * (and *done 0), at once.  Without the check the call never returned: the
 * destination is registered and still missing, so the kernel's read of
 * the source faults on the same userfaultfd, from the very thread that was
 * to resolve it.  Checked: source equal to the destination, a source one
 * page ahead of it and one page behind it (two-page copies), and the same
 * through the runtime (uffd_region_copy) and for uffd_move.  A source that
 * ends exactly where the destination begins is no overlap: that copy
 * succeeds, and the page reads what was copied.  Each call runs in a
 * thread with a 5 s deadline, so a call that blocks fails the test
 * instead of hanging it.
 */
#include <uffd/handler.h>

#include "lib/harness.h"

#define NPAGES 5	/* page 0: a plain source; pages 1..4: registered */

static struct uffd u;

struct call {
	int op;			/* 0 copy, 1 move, 2 region copy */
	char *dst, *src;
	size_t len;
	struct uffd_region *r;
	int ret;
	size_t done;
	int finished;		/* atomic */
};

static void *run(void *arg)
{
	struct call *c = arg;

	c->done = 12345;
	switch (c->op) {
	case 0:
		c->ret = uffd_copy(&u, c->dst, c->src, c->len, 0, &c->done);
		break;
	case 1:
		c->ret = uffd_move(&u, c->dst, c->src, c->len, 0, &c->done);
		break;
	default:
		c->ret = uffd_region_copy(c->r, c->dst, c->src, c->len);
		c->done = 0;
		break;
	}
	__atomic_store_n(&c->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int call(int op, char *dst, char *src, size_t len, struct uffd_region *r,
		const char *what)
{
	struct call c = { op, dst, src, len, r, 0, 0, 0 };
	pthread_t t;

	CHECK_OK(pthread_create(&t, NULL, run, &c));
	if (!t_wait_flag(&c.finished, 5000))
		FAIL("%s: still blocked after 5 s", what);	/* exit ends it */
	pthread_join(t, NULL);
	if (c.done)
		FAIL("%s: done %zu, want 0", what, c.done);
	return c.ret;
}

int main(void)
{
	struct uffd_region *r;
	struct uffd_handler *h;
	char *mem, *area;

	t_open(&u, UFFD_F(UFFD_FEAT_MOVE), 0);
	mem = t_map_anon(NPAGES * PAGE);
	area = mem + PAGE;
	t_fill(mem, PAGE, 9);
	CHECK_OK(uffd_register(&u, area, (NPAGES - 1) * PAGE, UFFD_REG_MISSING, NULL));

	CHECK_EQ(call(0, area, area, PAGE, NULL, "copy src == dst"), -EINVAL);
	CHECK_EQ(call(0, area, area + PAGE, 2 * PAGE, NULL, "copy src = dst + 1 page"),
		 -EINVAL);
	CHECK_EQ(call(0, area + PAGE, area, 2 * PAGE, NULL, "copy src = dst - 1 page"),
		 -EINVAL);
	CHECK_EQ(call(1, area, area, PAGE, NULL, "move src == dst"), -EINVAL);
	CHECK_EQ(call(1, area + PAGE, area, 2 * PAGE, NULL, "move src = dst - 1 page"),
		 -EINVAL);
	t_expect_no_event(&u, 0);

	/* Adjacent, not overlapping: the plain page 0 into page 1. */
	CHECK_OK(uffd_copy(&u, area, mem, PAGE, 0, NULL));
	CHECK(t_is_filled(area, PAGE, 9));

	/* The runtime's copy goes through the same check. */
	CHECK_OK(uffd_unregister(&u, area, (NPAGES - 1) * PAGE));
	h = uffd_handler_new(&u, NULL);
	CHECK(h);
	r = uffd_handler_add(h, area + PAGE, 3 * PAGE, 0, UFFD_REG_MISSING, NULL, NULL);
	CHECK(r);
	CHECK_EQ(call(2, area + PAGE, area + PAGE, PAGE, r, "region copy src == dst"),
		 -EINVAL);
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
