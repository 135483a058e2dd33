/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd post-copy live migration: move the memory of a running program
 * to another process - on this host or another one - while it keeps
 * running, with a pause that does not grow with its size.
 *
 * One handle on each side.  The source is given the program's memory (the
 * region list the snapshot uses), two connected stream sockets and the
 * program's pause/resume callbacks; the destination is given memory of
 * the same shape, the other ends of the sockets and a callback that starts
 * the program there.  The library never chooses the network: TCP or Unix
 * stream sockets, already connected, are handed to it.
 *
 *   precopy     while the program runs on the source, every page is sent
 *               once, then in rounds the pages the dirty tracker
 *               (WP_ASYNC + PAGEMAP_SCAN) saw written since;
 *   switchover  the program is paused; only the bitmap of pages the
 *               destination does not hold current, and a small
 *               application blob (a cursor, registers), cross; the
 *               destination registers its memory with userfaultfd and
 *               starts the program;
 *   postcopy    every fault on a page the destination lacks is an urgent
 *               request on a connection of its own, answered ahead of
 *               everything else, while the source streams the remaining
 *               pages in the background, nearest to the latest fault
 *               first.
 *
 * UFFD_MIG_PRECOPY_ONLY (stop-and-copy once the dirty set fits the
 * downtime budget) and UFFD_MIG_POSTCOPY_ONLY (switch over at once) are
 * modes of the same call.  Private anonymous memory at the destination is
 * filled with UFFDIO_COPY/ZEROPAGE on MISSING faults; shmem (memfd) and
 * hugetlbfs memory, given with its file, is precopied into the page cache
 * through a second mapping, and a first touch of a page that is still
 * current costs one UFFDIO_CONTINUE and no network round trip (MINOR
 * faults).
 *
 * Every page crosses with a CRC32C (a mismatch fails the migration), zero
 * pages as markers.  A page arriving for memory the destination program
 * already has (EEXIST), removed (MADV_DONTNEED: REMOVE) or unmapped
 * (UNMAP) is dropped, never mapped over newer data.  A connection that
 * breaks in postcopy leaves the faulting threads blocked (nothing wrong is
 * ever mapped) and can be resumed on new sockets; if the source is gone
 * for good, the destination can poison what it lacks (SIGBUS at the next
 * touch) instead of waiting forever.  The wire format is in
 * uffd_mig_source_start(3).
 */
#ifndef LIBUFFD_MIGRATE_H
#define LIBUFFD_MIGRATE_H

#include <uffd/image.h>		/* struct uffd_image_region */

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct uffd_mig_source;
struct uffd_mig_dest;

enum uffd_mig_mode {
	UFFD_MIG_HYBRID = 0,		/* precopy rounds, then postcopy */
	UFFD_MIG_POSTCOPY_ONLY,		/* switch over at once */
	UFFD_MIG_PRECOPY_ONLY,		/* rounds, then stop and copy */
};

enum uffd_mig_phase {
	UFFD_MIG_CONNECTING = 0,	/* handshake */
	UFFD_MIG_PRECOPY,
	UFFD_MIG_SWITCHOVER,		/* the program is paused */
	UFFD_MIG_POSTCOPY,		/* the program runs at the destination */
	UFFD_MIG_COMPLETE,
	UFFD_MIG_BROKEN,		/* a connection broke in postcopy:
					   resume on new sockets */
	UFFD_MIG_FAILED,
};

/* The largest application blob that crosses in the pause. */
#define UFFD_MIG_BLOB_MAX	(64u << 10)

/* Request latency histogram: 8 buckets per power of two of nanoseconds;
 * bucket i holds [2^(i/8) * (8 + i%8) / 8, the next bucket's start). */
#define UFFD_MIG_HIST_BUCKETS	320

struct uffd_mig_source_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	const struct uffd_image_region *regions;	/* what to move */
	int nregions;
	int stream_fd;			/* connected: pages, control */
	int urgent_fd;			/* connected: urgent page requests */
	bool one_channel;		/* no urgent_fd: requests and their
					   answers share stream_fd */
	enum uffd_mig_mode mode;
	int max_rounds;			/* precopy rounds at most (0: HYBRID 1,
					   PRECOPY_ONLY 8) */
	unsigned downtime_ms;		/* switch over once the dirty set could
					   be sent in this (0: 20) */
	/* Stop and restart the program's threads.  resume is called only if
	 * the migration fails before the program left the source. */
	void (*pause)(void *arg);
	void (*resume)(void *arg);
	/* In the pause: write the application's blob (at most cap bytes);
	 * returns its length or -errno (the migration then fails). */
	int (*save)(void *arg, void *blob, size_t cap);
	void *arg;
	int timeout_ms;			/* the peer's silence that breaks a
					   connection (0: 10000) */
	unsigned spin_us;		/* polling before sleeping (0: 200) */
};

struct uffd_mig_dest_opts {
	size_t sz;			/* set by UFFD_OPTS() (see uffd.h) */
	const struct uffd_image_region *regions;	/* where the memory goes:
					   the source's lengths and page sizes,
					   in the same order */
	int nregions;
	/* NULL, or per region: the memfd/hugetlbfs file mapped shared at
	 * regions[i].addr (MINOR mode) or -1 (anonymous). */
	const int *fds;
	const uint64_t *offsets;	/* NULL, or the file offset of each */
	int stream_fd;
	int urgent_fd;
	bool one_channel;
	/* At switchover, with the memory ready: start the program here. */
	void (*resume)(void *arg, const void *blob, size_t len);
	void *arg;
	int timeout_ms;			/* 0: 10000 */
	unsigned spin_us;		/* 0: 200 */
};

struct uffd_mig_stats {
	enum uffd_mig_phase phase;
	int error;			/* -errno that broke or failed it */
	char message[160];		/* and what happened, or "" */
	uint32_t round;			/* precopy rounds begun */
	uint32_t resumes;		/* connections resumed */
	uint64_t pages;			/* in the regions */
	uint64_t pages_sent;		/* source: data and zero markers */
	uint64_t pages_received;	/* destination: the same */
	uint64_t zero_pages;		/* markers, sent or received */
	uint64_t dirty_pages;		/* the last precopy round's dirty set */
	uint64_t switchover_pages;	/* pages the destination lacked at
					   switchover */
	uint64_t pages_requested;	/* urgent requests (sent / answered) */
	uint64_t pages_background;	/* postcopy pages of the stream */
	uint64_t pages_answered;	/* destination: mapped from an answer */
	uint64_t pages_continued;	/* precopied pages mapped at a first
					   touch, nothing fetched: CONTINUE
					   (file), MOVE (anonymous) */
	uint64_t pages_moved;		/* precopied anonymous pages moved into
					   place besides (ahead of a touch, or
					   by the background mover) */
	uint64_t pages_local_zero;	/* zero pages mapped on a fault */
	uint64_t duplicates;		/* arrived for a page in place: dropped */
	uint64_t dropped;		/* arrived for memory removed or
					   unmapped here: dropped */
	uint64_t poisoned;
	uint64_t bytes_sent;		/* on the wire, both channels */
	uint64_t bytes_received;
	uint64_t precopy_ns;
	uint64_t downtime_ns;		/* source: the pause callback's return
					   (the program stopped) to the
					   destination's word that it runs;
					   destination: switchover message to
					   its resume callback's return */
	uint64_t postcopy_ns;
	uint64_t total_ns;
	uint64_t blocked_ns;		/* destination: thread time blocked on
					   pages from the network */
	uint64_t req_count;		/* destination: requests answered */
	uint64_t req_ns_sum, req_ns_max;
	uint64_t req_p50_ns, req_p99_ns;	/* upper bounds from the histogram,
						   at most req_ns_max */
	uint64_t req_hist[UFFD_MIG_HIST_BUCKETS];	/* first fault to mapped */
	uint64_t reserved_[8];		/* later fields take these: the size
					   never changes (see uffd.h) */
};

/*
 * Start migrating: the handshake, the rounds and the switchover run in
 * threads of the handle.  NULL with errno: EINVAL (bad options), ENOMEM,
 * EOPNOTSUPP (no dirty tracking here), or the tracker's errno.
 */
struct uffd_mig_source *uffd_mig_source_start(const struct uffd_mig_source_opts *o);
/* Switch over now (end the precopy round in progress).  0 or -EALREADY. */
int uffd_mig_source_switchover(struct uffd_mig_source *s);
/*
 * Wait until complete (0), broken (-ENOTCONN: resume it), failed (the
 * error) or timeout_ms passed (-ETIMEDOUT; < 0 waits for ever).
 */
int uffd_mig_source_wait(struct uffd_mig_source *s, int timeout_ms);
/* After -ENOTCONN: go on over new connected sockets (urgent_fd ignored
 * with one_channel).  0 or -errno (-EINVAL when not broken). */
int uffd_mig_source_resume(struct uffd_mig_source *s, int stream_fd, int urgent_fd);
int uffd_mig_source_stats(struct uffd_mig_source *s, struct uffd_mig_stats *st);
/* Stop (failing a migration in progress), join, free; the caller's
 * sockets stay open.  NULL: nothing. */
void uffd_mig_source_free(struct uffd_mig_source *s);

struct uffd_mig_dest *uffd_mig_dest_start(const struct uffd_mig_dest_opts *o);
int uffd_mig_dest_wait(struct uffd_mig_dest *d, int timeout_ms);
int uffd_mig_dest_resume(struct uffd_mig_dest *d, int stream_fd, int urgent_fd);
/*
 * The source is gone for good: every page not here yet is poisoned (a
 * thread blocked on one, and any later touch, gets SIGBUS) and the
 * migration ends.  Returns the number of pages poisoned or -errno.
 */
int uffd_mig_dest_poison(struct uffd_mig_dest *d);
int uffd_mig_dest_stats(struct uffd_mig_dest *d, struct uffd_mig_stats *st);
void uffd_mig_dest_free(struct uffd_mig_dest *d);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
