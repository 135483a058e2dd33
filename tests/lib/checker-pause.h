/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pausing the checker's writers with a deadline: a writer blocked on a
 * protected page that nobody will un-protect never parks, and the test
 * fails saying so instead of hanging.
 */
#ifndef LIBUFFD_TEST_CHECKER_PAUSE_H
#define LIBUFFD_TEST_CHECKER_PAUSE_H

#include <uffd/checker.h>

/* Every writer parks within ms, or fail. */
void t_checker_pause_within(struct uffd_checker *c, int ms);

#endif
