/* Placeholder until the mprotect and soft-dirty backends land. */
#include <errno.h>
#include "track.h"
static int no_init(struct uffd_tracker *t) { (void)t; return -EOPNOTSUPP; }
const struct track_backend track_mprotect = { .kind = UFFD_TRACK_MPROTECT, .init = no_init };
const struct track_backend track_soft_dirty = { .kind = UFFD_TRACK_SOFT_DIRTY, .init = no_init };
