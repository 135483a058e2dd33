/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd bench NAME: benchmarks that run a peer and libuffd side by side in
 * one process run and report ratios (docs/benchmarks.md).  Each bench is
 * one file in bench/ registered in the table below.
 */
#include <string.h>

#include "uffd.h"
#include "../bench/bench.h"

int bench_fault(int argc, char **argv);
int bench_track(int argc, char **argv);
int bench_snapshot(int argc, char **argv);
int bench_pager(int argc, char **argv);
int bench_kv(int argc, char **argv);
int bench_serve(int argc, char **argv);
int bench_migrate(int argc, char **argv);

static const struct {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
} benches[] = {
	{ "fault", "us per MISSING fault: raw loops, libuffd, kernel first touch", bench_fault },
	{ "track", "dirty tracking per backend: ns per written page, collect+re-arm, survival", bench_track },
	{ "snapshot", "live snapshot vs fork: pause, extra memory, writer throughput, durable", bench_snapshot },
	{ "pager", "file 4x memory: libuffd pager vs mmap in a cgroup, us/page, hit rate", bench_pager },
	{ "kv", "uffd-kv vs redis-server: BGSAVE under redis-benchmark, restart", bench_kv },
	{ "serve", "page server vs mmap, eager and in-process restore: working set in, cold/warm", bench_serve },
	{ "migrate", "live migration: urgent channel vs one channel vs stop-and-copy vs MINOR", bench_migrate },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: uffd bench NAME [--json] [--quick] [options]\n\nbenches:\n");
	for (i = 0; benches[i].name; i++)
		fprintf(f, "  %-10s %s\n", benches[i].name, benches[i].summary);
	if (i == 0)
		fprintf(f, "  (none yet)\n");
}

int cmd_bench(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; benches[i].name; i++)
		if (!strcmp(argv[1], benches[i].name)) {
			bench_machine_start();
			return benches[i].run(argc - 1, argv + 1);
		}
	fprintf(stderr, "uffd bench: unknown bench '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
