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
/* The kB value on the line of a /proc file that is key, white space, the
 * value ("VmPTE:"), or -1. */
long bench_proc_kib(const char *path, const char *key);
/* The number in dir/name: on its line "key value", or the whole file's
 * when key is NULL (a cgroup's memory.stat, a module's parameter), or -1. */
long long bench_file_number(const char *dir, const char *name, const char *key);
/* VmPTE of a process (0: this one) in KiB, or -1 (it is gone).  A counter
 * (fs/proc/task_mmu.c task_mem()): no page walk, no mmap_lock. */
long bench_pte_kib(pid_t pid);
/* Pss + VmPTE of a process (0: this one) in KiB, or -1 (it is gone).  Pss
 * comes from smaps_rollup, a walk of the page tables under the process's
 * mmap_lock: ~17 ms per GiB resident here, and the process's mmap, munmap
 * and fork wait behind it. */
long bench_mem_kib(pid_t pid);
/*
 * Memory cgroups the benches make around what they measure, under this
 * process's own cgroup in the hierarchy with the memory controller (so
 * that whatever limits it has still apply): cgroup v1's memory controller
 * or v2 where it is enabled.
 */
struct bench_cgroup_env {
	int version;			/* 0: none, 1, 2 */
	char base[256];			/* where the benches' cgroups are made */
	char why[64];			/* version 0: why not */
};

void bench_cgroup_probe(struct bench_cgroup_env *e);
/* A new cgroup under e->base named for the bench, limited to limit bytes
 * (0: no limit); its path in dir.  0 or -errno. */
int bench_cgroup_create(const struct bench_cgroup_env *e, const char *bench, size_t limit,
			char *dir, size_t dirlen);
/* The calling process joins the cgroup dir: 0 or -errno.  Memory is
 * charged where it is allocated, so join before allocating (before exec). */
int bench_cgroup_join(const char *dir);
/* The anonymous memory charged to the cgroup in KiB, or -1: memory.stat's
 * rss (v1; it includes rss_huge, the transparent huge pages) or anon (v2).
 * Counters: no page walk, no process's mmap_lock. */
long bench_cgroup_anon_kib(const struct bench_cgroup_env *e, const char *dir);
/* SIGKILL to whatever is still in the cgroup, then rmdir, retried for up
 * to a second while the last exits finish.  0 or -errno.  Only
 * async-signal-safe calls: signal handlers clean up with it too. */
int bench_cgroup_remove(const char *dir);
/* handler (or SIG_DFL) for the signals that end a bench from outside:
 * SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE. */
void bench_catch_signals(void (*handler)(int));

/* Before a bench runs: notes what the machine does meanwhile (below). */
void bench_machine_start(void);
/* Print the table or the JSON lines (summary last).  Returns 0.  First it
 * adds the machine's own results, where the kernel says: "machine"
 * "host_reclaimed_mib", the memory the VM handed back to its host since
 * bench_machine_start() (docs/benchmarks.md), and "guest_halt_poll_us",
 * how long an idle vCPU polls before it halts (see bench.c). */
int bench_print(struct bench_report *r);

#endif
