/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The write-protect and MINOR workflows (workflows.h). */
#include "workflows.h"

void t_wp_write_begin(struct uffd *u, struct t_access *a, void *page, void *p,
		      char value)
{
	t_access_start(a, p, true, value);
	t_expect_fault(u, page, UFFD_FAULT_WP, true);
	CHECK(!t_access_wait(a, 100));
}

void t_wp_write_end(struct uffd *u, struct t_access *a, void *page,
		    size_t len)
{
	CHECK_OK(uffd_writeprotect(u, page, len, false, 0));
	CHECK(t_access_wait(a, 5000));
	t_access_join(a);
	CHECK_EQ(*a->addr, a->value);
	t_expect_no_event(u, 0);
}

void t_write_without_fault(struct uffd *u, char *p, char value)
{
	struct t_access a;

	t_access_start(&a, p, true, value);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	t_expect_no_event(u, 0);
	CHECK_EQ(*p, value);
}

void t_wp_populate(const struct t_wp_workflow *w)
{
	uint64_t ioctls;
	int i;

	CHECK_OK(uffd_register(w->u, w->area, w->npages * w->ps, UFFD_REG_WP,
			       &ioctls));
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);
	for (i = 0; i < w->npages; i++)
		t_fill(w->area + i * w->ps, w->ps, w->seed + i);
	t_expect_no_event(w->u, 0);
}

void t_wp_write_with_fault(const struct t_wp_workflow *w, int pg, char value)
{
	char *page = w->area + pg * w->ps;
	struct t_access a;

	t_wp_write_begin(w->u, &a, page, page + w->off, value);
	/* The handler sees the contents from before the write. */
	CHECK(t_is_filled(page, w->ps, w->seed + pg));
	t_wp_write_end(w->u, &a, page, w->ps);
	CHECK(t_is_filled(page, w->off, w->seed + pg));
}

void t_wp_workflow(const struct t_wp_workflow *w)
{
	int last = w->npages - 1, pg = w->npages - 2;

	CHECK_OK(uffd_writeprotect(w->u, w->area, last * w->ps, true, 0));
	t_wp_write_with_fault(w, pg, 0x77);

	/* The last page was never protected; page pg no longer is. */
	t_write_without_fault(w->u, w->area + last * w->ps + w->off, 0x11);
	t_write_without_fault(w->u, w->area + pg * w->ps + w->off + 1, 0x22);
	CHECK_EQ(w->area[pg * w->ps + w->off], 0x77);
}

/* Touch a page through reg: it must raise a MINOR fault there. */
static void start_minor_fault(const struct t_minor_workflow *m,
			      struct t_access *a, int pg)
{
	char *page = m->reg + pg * m->ps;

	t_access_start(a, page + m->read_off, false, 0);
	t_expect_fault(m->u, page, UFFD_FAULT_MINOR, false);
	CHECK(!t_access_wait(a, 50));
}

void t_minor_workflow(const struct t_minor_workflow *m)
{
	struct uffd *u = m->u;
	size_t ps = m->ps;
	char *reg = m->reg, *alias = m->alias;
	char *page;
	struct t_access a;
	uint64_t ioctls;
	size_t done;

	CHECK_OK(uffd_register(u, reg, m->npages * ps,
			       UFFD_REG_MINOR | UFFD_REG_WP, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_CONTINUE);
	CHECK(ioctls & UFFD_IOCTL_WRITEPROTECT);

	/* Page 0: new contents through the alias, then CONTINUE. */
	start_minor_fault(m, &a, 0);
	t_fill(alias, ps, 11);
	CHECK_OK(uffd_continue(u, reg, ps, 0, &done));
	CHECK_EQ(done, ps);
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, alias[m->read_off]);
	CHECK(t_is_filled(reg, ps, 11));

	/* Page 1: COPY cannot replace a cached page; CONTINUE maps it. */
	start_minor_fault(m, &a, 1);
	done = 1;
	CHECK_EQ(uffd_copy(u, reg + ps, m->src, ps, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_continue(u, reg + ps, ps, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK(t_is_filled(reg + ps, ps, 2));

	/* A hole in the file cannot be continued. */
	done = 1;
	CHECK_EQ(uffd_continue(u, reg + m->hole * ps, ps, 0, &done), -EFAULT);
	CHECK_EQ(done, 0);

	/* A cached page, then a hole: the page is mapped, the hole fails. */
	page = reg + m->cached_then_hole * ps;
	done = 0;
	CHECK_EQ(uffd_continue(u, page, 2 * ps, 0, &done), -EFAULT);
	CHECK_EQ(done, ps);
	/* No fault: mapped. */
	CHECK(t_is_filled(page, ps, m->cached_then_hole + 1));

	/* CONTINUE write-protected. */
	page = reg + m->wp * ps;
	start_minor_fault(m, &a, m->wp);
	CHECK_OK(uffd_continue(u, page, ps, UFFD_MAP_WP, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(a.value, alias[m->wp * ps + m->read_off]);
	t_access_start(&a, page + m->write_off, true, 'w');
	t_expect_fault(u, page, UFFD_FAULT_WP, true);
	CHECK(!t_access_wait(&a, 50));
	CHECK(t_is_filled(alias + m->wp * ps, ps, m->wp + 1));
	CHECK_OK(uffd_writeprotect(u, page, ps, false, 0));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK_EQ(alias[m->wp * ps + m->write_off], 'w');

	/* A hole read through reg is filled by the kernel. */
	t_access_start(&a, reg + m->read_hole * ps + 1, false, 1);
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(a.value, 0);
	t_expect_no_event(u, 20);
}
