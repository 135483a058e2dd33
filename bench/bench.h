/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every bench shares: timing, medians, and the output contract of
 * docs/benchmarks.md (a human table, or JSON lines ending with the
 * summary {"bench","config","results","ratios"}).
 */
#ifndef UFFD_BENCH_H
#define UFFD_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define BENCH_MAX_RESULTS 192
/* The most memory a bench's --size (MiB) asks for: 64 GiB. */
#define BENCH_MAX_MIB 65536
#define BENCH_MAX_RATIOS 16

struct bench_result {
	char system[32];
	char metric[48];
	double value;
	const char *unit;
};

struct bench_report {
	const char *bench;
	bool json;
	char config[1536];		/* JSON object text */
	int nresults, nratios;
	struct bench_result results[BENCH_MAX_RESULTS];
	struct { char name[64]; double value; double goal; } ratios[BENCH_MAX_RATIOS];
};

double bench_now_us(void);
double bench_median(double *v, int n);
void bench_result(struct bench_report *r, const char *system, const char *metric,
		  double value, const char *unit);
/* A ratio where > 1 means libuffd is better; goal: the value it must reach. */
void bench_ratio(struct bench_report *r, const char *name, double value, double goal);
/* The kB value of the line of a /proc file starting with key, or -1. */
long bench_proc_kib(const char *path, const char *key);
/* Pss + VmPTE of a process (0: this one) in KiB, or -1 (it is gone). */
long bench_mem_kib(pid_t pid);
/* Before a bench runs: notes what the machine does meanwhile (below). */
void bench_machine_start(void);
/* Print the table or the JSON lines (summary last).  Returns 0.  First it
 * adds the machine's own results: "machine" "host_reclaimed_mib", the
 * memory the VM handed back to its host since bench_machine_start()
 * (docs/benchmarks.md), where the kernel says. */
int bench_print(struct bench_report *r);

#endif
