/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd bench serve: the page server next to the other ways a process can
 * get its memory back from a snapshot, on the same image, in the same run.
 *
 * The image is a checker table (every page stamped, fill 1.0) of 1 GiB
 * (--quick: 128 MiB), written as an image and as a raw memory file.  A
 * client is a fresh process that gets the memory and then touches its
 * working set: 10% of the pages, in a fixed order made of runs of 1 to 16
 * consecutive pages at random places - a function's cold start.  "The
 * working set is in" is the time from the client's first call to its last
 * touch.  The systems:
 *
 *   mmap-file       MAP_PRIVATE of the raw file (Firecracker's File
 *                   backend): the kernel faults and reads ahead
 *   eager-read      uffd_restore_open() eagerly: the whole image is read
 *                   into memory first
 *   inproc-lazy     uffd_restore_open(UFFD_RESTORE_LAZY): faults served
 *                   in the process, an address-order prefetch behind
 *   inproc-lazy-inthread  the same with uffd_restore_opts.in_thread: a
 *                   fault served by the touching thread itself (issue 17)
 *   serve-demand    the page server, on demand only
 *   serve-lazy      the page server with its background fill, no working
 *                   set (the server's answer to inproc-lazy)
 *   serve-prefetch  the page server with the working set recorded by one
 *                   earlier run (--record), then the background fill
 *   serve-lazy-1cpu serve-lazy with the server and the client on one CPU:
 *                   what a fault through the server costs when answering
 *                   it wakes no thread on another, idle vCPU (on a VM
 *                   whose idle vCPUs halt at once, a trip through the host
 *                   per fault; see guest_halt_poll_us in bench.c)
 *
 * Each system runs cold - the image, raw and working-set files dropped
 * from the page cache with POSIX_FADV_DONTNEED just before the client
 * starts (not drop_caches: the machine is shared) - and then warm, with
 * the cache as the cold run left it.  The servers are separate processes
 * started before the client (a server is long-running: its image index is
 * built once, not per client).  Then 1, 4 and 8 clients restore at once
 * and the time is from their common start to the last one's last touch:
 * from a prefetching server that copies (serve-prefetch), from one with a
 * shared page cache (serve-prefetch-shared), and - the kernel's own way,
 * the floor of this machine - mapping the raw file MAP_PRIVATE
 * (mmap-file); each cold (a new server, the files dropped) and hot (one
 * long-running server and the page cache holding everything).
 *
 * Every client's memory is checked against the checker's instant after
 * the timed part (a lazy client first waits until every page is in, the
 * on-demand one finishes its restore itself by detaching), and a wrong
 * page fails the bench.  Systems take turns going first; results are
 * medians of the rounds.
 *
 * With several clients the bench also reports a CPU floor: the CPU time
 * the server (all its threads, from /proc) and the clients (each its own,
 * from its start to its last touch) used, over the CPUs there are.  When
 * the CPUs are saturated - 8 clients on 2 vCPUs - the clients cannot have
 * their working sets in sooner than that; with CPUs to spare the servers'
 * polling counts too and the floor overstates.
 *
 * Goals (issue 12), as ratios where >= goal is met:
 *   prefetch_vs_demand_cold  serve-demand / serve-prefetch, cold  >= 3.7
 *   prefetch_vs_mmap_cold    mmap-file / serve-prefetch, cold     >= 1.5
 *   fault_cost_vs_inproc     inproc-lazy / serve-lazy us per fault,
 *                            warm                                 >= 1/1.2
 *   clients8_vs_1            2 x (1 client) / (8 clients), cold,
 *                            serve-prefetch                       >= 1
 *   clients8_vs_1_shared     the same, serve-prefetch-shared      >= 1
 *   clients8_vs_kernel_cold  8 clients: mmap-file /
 *                            serve-prefetch-shared, cold          >= 1
 *   clients8_vs_kernel_hot   the same, hot                        >= 1
 *   fault_cost_1cpu_vs_inproc inproc-lazy / serve-lazy-1cpu us per
 *                            fault, warm (no goal: the server's own
 *                            cost, the vCPU wake-up left out)
 *   inthread_fault_vs_inproc inproc-lazy / inproc-lazy-inthread us
 *                            per fault, warm                      >= 1
 *                            (issue 17 sets no goal: 1 is "no slower")
 *
 * clients8_vs_1 and clients8_vs_1_shared are the "8 clients take
 * at most 2x the time of one".  When the page cache is hot the work is
 * CPU-bound, and 8 clients on 2 CPUs cannot take 2x the time of one,
 * whoever serves them: the kernel's own mapping of the file (its
 * clients8_vs_1_hot is reported) shows what the machine allows, so
 * clients8_vs_kernel_* measure the server's 8 clients against the
 * kernel's 8 clients on the same files.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/image.h>
#include <uffd/serve.h>
#include <uffd/snapshot.h>

#include "bench.h"
#include "../tools/args.h"
#include "../tools/uffd.h"

#define PAGE_SZ		4096UL
#define CHUNK		64		/* pages per image chunk */
#define MAX_ROUNDS	9
#define WS_PERCENT	10
#define RUN_MAX		16		/* pages in one run of the working set */
#define NCOUNTS		3
#define MAX_CLIENTS	8
#define CLIENT_MS	120000		/* a client that takes longer has hung */

#define GOAL_PREFETCH_DEMAND	3.7
#define GOAL_PREFETCH_MMAP	1.5
#define GOAL_FAULT_COST		(1 / 1.2)
#define GOAL_CLIENTS		1.0
#define GOAL_INTHREAD		1.0
#define GOAL_CLIENTS_KERNEL	1.0

static const int client_counts[NCOUNTS] = { 1, 4, 8 };

enum sys {
	SYS_MMAP, SYS_EAGER, SYS_INPROC, SYS_DEMAND, SYS_LAZY, SYS_PREFETCH, SYS_INPROC_IT,
	SYS_LAZY_1CPU, NSYS
};
static const char *const sys_names[NSYS] = {
	"mmap-file", "eager-read", "inproc-lazy", "serve-demand", "serve-lazy", "serve-prefetch",
	"inproc-lazy-inthread", "serve-lazy-1cpu",
};

struct setup {
	char dir[256], img[300], raw[300], ws[310], sock[300];
	struct uffd_checker *chk;
	uint64_t npages;
	uint32_t *order;		/* the working set, in touch order */
	uint64_t norder;
};

/* What a client reports. */
struct result {
	double t0, t1;			/* first call, last touch (bench_now_us) */
	double t_ready;			/* the memory is there to touch */
	double cpu_us;			/* this process's CPU time, t0 to t1 */
	uint64_t faults;
	int err;			/* 0, or -errno; msg says more */
	char msg[200];
};

struct samples {
	double cold[MAX_ROUNDS], warm[MAX_ROUNDS], fault_us[MAX_ROUNDS];
};

/* Many clients at once: who serves them, and whether the caches are hot. */
enum many { MANY_COPY, MANY_SHARED, MANY_MMAP, NMANY };
static const char *const many_names[NMANY] = {
	"serve-prefetch", "serve-prefetch-shared", "mmap-file",
};
enum { COLD, HOT, NTEMP };

struct many_samples {
	double ms[MAX_ROUNDS][NTEMP][NCOUNTS];
	double floor[MAX_ROUNDS][NTEMP][NCOUNTS];	/* CPU floor */
};

static bool verbose;
static char failure[300];

static void fail_once(const char *what, const char *msg)
{
	if (!failure[0])
		snprintf(failure, sizeof(failure), "%s: %s", what, msg);
}

/* ---- the image ---------------------------------------------------------- */

static int write_files(struct setup *su, size_t bytes)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = bytes, .fill = 1.0);
	struct uffd_image_region reg;
	struct uffd_image_writer *w;
	const char *mem;
	uint64_t p;
	int fd, ret = 0;

	su->chk = uffd_checker_new(&co);
	if (!su->chk)
		return -errno;
	uffd_checker_mark_instant(su->chk);
	mem = uffd_checker_area(su->chk);
	su->npages = bytes / PAGE_SZ;
	reg = (struct uffd_image_region){ (uintptr_t)mem, bytes, PAGE_SZ, UFFD_IMAGE_ANON };
	w = uffd_image_create(su->img, &reg, 1, NULL, 0);
	if (!w)
		return -errno;
	for (p = 0; p < su->npages && !ret; p += CHUNK)
		ret = uffd_image_put(w, 0, p, CHUNK, mem + p * PAGE_SZ, 0);
	ret = ret ? (uffd_image_abort(w), ret) : uffd_image_commit(w);
	if (ret)
		return ret;
	fd = open(su->raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	for (p = 0; p < bytes && !ret; p += 8 << 20) {
		size_t n = bytes - p < (8u << 20) ? bytes - p : 8u << 20;

		if (pwrite(fd, mem + p, n, p) != (ssize_t)n)
			ret = -EIO;
	}
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/* 10% of the pages: runs of 1..16 pages at random places, in that order. */
static int make_order(struct setup *su)
{
	uint64_t want = su->npages * WS_PERCENT / 100, x = 0x9E3779B97F4A7C15ull;
	uint8_t *seen = calloc(su->npages, 1);

	su->order = malloc(want * sizeof(*su->order));
	if (!seen || !su->order) {
		free(seen);
		return -ENOMEM;
	}
	while (su->norder < want) {
		uint64_t start, len, p;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		start = x % su->npages;
		len = 1 + (x >> 40) % RUN_MAX;
		for (p = start; p < start + len && p < su->npages && su->norder < want; p++)
			if (!seen[p]++)
				su->order[su->norder++] = p;
	}
	free(seen);
	return 0;
}

/* Drop the files' pages from the page cache: the next run is cold. */
static void drop_cache(const struct setup *su)
{
	const char *files[] = { su->img, su->raw, su->ws };
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int fd = open(files[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			continue;
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* ---- a server process ------------------------------------------------- */

struct server {
	pid_t pid;
	int fd;
};

static void server_log(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "  server: %s\n", line);
}

/*
 * serve-lazy-1cpu: the server and its client on one CPU (the first this
 * process may use), so that answering a fault never wakes a thread on
 * another, idle vCPU - which on a VM whose idle vCPUs halt at once costs
 * a trip through the host per fault (bench.c, guest_halt_poll_us).  What
 * the server costs when the machine does not add that.
 */
static void pin_to_first_cpu(void)
{
	cpu_set_t set, one;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
		;
	if (cpu == CPU_SETSIZE)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

static int server_start(const struct setup *su, enum sys sys, bool record, bool shared,
			struct server *sv)
{
	int pipefd[2];
	char c;

	if (pipe(pipefd))
		return -errno;
	fflush(NULL);
	sv->pid = fork();
	if (sv->pid < 0)
		return -errno;
	if (!sv->pid) {
		UFFD_OPTS(uffd_serve_opts, o, .socket_path = su->sock, .image = su->img,
			  .ws_path = su->ws, .record = record, .prefetch = sys == SYS_PREFETCH,
			  .demand_only = sys == SYS_DEMAND, .max_clients = 64,
			  .shared_cache = shared,
			  .log = verbose ? server_log : NULL);
		struct uffd_serve_stats st;
		struct uffd_serve *s;
		sigset_t set;
		int sig, i;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (sys == SYS_LAZY_1CPU)
			pin_to_first_cpu();	/* before its threads start */
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigprocmask(SIG_BLOCK, &set, NULL);
		close(pipefd[0]);
		s = uffd_serve_new(&o);
		c = s ? 0 : errno;
		if (write(pipefd[1], &c, 1) != 1 || !s)
			_exit(2);
		sigwait(&set, &sig);
		for (i = 0; i < 5000; i++) {	/* let the last client's end land */
			uffd_serve_stats(s, &st);
			if (!st.clients)
				break;
			usleep(1000);
		}
		uffd_serve_free(s);
		_exit(write(pipefd[1], &st, sizeof(st)) == sizeof(st) ? 0 : 3);
	}
	close(pipefd[1]);
	sv->fd = pipefd[0];
	if (read(sv->fd, &c, 1) != 1)
		c = EIO;
	if (c) {
		close(sv->fd);
		waitpid(sv->pid, NULL, 0);
		return -c;
	}
	return 0;
}

static int server_stop(struct server *sv, struct uffd_serve_stats *st)
{
	int status, ret = 0;

	kill(sv->pid, SIGTERM);
	if (read(sv->fd, st, sizeof(*st)) != sizeof(*st))
		ret = -EIO;
	close(sv->fd);
	waitpid(sv->pid, &status, 0);
	return ret;
}

/* ---- CPU time ------------------------------------------------------------ */

static double cpu_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* CPU time of every thread of process pid so far (its schedstat), in us. */
static double cpu_of_us(pid_t pid)
{
	char path[300], line[128];
	double total = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	while (dir && (d = readdir(dir))) {
		unsigned long long ns;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, d->d_name);
		f = fopen(path, "r");
		if (f && fgets(line, sizeof(line), f) && sscanf(line, "%llu", &ns) == 1)
			total += ns / 1e3;
		if (f)
			fclose(f);
	}
	if (dir)
		closedir(dir);
	return total;
}

/* ---- a client process -------------------------------------------------------- */

static void touch_set(const struct setup *su, const char *mem)
{
	uint64_t i, sum = 0;

	for (i = 0; i < su->norder; i++)
		sum += *(const volatile uint64_t *)(mem + (uint64_t)su->order[i] * PAGE_SZ);
	__asm__ volatile("" : : "r"(sum));
}

static int verify(const struct setup *su, const void *mem, struct result *r)
{
	return uffd_checker_verify_memory(su->chk, mem, r->msg, sizeof(r->msg));
}

/*
 * The client's life, in a child.  Two results go to the parent: the timing
 * once the working set is in, then - after the parent says every client
 * of the run got that far, so no check competes with a timed part - the
 * outcome of checking the whole memory.
 */
static void client_main(const struct setup *su, enum sys sys, int ready, int out, int go,
			int vgo)
{
	UFFD_OPTS(uffd_serve_attach_opts, ao, .socket_path = su->sock,
		  .flags = UFFD_SERVE_ANYWHERE, .timeout_ms = 30000);
	UFFD_OPTS(uffd_restore_opts, ro);
	size_t bytes = su->npages * PAGE_SZ;
	struct uffd_serve_client_stats cst;
	struct uffd_restore_stats rst;
	struct uffd_serve_client *c = NULL;
	struct uffd_restore *rs = NULL;
	struct result r = { 0 };
	char *mem = NULL, b;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (sys == SYS_LAZY_1CPU)
		pin_to_first_cpu();
	if (write(ready, "r", 1) != 1 || read(go, &b, 1) < 0)
		_exit(2);
	r.t0 = bench_now_us();
	r.cpu_us = cpu_now_us();
	switch (sys) {
	case SYS_MMAP:
		fd = open(su->raw, O_RDONLY | O_CLOEXEC);
		mem = fd < 0 ? MAP_FAILED : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE,
						 fd, 0);
		if (mem == MAP_FAILED) {
			r.err = -errno;
			mem = NULL;
		}
		break;
	case SYS_EAGER:
	case SYS_INPROC:
	case SYS_INPROC_IT:
		ro.flags = UFFD_RESTORE_ANYWHERE | (sys != SYS_EAGER ? UFFD_RESTORE_LAZY : 0);
		ro.in_thread = sys == SYS_INPROC_IT;
		rs = uffd_restore_open_opts(su->img, &ro);
		if (!rs)
			r.err = -errno;
		else
			mem = uffd_restore_addr(rs, 0);
		break;
	default:
		c = uffd_serve_attach(&ao);
		if (!c)
			r.err = -errno;
		else
			mem = uffd_serve_client_addr(c, 0);
		break;
	}
	if (mem) {
		r.t_ready = bench_now_us();
		touch_set(su, mem);
		r.t1 = bench_now_us();
		r.cpu_us = cpu_now_us() - r.cpu_us;
		if (c && !uffd_serve_client_stats(c, &cst))
			r.faults = cst.faults;
		if (rs && !uffd_restore_stats(rs, &rst))
			r.faults = rst.faulted;
		if (write(out, &r, sizeof(r)) != sizeof(r) || read(vgo, &b, 1) < 0)
			_exit(3);
		/* Untimed: the whole memory, exactly. */
		if (rs)
			r.err = uffd_restore_wait(rs, CLIENT_MS);
		if (c && sys == SYS_DEMAND) {
			uffd_serve_detach(c, false);	/* completes the restore here */
			c = NULL;
		} else if (c) {
			r.err = uffd_serve_client_wait(c, CLIENT_MS);
		}
		if (!r.err)
			r.err = verify(su, mem, &r);
		else
			snprintf(r.msg, sizeof(r.msg), "restore: %s", strerror(-r.err));
	} else {
		snprintf(r.msg, sizeof(r.msg), "%s: %s", sys_names[sys], strerror(-r.err));
		if (write(out, &r, sizeof(r)) != sizeof(r) || read(vgo, &b, 1) < 0)
			_exit(3);
	}
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(3);
	_exit(0);
}

/* Start n clients of sys, all at once (*t_go) when every one is waiting. */
static int run_clients(const struct setup *su, enum sys sys, int n, struct result *res,
		       double *t_go, pid_t server, double *server_cpu_us)
{
	int ready[2], out[2], go[2], vgo[2], i, ret = 0, status;
	struct result check;
	pid_t pids[MAX_CLIENTS];
	char b;

	if (pipe(ready) || pipe(out) || pipe(go) || pipe(vgo))
		return -errno;
	fflush(NULL);
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			ret = -errno;
			n = i;
			break;
		}
		if (!pids[i]) {
			close(ready[0]);
			close(out[0]);
			close(go[1]);
			close(vgo[1]);
			client_main(su, sys, ready[1], out[1], go[0], vgo[0]);
		}
	}
	close(ready[1]);
	close(out[1]);
	close(go[0]);
	close(vgo[0]);
	for (i = 0; i < n && !ret; i++) {	/* every client waiting on go */
		struct pollfd p = { .fd = ready[0], .events = POLLIN };

		if (poll(&p, 1, CLIENT_MS) != 1 || read(ready[0], &b, 1) != 1)
			ret = -EIO;
	}
	close(ready[0]);
	if (server_cpu_us)
		*server_cpu_us = server > 0 ? -cpu_of_us(server) : 0;
	*t_go = bench_now_us();
	close(go[1]);
	/* The timings (in the order the clients finish), then the checks. */
	for (i = 0; i < n; i++)
		if (read(out[0], &res[i], sizeof(res[i])) != sizeof(res[i]) && !ret)
			ret = -EIO;
	if (server_cpu_us && server > 0)
		*server_cpu_us += cpu_of_us(server);
	close(vgo[1]);
	for (i = 0; i < n; i++) {
		if (read(out[0], &check, sizeof(check)) != sizeof(check)) {
			ret = ret ? ret : -EIO;
			continue;
		}
		if (check.err && !ret) {
			fail_once(sys_names[sys], check.msg);
			ret = check.err;
		}
	}
	for (i = 0; i < n; i++)
		waitpid(pids[i], &status, 0);
	close(out[0]);
	return ret;
}

static bool is_served(enum sys sys)
{
	return sys == SYS_DEMAND || sys == SYS_LAZY || sys == SYS_PREFETCH || sys == SYS_LAZY_1CPU;
}

/* One system: a cold run, then a warm one; ms to the working set, and
 * us per fault (warm) for the lazy systems. */
static int run_system(const struct setup *su, enum sys sys, double *cold, double *warm,
		      double *fault_us)
{
	struct uffd_serve_stats st;
	struct server sv = { 0 };
	struct result r;
	double t_go;
	int ret, k;

	if (is_served(sys)) {
		ret = server_start(su, sys, false, false, &sv);
		if (ret)
			return ret;
	}
	for (k = 0; k < 2; k++) {
		if (k == 0)
			drop_cache(su);
		ret = run_clients(su, sys, 1, &r, &t_go, 0, NULL);
		if (!ret && r.err) {
			fail_once(sys_names[sys], r.msg);
			ret = r.err;
		}
		if (ret)
			break;
		*(k == 0 ? cold : warm) = (r.t1 - r.t0) / 1000;
		if (k == 1)
			*fault_us = r.faults ? (r.t1 - r.t_ready) / r.faults : 0;
		if (verbose)
			fprintf(stderr, "  %-20s %s %9.1f ms (%.1f ms to attach or open), "
				"%llu faults\n", sys_names[sys], k ? "warm" : "cold",
				(r.t1 - r.t0) / 1000, (r.t_ready - r.t0) / 1000,
				(unsigned long long)r.faults);
	}
	if (is_served(sys))
		server_stop(&sv, &st);
	return ret;
}

/* The time from the common start to the last client's last touch, and
 * the CPU floor (see run_many()). */
static int many_times(enum many kind, bool hot, int n, const struct result *r, double t_go,
		      double cpu, double *ms, double *floor_ms)
{
	double last = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (r[i].err) {
			fail_once(many_names[kind], r[i].msg);
			return r[i].err;
		}
		if (r[i].t1 > last)
			last = r[i].t1;
		cpu += r[i].cpu_us;
	}
	*ms = (last - t_go) / 1000;
	*floor_ms = cpu / 1000 / sysconf(_SC_NPROCESSORS_ONLN);
	if (verbose)
		fprintf(stderr, "  %-21s %s, %d client%s at once %9.1f ms (CPU floor %.1f ms)\n",
			many_names[kind], hot ? "hot " : "cold", n, n == 1 ? " " : "s", *ms,
			*floor_ms);
	return 0;
}

/*
 * 1, 4 and 8 clients at once, cold or hot: ms from their common start to
 * the last one's last touch, into ms[k] for client_counts[k].  Served by
 * a prefetching server (copying, or from its shared cache), or - the
 * kernel's own way, the floor - mapping the raw file MAP_PRIVATE.  Cold:
 * a new server for each count, the files dropped from the page cache
 * first.  Hot: one server for all counts, and one client first, untimed
 * and complete, so that the page cache - and a shared server's cache -
 * hold everything (a long-running server in its steady state).
 * floor_ms[k]: the CPU time the server and the clients spent meanwhile,
 * over the CPUs there are - the time those clients cannot beat here.
 */
static int run_many(const struct setup *su, enum many kind, bool hot, double *ms,
		    double *floor_ms)
{
	enum sys sys = kind == MANY_MMAP ? SYS_MMAP : SYS_PREFETCH;
	struct server sv = { .pid = 0 };
	struct result r[MAX_CLIENTS];
	struct uffd_serve_stats st;
	bool serving = false;
	double t_go, cpu;
	int ret = 0, k;

	for (k = 0; k < NCOUNTS && !ret; k++) {
		if (kind != MANY_MMAP && !serving) {
			ret = server_start(su, SYS_PREFETCH, false, kind == MANY_SHARED, &sv);
			if (ret)
				break;
			serving = true;
		}
		if (!hot)
			drop_cache(su);
		else if (k == 0)
			ret = run_clients(su, sys, 1, r, &t_go, 0, NULL);
		if (!ret)
			ret = run_clients(su, sys, client_counts[k], r, &t_go, sv.pid, &cpu);
		if (!ret)
			ret = many_times(kind, hot, client_counts[k], r, t_go, cpu, &ms[k],
					 &floor_ms[k]);
		if (serving && !hot) {
			server_stop(&sv, &st);
			serving = false;
		}
	}
	if (serving)
		server_stop(&sv, &st);
	return ret;
}

/* The working set, recorded by one client of a recording server. */
static int record_working_set(const struct setup *su)
{
	struct uffd_serve_stats st;
	struct server sv;
	struct result r;
	double t_go;
	int ret;

	ret = server_start(su, SYS_DEMAND, true, false, &sv);
	if (ret)
		return ret;
	ret = run_clients(su, SYS_DEMAND, 1, &r, &t_go, 0, NULL);
	if (server_stop(&sv, &st) && !ret)
		ret = -EIO;
	if (!ret && r.err) {
		fail_once("record", r.msg);
		ret = r.err;
	}
	if (!ret && st.recorded != su->norder) {
		fail_once("record", "the working set was not recorded in full");
		ret = -EIO;
	}
	return ret;
}

/* ---- the bench ----------------------------------------------------------- */

static double med(double *v, int n)
{
	return bench_median(v, n);
}

int bench_serve(int argc, char **argv)
{
	struct bench_report rep = { .bench = "serve" };
	static struct samples sm[NSYS];
	static struct many_samples mm[NMANY];
	static struct setup su;
	uint64_t size = 0, nrounds = 0;
	bool quick = false, size_seen = false, rounds_seen = false;
	const char *dir = NULL;
	const struct arg_opt opts[] = {
		OPT_FLAG("json", 'j', &rep.json, "JSON lines, the summary last"),
		OPT_FLAG("quick", 'q', &quick, "a run of under 30 s: 128 MiB, 2 rounds"),
		OPT_UINT("size", 's', &size, &size_seen, "MiB", "the image (default 1024); a "
			 "multiple of 1 MiB, at least 16", 16, BENCH_MAX_MIB, 1UL << 20),
		OPT_UINT("rounds", 'r', &nrounds, &rounds_seen, "N", "rounds, the median "
			 "reported (default 3)", 1, MAX_ROUNDS, 1),
		OPT_STRING("dir", 'd', &dir, "DIR", "where the files' directory is made "
			   "(default /var/tmp)", 200),
		OPT_FLAG("verbose", 'v', &verbose, "each run, and the servers' log, on stderr"),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd bench serve",
		.about = "The page server against mmap of the raw file, an eager read and the\n"
			 "in-process lazy restore (hand-off and in-thread): the time until a\n"
			 "client process has a 10% working set in, cold and warm, us per fault,\n"
			 "and 1, 4 and 8 clients at once.  Every client's memory is checked\n"
			 "exact.  The files go to a new directory under /var/tmp (or DIR) and are\n"
			 "deleted.\n",
		.opts = opts,
	};
	size_t bytes = 1UL << 30;
	int rounds = 3, round, i, k, ret = 0;
	double v[NSYS][3], many[NMANY][NTEMP][NCOUNTS], scale[NMANY][NTEMP];
	int t;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	ret = 0;
	/* --quick picks the defaults; options given say otherwise, in any order. */
	if (quick) {
		bytes = 128UL << 20;
		rounds = 2;
	}
	if (size_seen)
		bytes = size;
	if (rounds_seen)
		rounds = (int)nrounds;
	snprintf(su.dir, sizeof(su.dir), "%s/uffd-bench-serve.XXXXXX", dir ? dir : "/var/tmp");
	if (!mkdtemp(su.dir)) {
		fprintf(stderr, "uffd bench serve: mkdtemp %s: %s\n", su.dir, strerror(errno));
		return EXIT_FAILED;
	}
	snprintf(su.img, sizeof(su.img), "%s/table.img", su.dir);
	snprintf(su.raw, sizeof(su.raw), "%s/table.mem", su.dir);
	snprintf(su.ws, sizeof(su.ws), "%s/table.img.ws", su.dir);
	snprintf(su.sock, sizeof(su.sock), "%s/sock", su.dir);
	if (!rep.json)
		printf("uffd bench serve: checker table of %zu MiB (fill 1.0), working set %d%% "
		       "of its pages, %d rounds, files in %s\n", bytes >> 20, WS_PERCENT, rounds,
		       su.dir);
	fflush(stdout);
	ret = write_files(&su, bytes);
	if (!ret)
		ret = make_order(&su);
	if (!ret)
		ret = record_working_set(&su);
	for (round = 0; !ret && round < rounds; round++) {
		for (k = 0; k < NSYS && !ret; k++) {
			int s = (round + k) % NSYS;

			ret = run_system(&su, s, &sm[s].cold[round], &sm[s].warm[round],
					 &sm[s].fault_us[round]);
		}
		for (i = 0; i < NMANY * NTEMP && !ret; i++) {
			/* who goes first takes turns too */
			int kind = (i / NTEMP + round) % NMANY;

			t = i % NTEMP;
			ret = run_many(&su, kind, t == HOT, mm[kind].ms[round][t],
				       mm[kind].floor[round][t]);
		}
	}
	unlink(su.img);
	unlink(su.raw);
	unlink(su.ws);
	unlink(su.sock);
	rmdir(su.dir);
	uffd_checker_free(su.chk);
	free(su.order);
	if (ret) {
		fprintf(stderr, "uffd bench serve: FAILED: %s\n",
			failure[0] ? failure : strerror(-ret));
		return EXIT_FAILED;
	}

	if (!rep.json)
		printf("\n  medians of %d rounds (ms until the working set of %llu pages is in):\n",
		       rounds, (unsigned long long)su.norder);
	for (i = 0; i < NSYS; i++) {
		v[i][0] = med(sm[i].cold, rounds);
		v[i][1] = med(sm[i].warm, rounds);
		v[i][2] = med(sm[i].fault_us, rounds);
		bench_result(&rep, sys_names[i], "ws_in_ms_cold", v[i][0], "ms");
		bench_result(&rep, sys_names[i], "ws_in_ms_warm", v[i][1], "ms");
		if (i == SYS_INPROC || i == SYS_INPROC_IT || i == SYS_DEMAND || i == SYS_LAZY ||
		    i == SYS_LAZY_1CPU)
			bench_result(&rep, sys_names[i], "us_per_fault_warm", v[i][2], "us");
	}
	for (i = 0; i < NMANY; i++) {
		for (t = 0; t < NTEMP; t++) {
			const char *temp = t == HOT ? "hot" : "cold";
			char metric[48];

			for (k = 0; k < NCOUNTS; k++) {
				double col[MAX_ROUNDS], fcol[MAX_ROUNDS];

				for (round = 0; round < rounds; round++) {
					col[round] = mm[i].ms[round][t][k];
					fcol[round] = mm[i].floor[round][t][k];
				}
				many[i][t][k] = med(col, rounds);
				snprintf(metric, sizeof(metric), "ws_in_ms_%s_%d_clients", temp,
					 client_counts[k]);
				bench_result(&rep, many_names[i], metric, many[i][t][k], "ms");
				if (i == MANY_MMAP)
					continue;	/* no server to count */
				snprintf(metric, sizeof(metric), "cpu_floor_ms_%s_%d_clients",
					 temp, client_counts[k]);
				bench_result(&rep, many_names[i], metric, med(fcol, rounds),
					     "ms");
			}
			/* 2 x (1 client) / (8 clients): 1 is "8 take 2x the time of 1" */
			scale[i][t] = many[i][t][NCOUNTS - 1] ?
				      2 * many[i][t][0] / many[i][t][NCOUNTS - 1] : 0;
			snprintf(metric, sizeof(metric), "clients8_vs_1_%s", temp);
			bench_result(&rep, many_names[i], metric, scale[i][t], "x");
		}
	}
	bench_ratio(&rep, "prefetch_vs_demand_cold", v[SYS_DEMAND][0] / v[SYS_PREFETCH][0],
		    GOAL_PREFETCH_DEMAND);
	bench_ratio(&rep, "prefetch_vs_mmap_cold", v[SYS_MMAP][0] / v[SYS_PREFETCH][0],
		    GOAL_PREFETCH_MMAP);
	bench_ratio(&rep, "fault_cost_vs_inproc", v[SYS_LAZY][2] ?
		    v[SYS_INPROC][2] / v[SYS_LAZY][2] : 0, GOAL_FAULT_COST);
	/* No goal: the server's own cost, with the VM's vCPU wake-up out. */
	bench_ratio(&rep, "fault_cost_1cpu_vs_inproc", v[SYS_LAZY_1CPU][2] ?
		    v[SYS_INPROC][2] / v[SYS_LAZY_1CPU][2] : 0, 0);
	bench_ratio(&rep, "clients8_vs_1", scale[MANY_COPY][COLD], GOAL_CLIENTS);
	bench_ratio(&rep, "clients8_vs_1_shared", scale[MANY_SHARED][COLD], GOAL_CLIENTS);
	/* The kernel's own mapping of the file is what this machine allows
	 * 8 clients at once: 8 of the server's against 8 of the kernel's. */
	for (t = 0; t < NTEMP; t++)
		bench_ratio(&rep, t == HOT ? "clients8_vs_kernel_hot" : "clients8_vs_kernel_cold",
			    many[MANY_SHARED][t][NCOUNTS - 1] ? many[MANY_MMAP][t][NCOUNTS - 1] /
			    many[MANY_SHARED][t][NCOUNTS - 1] : 0, GOAL_CLIENTS_KERNEL);
	bench_ratio(&rep, "inthread_fault_vs_inproc", v[SYS_INPROC_IT][2] ?
		    v[SYS_INPROC][2] / v[SYS_INPROC_IT][2] : 0, GOAL_INTHREAD);
	snprintf(rep.config, sizeof(rep.config),
		 "{\"bytes\":%zu,\"pages\":%llu,\"ws_pages\":%llu,\"run_max\":%d,\"rounds\":%d,"
		 "\"cold\":\"posix_fadvise(DONTNEED) on the image, raw and working-set files\","
		 "\"clients\":[1,4,8]}", bytes, (unsigned long long)su.npages,
		 (unsigned long long)su.norder, RUN_MAX, rounds);
	bench_print(&rep);
	return EXIT_OK;
}
