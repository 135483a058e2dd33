/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One migration of the checker workload from one process to another, as
 * `uffd migrate` and `uffd bench migrate` run it: over loopback, or
 * between two network namespaces joined by a shaped veth (plus a delaying
 * relay), with the checker's verdict at the end.
 */
#ifndef UFFD_TOOL_MIGRATE_RUN_H
#define UFFD_TOOL_MIGRATE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uffd/migrate.h>

struct mig_run_cfg {
	size_t bytes;			/* the table */
	int writers;
	size_t hot_bytes;		/* the writers' hot set (0: all) */
	double rate;			/* their writes/s (0: no limit) */
	double fill;			/* pages holding data before start */
	unsigned seed;
	enum uffd_mig_mode mode;
	bool one_channel;
	bool minor;			/* the destination's table is a memfd */
	int max_rounds;
	unsigned downtime_ms;
	bool netns;			/* two namespaces, a veth between */
	unsigned link_mbit;		/* tbf rate on the veth (0: none) */
	double delay_ms;		/* one-way delay added by a relay */
	double settle_s;		/* writers run before the migration */
	double after_s;			/* and at the destination after it */
	bool progress;			/* a progress line on stderr */
	bool scan;			/* a reader at the destination reads every
					   page once after the switchover */
};

struct mig_run_result {
	int error;			/* 0, or the first failure (-errno) */
	char message[600];
	bool skipped;			/* no namespaces here: not run */
	struct uffd_mig_stats src, dst;
	bool exact;			/* the checker's verdict */
	char verdict[256];
	double downtime_ms;		/* stopped here -> running there */
	double stop_ms;			/* the pause callback: stopping the writers */
	double base_rate;		/* source writes/s before the migration */
	double post_rate;		/* destination writes/s in postcopy */
	double rtt_ms;			/* the link's round trip (median) */
	uint64_t table_bytes;
	uint64_t wire_bytes;		/* both directions, both connections */
};

/* Run it.  0 when it ran (res says how it went), or -errno when it could
 * not be set up. */
int mig_run(const struct mig_run_cfg *cfg, struct mig_run_result *res);

/* "hybrid", "postcopy-only", "precopy-only". */
const char *mig_mode_name(enum uffd_mig_mode m);
const char *mig_phase_name(enum uffd_mig_phase p);

#endif
