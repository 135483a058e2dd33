/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Migrations in tests: a source and a destination in this process, joined
 * by connected TCP loopback sockets (port 0: never a fixed port), the
 * checker's writers on the source's table, taken over at the switchover by
 * an adopted checker on the destination's table, and the verdict: the
 * destination's table proven against the source's versions at the
 * instant, page by page.
 */
#ifndef LIBUFFD_TEST_MIGRATE_PAIR_H
#define LIBUFFD_TEST_MIGRATE_PAIR_H

#include <uffd/checker.h>
#include <uffd/migrate.h>

#include "relay.h"

/* A connected TCP pair over 127.0.0.1 (fail on error). */
void t_tcp_pair(int *a, int *b);

struct t_mig {
	/* set before t_mig_start */
	struct uffd_checker_opts co;	/* the source's table */
	bool shmem;			/* the destination's table is a memfd */
	bool one_channel;
	enum uffd_mig_mode mode;
	int max_rounds;
	bool no_writers;		/* no writers on either side */
	bool dst_idle;			/* adopt, but no writers at the destination */
	/* Called at the destination's switchover, after the adoption, from
	 * the thread that would otherwise receive the background stream. */
	void (*on_resume)(struct t_mig *m);
	/* Relays (faults on the link) on the connections, when set. */
	struct t_relay *stream_relay, *urgent_relay;
	/* made by t_mig_start */
	struct uffd_checker *src_c, *dst_c;	/* dst_c: at the switchover */
	void *dst_area;
	int dst_fd;			/* memfd, or -1 */
	struct uffd_image_region src_reg, dst_reg;
	int sfd[2], ufd[2];		/* [0] source's end, [1] destination's */
	struct uffd_mig_source *src;
	struct uffd_mig_dest *dst;
	int resumed;			/* atomic: the destination's resume ran */
	uint64_t dst_writes_at_resume;
};

/* Make both tables and sockets, start the source's writers and both
 * handles (fail on error). */
void t_mig_start(struct t_mig *m);
/* A connection between the two sides, through relay when not NULL:
 * fd[0] the source's end, fd[1] the destination's. */
void t_mig_connect(struct t_mig *m, struct t_relay *relay, int fd[2]);
/* Wait (within ms) for both sides: 0, or the first error. */
int t_mig_wait(struct t_mig *m, int ms);
/* Pause the destination's writers and prove its table against the
 * source's instant (fail with the checker's words if not). */
void t_mig_verify(struct t_mig *m);
/* Free everything. */
void t_mig_free(struct t_mig *m);

/* Both sides' stats (fail on error). */
void t_mig_stats(struct t_mig *m, struct uffd_mig_stats *src, struct uffd_mig_stats *dst);

#endif
