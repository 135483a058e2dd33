/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Timing, medians and the shared output format of the benches; what they
 * read of a process's memory, and the memory cgroups they make.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
#define REPORTING_PARAMS "/sys/module/page_reporting/parameters"

static long long reported_at_start = -1;

static long long reported_kib(void)
{
	return bench_file_number(REPORTING_PARAMS, "reported_kib", NULL);
}

/*
 * A VM whose idle vCPUs halt at once (the haltpoll cpuidle driver with
 * guest_halt_poll_ns 0, as here) wakes a thread on an idle vCPU through
 * the host: 17-18 us of scheduling delay per wake-up here (perf sched
 * timehist), so a fault answered by a thread on another vCPU - another
 * process's above all - costs that much more.  With 200 us of polling
 * before halting, a page server's fault cost 8.4 us at the median against
 * 18-22 us (`guest_halt_poll_ns` set for the test and put back).
 */
#define HALTPOLL_PARAMS "/sys/module/haltpoll/parameters"

void bench_machine_start(void)
{
	reported_at_start = reported_kib();
}

int bench_print(struct bench_report *r)
{
	long long now = reported_kib();
	long long poll_ns = bench_file_number(HALTPOLL_PARAMS, "guest_halt_poll_ns", NULL);
	int i;

	if (reported_at_start >= 0 && now >= reported_at_start)
		bench_result(r, "machine", "host_reclaimed_mib",
			     (double)(now - reported_at_start) / 1024, "MiB");
	if (poll_ns >= 0)
		bench_result(r, "machine", "guest_halt_poll_us", (double)poll_ns / 1000, "us");

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

/*
 * The number in file path: the whole file's (key NULL), or on the first
 * line that is key, white space, the number ("VmPTE:\t 12 kB", "anon
 * 4096": key "anon" is not "anon_thp").  -1 when there is none.
 */
static long long read_number(const char *path, const char *key)
{
	size_t klen = key ? strlen(key) : 0;
	char line[256];
	long long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!key) {
			v = strtoll(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == '\t')) {
			v = strtoll(line + klen, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

long bench_proc_kib(const char *path, const char *key)
{
	return (long)read_number(path, key);
}

long long bench_file_number(const char *dir, const char *name, const char *key)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_number(path, key);
}

long bench_pte_kib(pid_t pid)
{
	char status[64];

	if (pid)
		snprintf(status, sizeof(status), "/proc/%d/status", (int)pid);
	else
		snprintf(status, sizeof(status), "/proc/self/status");
	return bench_proc_kib(status, "VmPTE:");
}

long bench_mem_kib(pid_t pid)
{
	char rollup[64];
	long pss, pte;

	if (pid)
		snprintf(rollup, sizeof(rollup), "/proc/%d/smaps_rollup", (int)pid);
	else
		snprintf(rollup, sizeof(rollup), "/proc/self/smaps_rollup");
	pss = bench_proc_kib(rollup, "Pss:");
	pte = bench_pte_kib(pid);
	return pss < 0 || pte < 0 ? -1 : pss + pte;
}

/* ---- memory cgroups ----------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const char *val)
{
	char path[512];
	ssize_t n;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n != (ssize_t)strlen(val))
		ret = n < 0 ? -errno : -EIO;
	close(fd);
	return ret;
}

static bool file_has_word(const char *path, const char *word)
{
	char buf[512], *tok, *save;
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (!strcmp(tok, word))
			return true;
	return false;
}

void bench_cgroup_probe(struct bench_cgroup_env *e)
{
	char line[512], *path = NULL;
	bool v2 = file_has_word("/sys/fs/cgroup/cgroup.controllers", "memory");
	FILE *f = fopen("/proc/self/cgroup", "re");

	memset(e, 0, sizeof(*e));
	if (!f) {
		snprintf(e->why, sizeof(e->why), "no /proc/self/cgroup");
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *p;

		if (!ctl || !(p = strchr(ctl + 1, ':')))
			continue;
		*p++ = 0;
		p[strcspn(p, "\n")] = 0;
		ctl++;
		if (v2 ? !*ctl : (!strcmp(ctl, "memory") || strstr(ctl, "memory,") ||
				   (strlen(ctl) > 7 && !strcmp(ctl + strlen(ctl) - 7, ",memory")))) {
			path = p;
			break;
		}
	}
	fclose(f);
	if (!path) {
		snprintf(e->why, sizeof(e->why), "no memory controller");
		return;
	}
	snprintf(e->base, sizeof(e->base), "%s%s", v2 ? "/sys/fs/cgroup" :
		 "/sys/fs/cgroup/memory", strcmp(path, "/") ? path : "");
	if (access(e->base, W_OK)) {
		snprintf(e->why, sizeof(e->why), "%s", strerror(errno));
		return;
	}
	e->version = v2 ? 2 : 1;
}

int bench_cgroup_create(const struct bench_cgroup_env *e, const char *bench, size_t limit,
			char *dir, size_t dirlen)
{
	static int seq;
	char val[32], ctl[600];
	int ret;

	if (!e->version)
		return -EOPNOTSUPP;
	snprintf(dir, dirlen, "%s/uffd-bench-%s-%d-%d", e->base, bench, (int)getpid(), seq++);
	if (mkdir(dir, 0755))
		return -errno;
	if (e->version == 2) {
		snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", dir);
		if (!file_has_word(ctl, "memory"))
			write_file(e->base, "cgroup.subtree_control", "+memory");
		if (!file_has_word(ctl, "memory")) {
			rmdir(dir);
			return -EOPNOTSUPP;
		}
	}
	if (!limit)
		return 0;
	snprintf(val, sizeof(val), "%zu", limit);
	ret = write_file(dir, e->version == 2 ? "memory.max" : "memory.limit_in_bytes", val);
	if (ret)
		rmdir(dir);
	return ret;
}

int bench_cgroup_join(const char *dir)
{
	char pid[24];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return write_file(dir, "cgroup.procs", pid);
}

long bench_cgroup_anon_kib(const struct bench_cgroup_env *e, const char *dir)
{
	long long bytes = bench_file_number(dir, "memory.stat", e->version == 2 ? "anon" : "rss");

	return bytes < 0 ? -1 : (long)(bytes / 1024);
}

/* SIGKILL to every process in dir/cgroup.procs but this one: open, read
 * and kill only, for signal handlers. */
static void cgroup_kill_all(const char *dir)
{
	static const char procs[] = "/cgroup.procs";
	char path[600], buf[512];
	size_t len = strlen(dir);
	long pid = 0;
	bool digits = false;
	ssize_t n, i;
	int fd;

	if (len + sizeof(procs) > sizeof(path))
		return;
	memcpy(path, dir, len);
	memcpy(path + len, procs, sizeof(procs));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				pid = pid * 10 + (buf[i] - '0');
				digits = true;
				continue;
			}
			if (digits && pid > 0 && pid != getpid())
				kill((pid_t)pid, SIGKILL);
			pid = 0;
			digits = false;
		}
	if (digits && pid > 0 && pid != getpid())
		kill((pid_t)pid, SIGKILL);
	close(fd);
}

int bench_cgroup_remove(const char *dir)
{
	struct timespec nap = { 0, 10 * 1000 * 1000 };
	int i;

	cgroup_kill_all(dir);
	/* the last task's exit can leave it busy for a moment */
	for (i = 0; i < 100; i++) {
		if (!rmdir(dir))
			return 0;
		if (errno != EBUSY)
			break;
		nanosleep(&nap, NULL);
	}
	return -errno;
}

static const int end_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };

void bench_catch_signals(void (*handler)(int))
{
	size_t i;

	for (i = 0; i < sizeof(end_signals) / sizeof(end_signals[0]); i++)
		signal(end_signals[i], handler);
}
