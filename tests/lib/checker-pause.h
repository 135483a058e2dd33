/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The checker in tests.  Pausing its writers with a deadline: a writer
 * blocked on a protected page that nobody will un-protect never parks, and
 * the test fails saying so instead of hanging.  A new table as one image
 * region, a snapshot of it with the writers running, and an image checked
 * against the table's last instant.
 */
#ifndef LIBUFFD_TEST_CHECKER_PAUSE_H
#define LIBUFFD_TEST_CHECKER_PAUSE_H

#include <uffd/checker.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

/* Every writer parks within ms, or fail. */
void t_checker_pause_within(struct uffd_checker *c, int ms);

/* The writers write again within ms of the call (polled: a loaded machine
 * may not run them for tens of ms), or fail. */
void t_checker_writes_within(struct uffd_checker *c, int ms);

/* A new checker (or fail), and its table as *reg, 4 KiB pages. */
struct uffd_checker *t_checker_table(const struct uffd_checker_opts *co, uint32_t image_flags,
				     struct uffd_image_region *reg);

/*
 * Start the writers, take the snapshot so describes of a table whose pages
 * all hold data, wait for it (within ms) and stop the writers: *st, once
 * it is checked that the snapshot succeeded and saved every page once.
 */
void t_snapshot_table(struct uffd_checker *c, const struct uffd_snap_opts *so, int ms,
		      struct uffd_snap_stats *st);

/* The image at path has good checksums and is exactly the last instant,
 * or fail. */
void t_check_image_instant(struct uffd_checker *c, const char *path);

#endif
