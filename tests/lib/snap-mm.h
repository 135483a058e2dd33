/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshots while the program changes its memory map (issue 15, item 7):
 * a region whose pages each hold a pattern of their own, and the only
 * two outcomes a snapshot may have - the image is exactly the instant, or
 * the snapshot failed with -EFAULT and left no file.
 */
#ifndef LIBUFFD_TEST_SNAP_MM_H
#define LIBUFFD_TEST_SNAP_MM_H

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

#endif
