/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshots while the program changes its memory map (issue 15, item 7):
 * a region whose pages each hold a pattern of their own, and the only
 * two outcomes a snapshot may have - the image is exactly the instant, or
 * the snapshot failed with -EFAULT and left no file.
 */
#ifndef LIBUFFD_TEST_SNAP_MM_H
#define LIBUFFD_TEST_SNAP_MM_H

#include <pthread.h>
#include <uffd/image.h>

#include "harness.h"

/* Page i of [p, p + npages pages) gets pattern seed + i. */
void t_snap_fill(void *p, size_t npages, unsigned seed);

/*
 * ret is what uffd_snap_wait() returned for an image at path whose region
 * `region` held npages pages filled by t_snap_fill(seed) at the instant:
 * 0 and an image (checksums good) that holds every one of them, or
 * -EFAULT and neither path nor any path.tmp-* file.  Returns ret == 0.
 */
bool t_snap_outcome(const char *path, int ret, int region, size_t npages, unsigned seed);

/*
 * The program running through a snapshot: a thread that writes byte 1 of
 * every 7th of the first `pages` pages of area, round after round, until
 * t_snap_writer_stop() (fail if it cannot be started).
 */
struct t_snap_writer {
	char *area;
	size_t pages;
	int stop;	/* atomic */
	pthread_t thread;
};
void t_snap_writer_start(struct t_snap_writer *w, char *area, size_t pages);
void t_snap_writer_stop(struct t_snap_writer *w);

/* What a round in a child exits with: the image was exactly the instant,
 * or the snapshot failed with -EFAULT (anything else is a failure). */
#define T_SNAP_SAVED	10
#define T_SNAP_LOST	11

/*
 * Run round(arg, k) for k = 0..n-1, each in a child of its own within ms;
 * fail (naming what) unless each exits T_SNAP_SAVED or T_SNAP_LOST, and
 * add how many of each to *saved and *lost.
 */
void t_snap_rounds(const char *what, int (*round)(const void *arg, int k), const void *arg,
		   int n, int ms, int *saved, int *lost);

#endif
