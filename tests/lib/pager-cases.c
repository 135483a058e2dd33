/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sched.h>
#include <sys/mman.h>

#include "pager-cases.h"
#include "pager/pager_internal.h"

void t_pager_check_invariants(struct uffd_pager *p)
{
	char why[256] = "";
	int ret = uffd__pager_check(p, why, sizeof(why));

	if (ret)
		FAIL("invariants: %s (%s)", why, t_errname(ret));
}

void t_pager_check_page(const struct t_pager_env *e, size_t pg, const char *what)
{
	char got[PAGE];
	size_t k;

	/* (volatile: each word is loaded from the map itself, faulting if it must) */
	for (k = 0; k < PAGE; k += 8)
		*(uint64_t *)(got + k) = *(volatile const uint64_t *)(e->map + pg * PAGE + k);
	t_check_bytes(what, got, e->ts->data + pg * PAGE, PAGE);
}

/* This thread, and those the pager starts, on the CPU it runs on. */
static void one_cpu(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(sched_getcpu(), &set);
	CHECK_OK(sched_setaffinity(0, sizeof(set), &set));
}

/* What the child of one case is given. */
struct case_run {
	const struct t_pager_case *c;
	size_t npages;		/* the test's */
	unsigned seed;
};

static const char *mode(const struct t_pager_case *c)
{
	return c->in_thread ? "in-thread" : "default";
}

/* (A case may run with and without a buffer of its own: say which.) */
static const char *buffer(const struct t_pager_case *c)
{
	static char text[64];

	if (!c->buffer)
		return "";
	snprintf(text, sizeof(text), ", a buffer of %zu pages", c->buffer / PAGE);
	return text;
}

static int run_case(void *arg)
{
	const struct case_run *run = arg;
	const struct t_pager_case *c = run->c;
	size_t len = (c->npages ? c->npages : run->npages) * PAGE;
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = c->buffer ? c->buffer : 4 * len,
		  .in_thread = c->in_thread,
		  .read_ahead = c->read_ahead ? 0 : UFFD_PAGER_NO_READ_AHEAD);
	struct t_pager_env e = { .npages = len / PAGE };

	fprintf(stderr, "case %s (%s%s)\n", c->name, mode(c), buffer(c));
	if (c->one_cpu)
		one_cpu();
	e.ts = t_store_new(len, run->seed);
	e.p = t_pager_new(&o);
	e.map = uffd_pager_map(e.p, &e.ts->store, 0, len,
			       c->read_only ? PROT_READ : PROT_READ | PROT_WRITE, 0, 0);
	CHECK(e.map);
	c->fn(&e);
	t_pager_check_invariants(e.p);
	if (e.map)
		CHECK_OK(uffd_pager_unmap(e.p, e.map));
	CHECK_OK(uffd_pager_free(e.p));
	t_store_free(e.ts);
	return T_EXIT_PASS;
}

int t_pager_run_cases(const struct t_pager_case *cases, int n, size_t npages, unsigned seed,
		      int deadline_ms, const char *only)
{
	bool in_thread = t_in_thread_ok() && uffd_feature_supported(UFFD_FEAT_SIGBUS) == 1;
	int i, failed = 0, rc;

	for (i = 0; i < n; i++) {
		struct case_run run = { &cases[i], npages, seed };

		if ((run.c->in_thread && !in_thread) || (only && strcmp(only, run.c->name)))
			continue;
		rc = t_run_in_child(run_case, &run, deadline_ms);
		if (rc != T_EXIT_PASS && rc != T_EXIT_SKIP) {
			fprintf(stderr, "FAIL: case %s (%s%s): exit %d\n", run.c->name, mode(run.c),
				buffer(run.c), rc);
			failed++;
		}
	}
	return failed ? T_EXIT_FAIL : T_EXIT_PASS;
}
