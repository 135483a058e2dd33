/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Timing, medians and the shared output format of the benches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_result(struct bench_report *r, const char *system, const char *metric,
		  double value, const char *unit)
{
	struct bench_result *res;

	if (r->nresults == BENCH_MAX_RESULTS)
		return;
	res = &r->results[r->nresults++];
	snprintf(res->system, sizeof(res->system), "%s", system);
	snprintf(res->metric, sizeof(res->metric), "%s", metric);
	res->value = value;
	res->unit = unit;
	if (r->json)
		printf("{\"bench\":\"%s\",\"system\":\"%s\",\"metric\":\"%s\","
		       "\"value\":%.3f,\"unit\":\"%s\"}\n", r->bench, system, metric,
		       value, unit);
	else
		printf("  %-26s %-28s %12.2f %s\n", system, metric, value, unit);
	fflush(stdout);
}

void bench_ratio(struct bench_report *r, const char *name, double value, double goal)
{
	if (r->nratios == BENCH_MAX_RATIOS)
		return;
	snprintf(r->ratios[r->nratios].name, sizeof(r->ratios[0].name), "%s", name);
	r->ratios[r->nratios].value = value;
	r->ratios[r->nratios].goal = goal;
	r->nratios++;
}

/*
 * A VM with free page reporting (virtio-balloon) hands memory its kernel
 * freed back to the host, and a page of it touched again costs a host
 * fault: 12.7-16 us here against 1.8-2.0 us for memory the host still
 * backs.  Benches that free and take gigabytes run after such memory, so
 * their figures move with it; this says how much went back during the
 * run (where the kernel counts it: this VM's page_reporting module).
 */
#define REPORTED_KIB "/sys/module/page_reporting/parameters/reported_kib"

static long long reported_at_start = -1;

static long long reported_kib(void)
{
	long long v = -1;
	FILE *f = fopen(REPORTED_KIB, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

void bench_machine_start(void)
{
	reported_at_start = reported_kib();
}

int bench_print(struct bench_report *r)
{
	long long now = reported_kib();
	int i;

	if (reported_at_start >= 0 && now >= reported_at_start)
		bench_result(r, "machine", "host_reclaimed_mib",
			     (double)(now - reported_at_start) / 1024, "MiB");

	if (!r->json) {
		printf("\n  %-40s %10s %10s\n", "ratio (>1: libuffd better)", "value", "goal");
		for (i = 0; i < r->nratios; i++)
			printf("  %-40s %10.3f %9s%.2f %s\n", r->ratios[i].name,
			       r->ratios[i].value, ">=", r->ratios[i].goal,
			       r->ratios[i].value >= r->ratios[i].goal ? "met" : "NOT met");
		return 0;
	}
	printf("{\"bench\":\"%s\",\"config\":%s,\"results\":[", r->bench, r->config);
	for (i = 0; i < r->nresults; i++)
		printf("%s{\"system\":\"%s\",\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"}",
		       i ? "," : "", r->results[i].system, r->results[i].metric,
		       r->results[i].value, r->results[i].unit);
	printf("],\"ratios\":{");
	for (i = 0; i < r->nratios; i++)
		printf("%s\"%s\":%.3f", i ? "," : "", r->ratios[i].name, r->ratios[i].value);
	printf("},\"goals\":{");
	for (i = 0; i < r->nratios; i++)
		printf("%s\"%s\":{\"goal\":%.3f,\"met\":%s}", i ? "," : "", r->ratios[i].name,
		       r->ratios[i].goal, r->ratios[i].value >= r->ratios[i].goal ? "true" : "false");
	printf("}}\n");
	return 0;
}

long bench_proc_kib(const char *path, const char *key)
{
	size_t klen = strlen(key);
	char line[256];
	long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen)) {
			v = strtol(line + klen, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

long bench_mem_kib(pid_t pid)
{
	char rollup[64], status[64];
	long pss, pte;

	if (pid) {
		snprintf(rollup, sizeof(rollup), "/proc/%d/smaps_rollup", (int)pid);
		snprintf(status, sizeof(status), "/proc/%d/status", (int)pid);
	} else {
		snprintf(rollup, sizeof(rollup), "/proc/self/smaps_rollup");
		snprintf(status, sizeof(status), "/proc/self/status");
	}
	pss = bench_proc_kib(rollup, "Pss:");
	pte = bench_proc_kib(status, "VmPTE:");
	return pss < 0 || pte < 0 ? -1 : pss + pte;
}
