/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pager tests made of cases.  Each case runs in both modes (a servicing
 * thread, and in-thread where that can run) in a child of its own with a
 * deadline, so a fault that loops or a copy that waits for itself fails
 * the case instead of hanging the suite.  A case gets a new store, a pager
 * with its settings and one map of the store; after it, the pager's
 * invariants must hold, and the map is unmapped if the case left it.  A
 * case's name as the program's argument runs only it.
 */
#ifndef LIBUFFD_TEST_PAGER_CASES_H
#define LIBUFFD_TEST_PAGER_CASES_H

#include <uffd/pager.h>

#include "test-store.h"

/* What a case works on. */
struct t_pager_env {
	struct uffd_pager *p;
	struct t_store *ts;
	char *map;		/* the case sets it NULL once it unmaps it */
	size_t npages;
};

struct t_pager_case {
	const char *name;
	void (*fn)(struct t_pager_env *e);
	bool in_thread;
	bool one_cpu;		/* the test and the pager's threads */
	size_t buffer;		/* 0: room for the whole map */
	bool read_only;		/* the map */
	size_t npages;		/* 0: the test's */
	bool read_ahead;	/* the default's (else none) */
};

/* A case in both modes, with these settings. */
#define T_PAGER_CASE(f, ...) { .name = #f, .fn = f, __VA_ARGS__ }, \
			     { .name = #f, .fn = f, .in_thread = true, __VA_ARGS__ }

/*
 * Run the n cases, or only those named only (when not NULL); the
 * in-thread ones only where in-thread mode can run.  A map is npages long
 * unless its case says, its store's words t_word(offset, seed); each case
 * has deadline_ms.  T_EXIT_PASS, or T_EXIT_FAIL when any case failed
 * (each failure said on stderr).
 */
int t_pager_run_cases(const struct t_pager_case *cases, int n, size_t npages, unsigned seed,
		      int deadline_ms, const char *only);

/* The pager's invariants hold, or fail saying which does not. */
void t_pager_check_invariants(struct uffd_pager *p);

/* Page pg of the map is the store's page pg as the store holds it now. */
void t_pager_check_page(const struct t_pager_env *e, size_t pg, const char *what);

#endif
