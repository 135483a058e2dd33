/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd bench pager: a file four times larger than the memory allowed, read
 * and written through the libuffd pager and through the kernel (mmap of
 * the same file), both held to the same memory.
 *
 * The idea that makes the comparison fair is that each run is a fresh
 * child process in a fresh memory cgroup, started with a cold page cache:
 *
 *   kernel   the child joins a memory cgroup limited to MEM (created and
 *            removed by this process: cgroup v1 memory.limit_in_bytes or
 *            v2 memory.max) and mmaps the file MAP_SHARED, no madvise, as
 *            a program would.  For random and zipf reads (one thread) the
 *            same with MADV_RANDOM runs too, as a reference: the device's
 *            read-ahead (read_ahead_kb, 8 MiB on these VMs) makes every
 *            mmap fault read a window around the page, and in a cgroup
 *            that window evicts the last one - ms per random page;
 *   libuffd  the child maps the file through a pager whose buffer is MEM
 *            (uffd_store_file, O_DIRECT: no page cache on this side; batches
 *            of reads in flight through io_uring when built with it), with
 *            one filler per application thread, inside a cgroup limited
 *            to MEM + LIBUFFD_SLACK so that the cap is provably real;
 *            for random reads (1 and 8 threads) the same pager in-thread
 *            too (opts.in_thread: each faulting thread reads and maps its
 *            own page from its SIGBUS handler, no hand-off).
 *
 * Then, in-process, the two ways to map a 1 MiB read-ahead window in:
 * from a reused bounce buffer with UFFDIO_COPY (what the pager does) and
 * from fresh pages with UFFDIO_MOVE (fill_move_us_over_copy_us > 1: the
 * copy is cheaper here).
 *
 * Before every run the file's pages are written back and dropped
 * (fdatasync, POSIX_FADV_DONTNEED, and echo 3 > drop_caches when allowed).
 * Before the runs, the device's own speed under the file is measured with
 * O_DIRECT and stated in the config ("disk"): 1 MiB sequential reads, 4 in
 * flight, and 4 KiB random reads one at a time and from 8 threads - on a
 * VM whose host caches the virtual disk, what the kernel's page cache is
 * really up against.  The workloads, with 1 and 2 application threads
 * splitting the work (and random reads with 8 too, on libuffd and
 * MADV_RANDOM mmap, for how each scales with threads):
 *
 *   random   N random pages (default: a quarter of the file's pages), one
 *            8-byte word at a random offset of each;
 *   seq      the whole file in order (each thread a contiguous share), one
 *            word per page and every word of every 64th page;
 *   rmw      N/4 distinct random pages: read a word, check it, write a new
 *            one; the time includes making it durable (msync MS_SYNC /
 *            uffd_pager_flush);
 *   zipf     8N reads (twice the file's pages) drawn from a zipf law over
 *            the pages (s = 0.99) whose ranks are scattered over the file
 *            by a random permutation.  More reads than the N: with
 *            N the hot set fits in the buffer and the hit rate would only
 *            count first touches, not what eviction keeps.
 *
 * Every word of the file is a hash of its offset, so any read is checked
 * where it happens.  After an rmw run this process reads every written
 * word back with pread (what any other reader of the file sees) and then
 * puts the original words back for the next run.  The accesses are drawn
 * here once, before any run, so both systems do exactly the same ones.
 *
 * A run stops its accesses when its time budget is spent (so that a side
 * paying ms per page does not take an hour) and reports the pages it did.
 *
 * Measured per run: wall time over pages accessed (us/page); for zipf the
 * hit rate, 1 - majflt/reads for the kernel and 1 - (faults - hits)/reads
 * for libuffd (a fault that did not read the store, read-ahead being a
 * hit); mismatches; the child's peak RSS over its RSS at start (VmHWM) and
 * the cgroup's peak usage (page cache included).  Ratios are taken on the
 * one-thread runs, but for the 8-thread random reads' three: libuffd's
 * throughput at 8 threads over its own at one, and MADV_RANDOM mmap's us
 * per page over libuffd's at 8, and over in-thread libuffd's at 8 (and,
 * without goals, the disk's own 8-thread us per page over MADV_RANDOM
 * mmap's and over in-thread libuffd's: how near each is to the device);
 * the rest are reported as results.  The
 * zipf reads start with an untimed warm-up (the first ZIPF_WARM_BUFFERS x
 * the buffer's pages of reads, one thread; the kernel side with
 * MADV_RANDOM meanwhile, then MADV_NORMAL again for plain mmap) so that
 * the hit rates compare warm caches, not who prefetches more into an empty
 * one; the hit-rate ratio is over the measured reads both did (the misses
 * are sampled every CHECKPOINT_EVERY reads), since a run may be cut.
 *
 * A child that does not finish within the timeout is killed and reported,
 * as is one that dies (SIGBUS from the pager, the cgroup's OOM killer):
 * any failure or mismatch makes the bench exit 1 after printing.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uffd/pager.h>
#include <uffd/uffd.h>

#include "bench.h"
#include "../tools/args.h"
#include "../tools/uffd.h"

#define PAGE_SZ			4096UL
#define WORD_SZ			sizeof(uint64_t)
#define PAGE_WORDS		(PAGE_SZ / WORD_SZ)
#define DEFAULT_MEM		(256UL << 20)
#define QUICK_MEM		(32UL << 20)
#define MIN_MEM			(4UL << 20)
#define MAX_MEM			(16UL << 30)
#define FILE_OVER_MEM		4		/* the issue: a file 4x the memory */
#define LIBUFFD_SLACK		(64UL << 20)	/* threads, tables, shadows' overhead */
#define ZIPF_S			0.99
#define ZIPF_OVER_N		8		/* zipf reads: twice the file's pages */
#define ZIPF_WARM_BUFFERS	4		/* of them, warm-up: 4x the buffer */
#define FULL_CHECK_EVERY	64		/* seq: every word of one page in 64 */
#define DEFAULT_TIMEOUT_S	120
#define QUICK_TIMEOUT_S		60
#define DEFAULT_BUDGET_S	15		/* a run stops its accesses after this */
#define QUICK_BUDGET_S		2
#define CLOCK_EVERY		64		/* accesses between looks at the clock */
#define CHECKPOINT_EVERY	256		/* accesses between misses samples */
#define MAX_THREADS		8
/* The thread counts runs are made with: every workload with 1 and 2, and
 * random reads with 8 as well (libuffd and MADV_RANDOM mmap: the issue's
 * scaling goal, where the device has reads to overlap). */
static const int thread_counts[] = { 1, 2, 8 };
#define NTHR			3
#define SCALE_THREADS		8
#define GEN_CHUNK		(1UL << 20)
#define DISK_MARGIN		(64UL << 20)

/* Fixed seeds: the same file and the same accesses on every run. */
#define DATA_SEED		0x5eed0f11e0000001ULL
#define WRITE_SEED		0x5eed0f11e0000002ULL
#define ACCESS_SEED		0x5eed0f11e0000003ULL

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC		0x01021994
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC		0x858458f6
#endif

/* The runs[] slot of a thread count (one of thread_counts). */
static int thr_slot(int threads)
{
	int i;

	for (i = 0; i < NTHR - 1 && thread_counts[i] != threads; i++)
		;
	return i;
}

/* Goals (issue), as ratios where >= goal is met. */
#define GOAL_RANDOM		0.5		/* random reads within 2x of the kernel */
#define GOAL_SEQ		1.0		/* sequential at least the kernel's speed */
#define GOAL_ZIPF_HIT		1.0		/* zipf hit rate at least the kernel's */
#define GOAL_SCALE		2.0		/* 8 threads: 2x one thread's throughput */
#define GOAL_SCALE_KERNEL	1.0		/* 8 threads: at least MADV_RANDOM mmap */

/* kernel_mmap is the peer the goals are against; the same with MADV_RANDOM
 * (no read-around) is run for random and zipf reads, one thread, as a
 * reference.  libuffd_inthread is the pager with opts.in_thread. */
enum { SYS_KERNEL, SYS_KERNEL_RANDOM, SYS_LIBUFFD, SYS_LIBUFFD_INTHREAD, NSYS };
static const char *const sys_names[NSYS] = { "kernel_mmap", "kernel_mmap_madv_random",
					     "libuffd", "libuffd_inthread" };

static bool is_libuffd(int sys)
{
	return sys == SYS_LIBUFFD || sys == SYS_LIBUFFD_INTHREAD;
}

enum { WL_RANDOM, WL_SEQ, WL_RMW, WL_ZIPF, NWL };
/* NULL-terminated: the --only choices too. */
static const char *const wl_names[NWL + 1] = { "random_read", "seq_read", "rmw", "zipf_read",
						NULL };
/* --only's choices: a workload, or the Redis section alone. */
#define ONLY_REDIS		NWL
static const char *const only_names[] = { "random_read", "seq_read", "rmw", "zipf_read",
					  "redis", NULL };

/*
 * Which runs are made: every workload with 1 and 2 threads on both mmap
 * and libuffd; MADV_RANDOM mmap (a reference) with random and zipf reads
 * at one thread; random reads with 8 threads on libuffd and MADV_RANDOM
 * mmap (plain mmap's read-around would only be cut by the budget); and
 * in-thread libuffd with random reads, 1 and 8 threads.
 */
static bool runs_with(int wl, int threads, int sys)
{
	if (sys == SYS_LIBUFFD_INTHREAD)
		return wl == WL_RANDOM && (threads == 1 || threads == SCALE_THREADS);
	if (threads == SCALE_THREADS)
		return wl == WL_RANDOM && sys != SYS_KERNEL;
	if (sys == SYS_KERNEL_RANDOM)
		return threads == 1 && (wl == WL_RANDOM || wl == WL_ZIPF);
	return true;
}

/* How far a child got: told when it is killed or dies. */
enum { STAGE_FORKED, STAGE_CGROUP, STAGE_MAP, STAGE_RUN, STAGE_FLUSH, STAGE_UNMAP,
       STAGE_FREE, STAGE_DONE, NSTAGES };
static const char *const stage_names[NSTAGES] = {
	"start", "joining the cgroup", "mapping", "running the workload",
	"flushing", "unmapping", "freeing the pager", "done",
};

/* What the child leaves in a shared page (it may be killed at any stage). */
struct run_result {
	int stage;
	int err;			/* 0 or -errno, with msg */
	char msg[200];
	double work_us;			/* the accesses */
	double flush_us;		/* rmw: msync / uffd_pager_flush */
	uint64_t accesses;		/* done, all threads */
	uint64_t done[MAX_THREADS];	/* done, per thread (of its share) */
	bool cut;			/* stopped by the time budget */
	uint64_t mismatches;
	uint64_t bad_off, bad_val;	/* the first mismatch */
	uint64_t misses;		/* kernel: majflt; libuffd: faults - hits
					   (measured reads only) */
	uint64_t warm_reads, warm_misses;	/* zipf: the untimed warm-up */
	long rss_start_kib, rss_peak_kib;
	struct uffd_pager_stats st;	/* libuffd */
	/* then, in the same shared mapping, one-thread runs' misses after
	 * each CHECKPOINT_EVERY accesses (run_checkpoints) */
};

static inline uint64_t *run_checkpoints(struct run_result *r)
{
	return (uint64_t *)(r + 1);
}

/* One run as the parent sees it. */
struct run_rec {
	bool ran, ok;
	double us_per_page, hit_rate;
	uint64_t mismatches;		/* read in the child + written words on file */
	double rss_mib, cg_peak_mib;
	struct run_result res;
	uint64_t *chk;			/* a copy, one-thread runs */
	uint64_t nchk;
};

/* The accesses of one workload: byte offsets of the words to touch. */
struct plan {
	uint64_t *off;
	uint64_t n;
};

/* The device's own speed under the file, measured before the runs with
 * O_DIRECT (no page cache; the host may still cache a virtual disk). */
struct disk_speed {
	double seq_mb_s;		/* 1 MiB reads, DISK_SEQ_QD in flight */
	double rand_qd1_iops;		/* 4 KiB random reads, one at a time */
	double rand_8thr_iops;		/* the same, 8 threads */
};

struct pager_bench {
	size_t mem;
	uint64_t file_bytes, pages;
	uint64_t random_n;
	int timeout_s, budget_s;
	int only_wl;			/* -1: every workload */
	int only_threads;		/* 0: every count of thread_counts */
	char parent_dir[200];
	char dir[256];
	char path[300];
	bool drop_caches;
	char drop_why[64];
	struct bench_cgroup_env cg;
	struct disk_speed disk;
	struct plan plans[NWL];		/* seq has none: it walks the pages */
	struct run_result *shared;	/* MAP_SHARED: the child's report */
	size_t shared_len;
	struct run_rec runs[NSYS][NWL][NTHR];
	bool human;
};

/* ---- the file's contents ---------------------------------------------------- */

/* A 64-bit finalizer (xor-shift-multiply): every word a hash of its offset. */
static inline uint64_t mix64(uint64_t z)
{
	z ^= z >> 33;
	z *= 0xff51afd7ed558ccdULL;
	z ^= z >> 33;
	z *= 0xc4ceb9fe1a85ec53ULL;
	z ^= z >> 33;
	return z;
}

static inline uint64_t data_word(uint64_t off)
{
	return mix64(off + DATA_SEED);
}

static inline uint64_t written_word(uint64_t off)
{
	return mix64(off + WRITE_SEED);
}

/* splitmix64: the accesses' random numbers. */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int generate_file(const struct pager_bench *b)
{
	uint64_t *buf, off, i;
	int fd, ret = 0;

	fd = open(b->path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	buf = malloc(GEN_CHUNK);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (off = 0; off < b->file_bytes && !ret; off += GEN_CHUNK) {
		size_t len = b->file_bytes - off < GEN_CHUNK ? b->file_bytes - off : GEN_CHUNK;
		size_t done = 0;

		for (i = 0; i < len / WORD_SZ; i++)
			buf[i] = data_word(off + i * WORD_SZ);
		while (done < len) {
			ssize_t n = pwrite(fd, (char *)buf + done, len - done, off + done);

			if (n <= 0) {
				ret = n < 0 ? -errno : -EIO;
				break;
			}
			done += n;
		}
	}
	if (!ret && fdatasync(fd))
		ret = -errno;
	free(buf);
	close(fd);
	return ret;
}

/* Write back and drop the file's pages, then every clean page when allowed. */
static void cold_cache(const struct pager_bench *b)
{
	int fd;

	sync();
	fd = open(b->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	if (b->drop_caches) {
		fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "3", 1) != 1)
				fprintf(stderr, "uffd bench pager: drop_caches: %s\n",
					strerror(errno));
			close(fd);
		}
	}
}

/* ---- the device's own speed ----------------------------------------------- */

#define DISK_SEQ_QD		4		/* 1 MiB reads in flight */
#define DISK_SEQ_BLOCK		(1UL << 20)
#define DISK_RAND_READS		2000		/* per measure, at most */
#define DISK_MEASURE_US		1e6		/* and at most this long */

struct disk_job {
	pthread_t thread;
	int fd;
	uint64_t from, to;		/* seq: bytes [from, to) */
	uint64_t pages, seed;		/* rand */
	uint64_t done;			/* bytes (seq) or reads (rand) */
	bool rand, failed;
	double deadline;
};

static void *disk_job_main(void *arg)
{
	struct disk_job *j = arg;
	size_t len = j->rand ? PAGE_SZ : DISK_SEQ_BLOCK;
	uint64_t off = j->from;
	void *buf;

	if (posix_memalign(&buf, PAGE_SZ, len)) {
		j->failed = true;
		return NULL;
	}
	while (!j->failed) {
		ssize_t n;

		if (j->rand) {
			if (j->done == DISK_RAND_READS || bench_now_us() > j->deadline)
				break;
			off = rng_next(&j->seed) % j->pages * PAGE_SZ;
		} else if (off >= j->to) {
			break;
		}
		n = pread(j->fd, buf, len, off);
		if (n <= 0) {
			j->failed = true;
			break;
		}
		if (j->rand) {
			j->done++;
		} else {
			j->done += n;
			off += n;
		}
	}
	free(buf);
	return NULL;
}

/* Run n jobs at once; the rate (bytes or reads per second), 0 on failure. */
static double disk_run(int fd, int n, bool rand, uint64_t bytes)
{
	struct disk_job j[8];
	uint64_t done = 0;
	double t0 = bench_now_us(), t;
	bool ok = true;
	int i, made;

	for (made = 0; made < n; made++) {
		j[made] = (struct disk_job){ .fd = fd, .rand = rand,
					     .from = bytes / DISK_SEQ_BLOCK * made / n * DISK_SEQ_BLOCK,
					     .to = bytes / DISK_SEQ_BLOCK * (made + 1) / n *
						   DISK_SEQ_BLOCK,
					     .pages = bytes / PAGE_SZ, .seed = ACCESS_SEED + made,
					     .deadline = t0 + DISK_MEASURE_US };
		if (pthread_create(&j[made].thread, NULL, disk_job_main, &j[made]))
			break;
	}
	for (i = 0; i < made; i++) {
		pthread_join(j[i].thread, NULL);
		done += j[i].done;
		ok &= !j[i].failed;
	}
	t = (bench_now_us() - t0) / 1e6;
	return ok && made == n && t > 0 ? done / t : 0;
}

/* The file's device read directly: sequential at DISK_SEQ_QD, random at
 * one and 8 in flight.  Zeros where O_DIRECT is refused. */
static void measure_disk(struct pager_bench *b)
{
	int fd = open(b->path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	memset(&b->disk, 0, sizeof(b->disk));
	if (fd < 0)
		return;
	b->disk.seq_mb_s = disk_run(fd, DISK_SEQ_QD, false, b->file_bytes) / 1e6;
	b->disk.rand_qd1_iops = disk_run(fd, 1, true, b->file_bytes);
	b->disk.rand_8thr_iops = disk_run(fd, 8, true, b->file_bytes);
	close(fd);
}

static void probe_drop_caches(struct pager_bench *b)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

	b->drop_caches = false;
	if (fd < 0) {
		snprintf(b->drop_why, sizeof(b->drop_why), "%s", strerror(errno));
		return;
	}
	sync();
	if (write(fd, "3", 1) == 1)
		b->drop_caches = true;
	else
		snprintf(b->drop_why, sizeof(b->drop_why), "%s", strerror(errno));
	close(fd);
}

/* ---- the accesses ------------------------------------------------------------- */

static int plan_alloc(struct plan *p, uint64_t n)
{
	p->n = n;
	p->off = malloc((n ? n : 1) * sizeof(*p->off));
	return p->off ? 0 : -ENOMEM;
}

static uint64_t random_word_off(uint64_t page, uint64_t *rng)
{
	return page * PAGE_SZ + (rng_next(rng) % PAGE_WORDS) * WORD_SZ;
}

/* Pages in a random order (Fisher-Yates), the first n shuffled at least. */
static uint32_t *shuffled_pages(uint64_t pages, uint64_t n, uint64_t *rng)
{
	uint32_t *perm = malloc(pages * sizeof(*perm));
	uint64_t i;

	if (!perm)
		return NULL;
	for (i = 0; i < pages; i++)
		perm[i] = i;
	for (i = 0; i < n && i + 1 < pages; i++) {
		uint64_t j = i + rng_next(rng) % (pages - i);
		uint32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/*
 * Zipf over the pages: the CDF of rank weights 1/(r+1)^s, searched by
 * bisection for each draw; rank r is page perm[r], so the hot pages are
 * scattered and no read-ahead finds them by their neighbours.
 */
static int plan_zipf(struct plan *p, uint64_t pages, uint64_t n, uint64_t *rng)
{
	uint32_t *perm = shuffled_pages(pages, pages, rng);
	double *cdf = malloc(pages * sizeof(*cdf)), sum = 0;
	uint64_t i;

	if (!perm || !cdf || plan_alloc(p, n)) {
		free(perm);
		free(cdf);
		return -ENOMEM;
	}
	for (i = 0; i < pages; i++) {
		sum += pow((double)(i + 1), -ZIPF_S);
		cdf[i] = sum;
	}
	for (i = 0; i < n; i++) {
		double u = (rng_next(rng) >> 11) * 0x1.0p-53 * sum;
		uint64_t lo = 0, hi = pages - 1;

		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;

			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		p->off[i] = random_word_off(perm[lo], rng);
	}
	free(perm);
	free(cdf);
	return 0;
}

static int make_plans(struct pager_bench *b)
{
	uint64_t rng = ACCESS_SEED, rmw_n = b->random_n / 4, i;
	uint32_t *perm;

	if (!rmw_n)
		rmw_n = 1;
	if (plan_alloc(&b->plans[WL_RANDOM], b->random_n))
		return -ENOMEM;
	for (i = 0; i < b->random_n; i++)
		b->plans[WL_RANDOM].off[i] = random_word_off(rng_next(&rng) % b->pages, &rng);

	/* distinct pages: each written word is read back as the original once */
	perm = shuffled_pages(b->pages, rmw_n, &rng);
	if (!perm || plan_alloc(&b->plans[WL_RMW], rmw_n)) {
		free(perm);
		return -ENOMEM;
	}
	for (i = 0; i < rmw_n; i++)
		b->plans[WL_RMW].off[i] = random_word_off(perm[i], &rng);
	free(perm);

	return plan_zipf(&b->plans[WL_ZIPF], b->pages, b->random_n * ZIPF_OVER_N, &rng);
}

static void free_plans(struct pager_bench *b)
{
	int w;

	for (w = 0; w < NWL; w++) {
		free(b->plans[w].off);
		b->plans[w].off = NULL;
	}
}

/* ---- application threads ---------------------------------------------------- */

/* Threads wait here until the clock starts (or the run is abandoned). */
struct start_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state;			/* 0 wait, 1 go, -1 abandon */
};

/* Misses so far (kernel: this thread's majflt; libuffd: the pager's). */
typedef uint64_t misses_fn(void *ctx);

struct worker {
	pthread_t thread;
	struct start_gate *gate;
	char *base;
	int wl;
	const uint64_t *off;		/* random, rmw, zipf */
	uint64_t first_page;		/* seq */
	uint64_t n;			/* accesses to do */
	uint64_t done;
	double deadline_us;
	uint64_t *chk;			/* one thread: misses every CHECKPOINT_EVERY */
	uint64_t miss0;			/* misses before its first access */
	misses_fn *misses;
	void *misses_ctx;
	uint64_t mismatches, bad_off, bad_val;
};

static inline void check_word(struct worker *w, uint64_t off, uint64_t v, uint64_t want)
{
	if (v == want)
		return;
	if (!w->mismatches) {
		w->bad_off = off;
		w->bad_val = v;
	}
	w->mismatches++;
}

static inline uint64_t load_word(const char *base, uint64_t off)
{
	return *(const volatile uint64_t *)(base + off);
}

/* Access i of the thread: one word checked (and rewritten for rmw); for
 * seq, page first_page + i, and every word of every 64th page. */
static inline void access_one(struct worker *w, uint64_t i)
{
	uint64_t off, p, k;

	if (w->wl != WL_SEQ) {
		off = w->off[i];
		check_word(w, off, load_word(w->base, off), data_word(off));
		if (w->wl == WL_RMW)
			*(volatile uint64_t *)(w->base + off) = written_word(off);
		return;
	}
	p = w->first_page + i;
	off = p * PAGE_SZ + (p % PAGE_WORDS) * WORD_SZ;
	check_word(w, off, load_word(w->base, off), data_word(off));
	if (p % FULL_CHECK_EVERY)
		return;
	for (k = 0; k < PAGE_WORDS; k++) {
		off = p * PAGE_SZ + k * WORD_SZ;
		check_word(w, off, load_word(w->base, off), data_word(off));
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t i;
	int state;

	pthread_mutex_lock(&w->gate->lock);
	while (!(state = w->gate->state))
		pthread_cond_wait(&w->gate->cond, &w->gate->lock);
	pthread_mutex_unlock(&w->gate->lock);
	if (state < 0)
		return NULL;

	if (w->chk)
		w->miss0 = w->misses(w->misses_ctx);
	for (i = 0; i < w->n; i++) {
		if (i && !(i % CLOCK_EVERY) && bench_now_us() > w->deadline_us)
			break;
		access_one(w, i);
		if (w->chk && !((i + 1) % CHECKPOINT_EVERY))
			w->chk[i / CHECKPOINT_EVERY] = w->misses(w->misses_ctx) - w->miss0;
	}
	w->done = i;
	return NULL;
}

static uint64_t zipf_warm_reads(const struct pager_bench *b)
{
	uint64_t n = ZIPF_WARM_BUFFERS * (b->mem / PAGE_SZ);

	return n < b->plans[WL_ZIPF].n / 2 ? n : b->plans[WL_ZIPF].n / 2;
}

static void gate_open(struct start_gate *g, int state)
{
	pthread_mutex_lock(&g->lock);
	g->state = state;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/*
 * Run the workload on the mapping at base, the threads splitting it, until
 * done or the time budget is spent.  Wall time, accesses done per thread
 * and mismatches into r; with one thread, the misses every
 * CHECKPOINT_EVERY accesses too.
 */
/* What a system gives run_workers: misses per thread (one-thread runs'
 * samples) and process-wide (the warm-up), and a hook after the warm-up. */
struct system_ops {
	misses_fn *misses, *total_misses;
	void *ctx;
	void (*after_warmup)(void *arg);
	void *arg;
};

static int run_workers(const struct pager_bench *b, char *base, int wl, int threads,
		       const struct system_ops *sys, struct run_result *r)
{
	struct start_gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct worker w[MAX_THREADS];
	struct plan measured = b->plans[wl];
	const struct plan *pl = &measured;
	uint64_t total = wl == WL_SEQ ? b->pages : pl->n;
	double t0;
	int t, made, ret = 0;

	if (wl == WL_ZIPF) {
		/* The warm-up: untimed, in this thread, before the measured
		 * reads (r->warm_misses is filled in by the caller). */
		struct worker warm = { .base = base, .wl = wl, .off = pl->off,
				       .n = zipf_warm_reads(b) };
		uint64_t i, m0 = sys->total_misses(sys->ctx);

		for (i = 0; i < warm.n; i++)
			access_one(&warm, i);
		r->warm_reads = warm.n;
		r->warm_misses = sys->total_misses(sys->ctx) - m0;
		if (sys->after_warmup)
			sys->after_warmup(sys->arg);
		r->mismatches += warm.mismatches;
		measured.off += warm.n;
		measured.n -= warm.n;
		total = measured.n;
	}

	memset(w, 0, sizeof(w));
	for (made = 0; made < threads; made++) {
		struct worker *x = &w[made];
		uint64_t from = total * made / threads;

		x->gate = &gate;
		x->base = base;
		x->wl = wl;
		x->n = total * (made + 1) / threads - from;
		if (wl == WL_SEQ)
			x->first_page = from;
		else
			x->off = pl->off + from;
		if (threads == 1) {
			x->chk = run_checkpoints(r);
			x->misses = sys->misses;
			x->misses_ctx = sys->ctx;
		}
		ret = -pthread_create(&x->thread, NULL, worker_main, x);
		if (ret)
			break;
	}
	t0 = bench_now_us();
	for (t = 0; t < made; t++)
		w[t].deadline_us = t0 + b->budget_s * 1e6;
	gate_open(&gate, ret ? -1 : 1);
	for (t = 0; t < made; t++)
		pthread_join(w[t].thread, NULL);
	r->work_us = bench_now_us() - t0;
	if (ret) {
		snprintf(r->msg, sizeof(r->msg), "pthread_create: %s", strerror(-ret));
		return ret;
	}
	for (t = 0; t < threads; t++) {
		r->done[t] = w[t].done;
		r->accesses += w[t].done;
		if (w[t].mismatches && !r->mismatches) {
			r->bad_off = w[t].bad_off;
			r->bad_val = w[t].bad_val;
		}
		r->mismatches += w[t].mismatches;
	}
	r->cut = r->accesses < total;
	return 0;
}

/* ---- the two systems, each in its own child -------------------------------- */

/* Called from the worker itself: its own major faults. */
static uint64_t thread_majflt(void *ctx)
{
	struct rusage ru;

	(void)ctx;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_majflt;
}

static uint64_t process_majflt(void *ctx)
{
	struct rusage ru;

	(void)ctx;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_majflt;
}

struct kernel_map {
	char *base;
	uint64_t len;
};

/* Plain mmap warmed up with MADV_RANDOM goes back to the default. */
static void kernel_after_warmup(void *arg)
{
	struct kernel_map *k = arg;

	madvise(k->base, k->len, MADV_NORMAL);
}

static int kernel_run(const struct pager_bench *b, int wl, int threads, bool madv_random,
		      struct run_result *r)
{
	bool rmw = wl == WL_RMW;
	struct rusage ru0, ru1;
	double t0;
	char *base;
	int fd, ret;

	r->stage = STAGE_MAP;
	fd = open(b->path, (rmw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(r->msg, sizeof(r->msg), "open: %s", strerror(errno));
		return ret;
	}
	base = mmap(NULL, b->file_bytes, rmw ? PROT_READ | PROT_WRITE : PROT_READ,
		    MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED) {
		ret = -errno;
		snprintf(r->msg, sizeof(r->msg), "mmap: %s", strerror(errno));
		return ret;
	}
	/* MADV_RANDOM; for plain mmap also during a zipf warm-up, which would
	 * take minutes with 8 MiB read around each fault. */
	if ((madv_random || wl == WL_ZIPF) && madvise(base, b->file_bytes, MADV_RANDOM)) {
		ret = -errno;
		snprintf(r->msg, sizeof(r->msg), "madvise: %s", strerror(errno));
		munmap(base, b->file_bytes);
		return ret;
	}
	r->stage = STAGE_RUN;
	getrusage(RUSAGE_SELF, &ru0);
	{
		struct kernel_map km = { base, b->file_bytes };
		struct system_ops sys = { thread_majflt, process_majflt, NULL,
					  madv_random ? NULL : kernel_after_warmup, &km };

		ret = run_workers(b, base, wl, threads, &sys, r);
	}
	if (!ret && rmw) {
		r->stage = STAGE_FLUSH;
		t0 = bench_now_us();
		if (msync(base, b->file_bytes, MS_SYNC)) {
			ret = -errno;
			snprintf(r->msg, sizeof(r->msg), "msync: %s", strerror(errno));
		}
		r->flush_us = bench_now_us() - t0;
	}
	getrusage(RUSAGE_SELF, &ru1);
	r->misses = ru1.ru_majflt - ru0.ru_majflt - r->warm_misses;
	r->stage = STAGE_UNMAP;
	munmap(base, b->file_bytes);
	return ret;
}

static uint64_t pager_misses(void *ctx)
{
	struct uffd_pager_stats st;

	if (uffd_pager_stats(ctx, &st))
		return 0;
	return st.faults - st.hits;
}

static int libuffd_run(const struct pager_bench *b, int wl, int threads, bool in_thread,
		       struct run_result *r)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = b->mem, .fillers = threads,
		  .in_thread = in_thread);
	struct uffd_pager *p;
	struct uffd_store *s;
	double t0;
	char *base;
	int ret, err;

	r->stage = STAGE_MAP;
	p = uffd_pager_new(&o);
	if (!p) {
		ret = -errno;
		snprintf(r->msg, sizeof(r->msg), "uffd_pager_new: %s", strerror(errno));
		return ret;
	}
	s = uffd_store_file(b->path, O_RDWR, UFFD_STORE_DIRECT | UFFD_STORE_URING);
	if (!s) {
		ret = -errno;
		snprintf(r->msg, sizeof(r->msg), "uffd_store_file: %s", strerror(errno));
		goto out_free;
	}
	base = uffd_pager_map(p, s, 0, b->file_bytes, PROT_READ | PROT_WRITE,
			      UFFD_PAGER_OWN_STORE, 0);
	if (!base) {
		ret = -errno;
		snprintf(r->msg, sizeof(r->msg), "uffd_pager_map: %s", strerror(errno));
		uffd_store_free(s);
		goto out_free;
	}
	r->stage = STAGE_RUN;
	{
		struct system_ops sys = { pager_misses, pager_misses, p, NULL, NULL };

		ret = run_workers(b, base, wl, threads, &sys, r);
	}
	if (!ret && wl == WL_RMW) {
		r->stage = STAGE_FLUSH;
		t0 = bench_now_us();
		ret = uffd_pager_flush(p, base, 0);
		r->flush_us = bench_now_us() - t0;
		if (ret)
			snprintf(r->msg, sizeof(r->msg), "uffd_pager_flush: %s", strerror(-ret));
	}
	uffd_pager_stats(p, &r->st);
	r->misses = r->st.faults - r->st.hits - r->warm_misses;
	r->stage = STAGE_UNMAP;
	err = uffd_pager_unmap(p, base);
	if (err && !ret) {
		ret = err;
		snprintf(r->msg, sizeof(r->msg), "uffd_pager_unmap: %s", strerror(-err));
	}
out_free:
	if (r->stage == STAGE_UNMAP)
		r->stage = STAGE_FREE;
	err = uffd_pager_free(p);
	if (err && !ret) {
		ret = err;
		snprintf(r->msg, sizeof(r->msg), "uffd_pager_free: %s", strerror(-err));
	}
	return ret;
}

/* ---- memory cgroups ----------------------------------------------------------- */

static void cgroup_remove(const char *dir)
{
	int ret = bench_cgroup_remove(dir);

	if (ret)
		fprintf(stderr, "uffd bench pager: cannot remove cgroup %s: %s\n", dir,
			strerror(-ret));
}

/* ---- one run ------------------------------------------------------------------ */

/* Removed on SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE as on every other path. */
static volatile pid_t cleanup_child;
static char cleanup_cgroup[512], cleanup_file[300], cleanup_dir[256];

static void cleanup_on_signal(int sig)
{
	if (cleanup_child > 0) {
		kill(cleanup_child, SIGKILL);
		waitpid(cleanup_child, NULL, 0);
	}
	if (cleanup_cgroup[0])
		bench_cgroup_remove(cleanup_cgroup);
	if (cleanup_file[0])
		unlink(cleanup_file);
	if (cleanup_dir[0])
		rmdir(cleanup_dir);
	signal(sig, SIG_DFL);
	raise(sig);
}

static long status_kib(const char *key)
{
	size_t klen = strlen(key);
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

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

static void __attribute__((noreturn))
child_main(const struct pager_bench *b, int sys, int wl, int threads, const char *cg_dir)
{
	struct run_result *r = b->shared;
	int ret;

	bench_catch_signals(SIG_DFL);
	r->stage = STAGE_CGROUP;
	if (cg_dir) {
		ret = bench_cgroup_join(cg_dir);
		if (ret) {
			r->err = ret;
			snprintf(r->msg, sizeof(r->msg), "joining %s: %s", cg_dir, strerror(-ret));
			_exit(1);
		}
	}
	r->rss_start_kib = status_kib("VmRSS:");
	if (is_libuffd(sys))
		ret = libuffd_run(b, wl, threads, sys == SYS_LIBUFFD_INTHREAD, r);
	else
		ret = kernel_run(b, wl, threads, sys == SYS_KERNEL_RANDOM, r);
	r->rss_peak_kib = status_kib("VmHWM:");
	r->err = ret;
	if (!ret)
		r->stage = STAGE_DONE;
	_exit(ret ? 1 : 0);
}

/* Wait for the child at most timeout_s; kill it after.  Its wait status,
 * or -1 when it had to be killed. */
static int wait_child(pid_t pid, int timeout_s)
{
	double deadline = bench_now_us() + timeout_s * 1e6;
	struct timespec nap = { 0, 5 * 1000 * 1000 };
	int status;

	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			return status;
		if (got < 0 && errno != EINTR)
			return 0;
		if (bench_now_us() > deadline)
			break;
		nanosleep(&nap, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

/*
 * The words an rmw run wrote (each thread's share up to where it stopped),
 * as the file has them now; then every word of the plan back to the
 * original.  Returns how many were not what the run wrote, or -errno.
 */
static long long check_and_restore(const struct pager_bench *b, const struct run_result *r,
				   int threads, bool check, uint64_t *bad_off)
{
	const struct plan *pl = &b->plans[WL_RMW];
	long long bad = 0;
	uint64_t i, v;
	int fd = open(b->path, O_RDWR | O_CLOEXEC), ret = 0, t;

	if (fd < 0)
		return -errno;
	for (t = 0; check && t < threads && !ret; t++) {
		uint64_t from = pl->n * t / threads;

		for (i = from; i < from + r->done[t]; i++) {
			if (pread(fd, &v, sizeof(v), pl->off[i]) != sizeof(v)) {
				ret = -EIO;
				break;
			}
			if (v != written_word(pl->off[i]) && !bad++)
				*bad_off = pl->off[i];
		}
	}
	for (i = 0; i < pl->n; i++) {
		v = data_word(pl->off[i]);
		if (pwrite(fd, &v, sizeof(v), pl->off[i]) != sizeof(v)) {
			ret = -EIO;
			break;
		}
	}
	if (fdatasync(fd) && !ret)
		ret = -errno;
	close(fd);
	return ret ? ret : bad;
}

static void describe_status(char *buf, size_t len, int status, const struct run_result *r,
			    int timeout_s, long long oom_kills)
{
	const char *stage = r->stage >= 0 && r->stage < NSTAGES ? stage_names[r->stage] : "?";

	if (status == -1)
		snprintf(buf, len, "timed out after %d s while %s: killed", timeout_s, stage);
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s) while %s%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), stage,
			 oom_kills > 0 ? ": the cgroup's OOM killer" : "");
	else if (WIFEXITED(status) && WEXITSTATUS(status))
		snprintf(buf, len, "failed while %s: %s", stage, r->msg[0] ? r->msg : "?");
	else
		buf[0] = 0;
}

static size_t cgroup_limit(const struct pager_bench *b, int sys)
{
	return is_libuffd(sys) ? b->mem + LIBUFFD_SLACK : b->mem;
}

/* One child, one workload, one system.  False when it failed. */
static bool run_one(struct pager_bench *b, int sys, int wl, int threads, char *fail,
		    size_t faillen)
{
	struct run_rec *rec = &b->runs[sys][wl][thr_slot(threads)];
	struct run_result *r = b->shared;
	char cg_dir[512] = "", why[300];
	long long oom = -1, peak = -1, bad;
	uint64_t bad_off = 0;
	int status, ret;
	pid_t pid;

	free(rec->chk);
	memset(rec, 0, sizeof(*rec));
	memset(r, 0, b->shared_len);
	cold_cache(b);
	if (b->cg.version) {
		ret = bench_cgroup_create(&b->cg, "pager", cgroup_limit(b, sys), cg_dir,
					  sizeof(cg_dir));
		if (ret) {
			snprintf(fail, faillen, "%s %s %d thr: cannot make a cgroup in %s: %s",
				 sys_names[sys], wl_names[wl], threads, b->cg.base, strerror(-ret));
			return false;
		}
		snprintf(cleanup_cgroup, sizeof(cleanup_cgroup), "%s", cg_dir);
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		child_main(b, sys, wl, threads, cg_dir[0] ? cg_dir : NULL);
	if (pid < 0) {
		ret = -errno;
		if (cg_dir[0])
			cgroup_remove(cg_dir);
		cleanup_cgroup[0] = 0;
		snprintf(fail, faillen, "fork: %s", strerror(-ret));
		return false;
	}
	cleanup_child = pid;
	status = wait_child(pid, b->timeout_s);
	cleanup_child = 0;
	if (cg_dir[0]) {
		if (b->cg.version == 2) {
			peak = bench_file_number(cg_dir, "memory.peak", NULL);
			oom = bench_file_number(cg_dir, "memory.events", "oom_kill");
		} else {
			peak = bench_file_number(cg_dir, "memory.max_usage_in_bytes", NULL);
			oom = bench_file_number(cg_dir, "memory.oom_control", "oom_kill");
		}
		cgroup_remove(cg_dir);
		cleanup_cgroup[0] = 0;
	}

	rec->ran = true;
	rec->res = *r;
	describe_status(why, sizeof(why), status, r, b->timeout_s, oom);
	rec->ok = !why[0] && r->stage == STAGE_DONE && !r->err;
	if (!why[0] && !rec->ok)
		snprintf(why, sizeof(why), "ended while %s: %s", stage_names[r->stage], r->msg);
	if (wl == WL_RMW) {
		bad = check_and_restore(b, r, threads, rec->ok, &bad_off);
		if (bad < 0) {
			rec->ok = false;
			snprintf(why, sizeof(why), "checking/restoring the file: %s",
				 strerror((int)-bad));
		} else if (bad) {
			fprintf(stderr, "uffd bench pager: %s rmw %d thr: %lld written words "
				"not in the file (first at offset %llu)\n", sys_names[sys],
				threads, bad, (unsigned long long)bad_off);
			rec->mismatches += bad;
		}
	}
	rec->mismatches += r->mismatches;
	if (r->mismatches)
		fprintf(stderr, "uffd bench pager: %s %s %d thr: %llu words read wrong (first at "
			"offset %llu: %#llx, expected %#llx)\n", sys_names[sys], wl_names[wl],
			threads, (unsigned long long)r->mismatches,
			(unsigned long long)r->bad_off, (unsigned long long)r->bad_val,
			(unsigned long long)data_word(r->bad_off));
	if (r->accesses)
		rec->us_per_page = (r->work_us + r->flush_us) / r->accesses;
	if (r->accesses && r->stage >= STAGE_UNMAP)
		rec->hit_rate = 1.0 - (double)r->misses / r->accesses;
	if (r->rss_peak_kib > 0 && r->rss_start_kib > 0)
		rec->rss_mib = (r->rss_peak_kib - r->rss_start_kib) / 1024.0;
	rec->cg_peak_mib = peak > 0 ? peak / 1048576.0 : 0;
	if (threads == 1 && r->stage >= STAGE_UNMAP) {
		rec->nchk = r->accesses / CHECKPOINT_EVERY;
		rec->chk = malloc((rec->nchk ? rec->nchk : 1) * sizeof(*rec->chk));
		if (rec->chk)
			memcpy(rec->chk, run_checkpoints(r), rec->nchk * sizeof(*rec->chk));
		else
			rec->nchk = 0;
	}
	if (!rec->ok) {
		snprintf(fail, faillen, "%s %s %d thr: %s", sys_names[sys], wl_names[wl],
			 threads, why);
		fprintf(stderr, "uffd bench pager: %s\n", fail);
	}
	return rec->ok;
}

static void print_run(const struct pager_bench *b, int sys, int wl, int threads)
{
	const struct run_rec *rec = &b->runs[sys][wl][thr_slot(threads)];
	const struct run_result *r = &rec->res;
	uint64_t total = wl == WL_SEQ ? b->pages : b->plans[wl].n;

	printf("  %-23s %-11s %d thr %9.2f us/page %8llu pages %6.2f s", sys_names[sys],
	       wl_names[wl], threads, rec->us_per_page, (unsigned long long)r->accesses,
	       (r->work_us + r->flush_us) / 1e6);
	if (r->cut)
		printf(" (cut by the %d s budget: %llu planned)", b->budget_s,
		       (unsigned long long)total);
	if (wl == WL_RMW)
		printf(" (flush %.2f s)", r->flush_us / 1e6);
	printf("\n%37s hit %.3f  rss +%.0f MiB  cgroup peak %.0f MiB  mismatches %llu%s\n", "",
	       rec->hit_rate, rec->rss_mib, rec->cg_peak_mib,
	       (unsigned long long)rec->mismatches, rec->ok ? "" : "  FAILED");
	if (is_libuffd(sys) && r->stage >= STAGE_UNMAP)
		printf("%37s faults %llu hits %llu fills %llu read-ahead %llu evictions %llu"
		       " deactivations %llu wp %llu writebacks %llu resident peak %.0f MiB\n", "",
		       (unsigned long long)r->st.faults, (unsigned long long)r->st.hits,
		       (unsigned long long)r->st.fills, (unsigned long long)r->st.read_ahead,
		       (unsigned long long)r->st.evictions,
		       (unsigned long long)r->st.deactivations,
		       (unsigned long long)r->st.wp_faults, (unsigned long long)r->st.writebacks,
		       r->st.resident_peak_bytes / 1048576.0);
	else if (r->stage >= STAGE_UNMAP)
		printf("%37s majflt %llu\n", "", (unsigned long long)r->misses);
	fflush(stdout);
}

/* ---- output ------------------------------------------------------------------- */

static void report(struct pager_bench *b, struct bench_report *rep)
{
	char name[48];
	int s, w, t;

	for (s = 0; s < NSYS; s++) {
		uint64_t mism = 0;
		double rss = 0, cg = 0;
		int cut = 0;

		for (w = 0; w < NWL; w++)
			for (t = 0; t < NTHR; t++) {
				const struct run_rec *rec = &b->runs[s][w][t];

				if (!rec->ran)
					continue;
				mism += rec->mismatches;
				rss = fmax(rss, rec->rss_mib);
				cg = fmax(cg, rec->cg_peak_mib);
				cut += rec->res.cut;
				if (!rec->ok)
					continue;
				snprintf(name, sizeof(name), "%s_us_per_page_%dt", wl_names[w],
					 thread_counts[t]);
				bench_result(rep, sys_names[s], name, rec->us_per_page, "us");
				if (w == WL_ZIPF) {
					snprintf(name, sizeof(name), "zipf_hit_rate_%dt",
						 thread_counts[t]);
					bench_result(rep, sys_names[s], name, rec->hit_rate,
						     "fraction");
				}
			}
		/* the reference runs only two workloads: its figures are enough */
		if (s == SYS_KERNEL_RANDOM)
			continue;
		bench_result(rep, sys_names[s], "mismatches", mism, "words");
		bench_result(rep, sys_names[s], "peak_rss_over_start_mib", rss, "MiB");
		if (b->cg.version)
			bench_result(rep, sys_names[s], "cgroup_peak_mib", cg, "MiB");
		bench_result(rep, sys_names[s], "runs_cut_by_budget", cut, "runs");
	}
}

/*
 * Hit rates of two one-thread zipf runs over the reads both did: a run cut
 * by the time budget did fewer, and the first reads of a cold cache miss
 * more, so whole-run rates would favour the run that got further.
 */
static bool common_hit_rates(const struct run_rec *x, const struct run_rec *y, double *hx,
			     double *hy, uint64_t *reads)
{
	uint64_t n;

	if (!x->ok || !y->ok)
		return false;
	if (!x->res.cut && !y->res.cut) {
		*hx = x->hit_rate;
		*hy = y->hit_rate;
		*reads = x->res.accesses;
		return true;
	}
	n = x->nchk < y->nchk ? x->nchk : y->nchk;
	if (!n)
		return false;
	*reads = n * CHECKPOINT_EVERY;
	*hx = 1.0 - (double)x->chk[n - 1] / *reads;
	*hy = 1.0 - (double)y->chk[n - 1] / *reads;
	return true;
}

static void ratio_us(struct pager_bench *b, struct bench_report *rep, const char *name,
		     int peer, int wl, double goal)
{
	const struct run_rec *k = &b->runs[peer][wl][0], *l = &b->runs[SYS_LIBUFFD][wl][0];

	if (k->ok && l->ok && l->us_per_page > 0)
		bench_ratio(rep, name, k->us_per_page / l->us_per_page, goal);
}

/*
 * Random reads with 8 threads: libuffd's throughput over its own with one
 * thread (us per page of wall time, all threads' pages), and MADV_RANDOM
 * mmap's us per page over libuffd's and over in-thread libuffd's, all at
 * 8 threads.
 */
static void scale_ratios(struct pager_bench *b, struct bench_report *rep)
{
	int n = thr_slot(SCALE_THREADS);
	const struct run_rec *l1 = &b->runs[SYS_LIBUFFD][WL_RANDOM][0],
			     *ln = &b->runs[SYS_LIBUFFD][WL_RANDOM][n],
			     *in = &b->runs[SYS_LIBUFFD_INTHREAD][WL_RANDOM][n],
			     *kn = &b->runs[SYS_KERNEL_RANDOM][WL_RANDOM][n];

	if (l1->ok && ln->ok && ln->us_per_page > 0)
		bench_ratio(rep, "random_8t_over_1t_throughput",
			    l1->us_per_page / ln->us_per_page, GOAL_SCALE);
	if (kn->ok && ln->ok && ln->us_per_page > 0)
		bench_ratio(rep, "random_8t_madv_random_us_over_libuffd_us",
			    kn->us_per_page / ln->us_per_page, GOAL_SCALE_KERNEL);
	if (kn->ok && in->ok && in->us_per_page > 0)
		bench_ratio(rep, "random_8t_madv_random_us_over_libuffd_inthread_us",
			    kn->us_per_page / in->us_per_page, GOAL_SCALE_KERNEL);
	/* Against the device's own 8-thread O_DIRECT random reads, measured
	 * in this run: near 1, a side reads as fast as the disk lets 8
	 * threads, and the other can only tie it. */
	if (b->disk.rand_8thr_iops > 0) {
		double disk_us = 1e6 / b->disk.rand_8thr_iops;

		if (kn->ok && kn->us_per_page > 0)
			bench_ratio(rep, "random_8t_disk_us_over_madv_random_us",
				    disk_us / kn->us_per_page, 0);
		if (in->ok && in->us_per_page > 0)
			bench_ratio(rep, "random_8t_disk_us_over_libuffd_inthread_us",
				    disk_us / in->us_per_page, 0);
	}
}

/* On the one-thread runs.  Returns the reads the zipf hit ratio is over. */
static uint64_t ratios(struct pager_bench *b, struct bench_report *rep)
{
	const struct run_rec *l = &b->runs[SYS_LIBUFFD][WL_ZIPF][0];
	double hk, hl;
	uint64_t reads = 0, reads_random;
	bool clean = true;
	int s, w, t;

	ratio_us(b, rep, "random_kernel_us_over_libuffd_us", SYS_KERNEL, WL_RANDOM, GOAL_RANDOM);
	scale_ratios(b, rep);
	ratio_us(b, rep, "seq_kernel_us_over_libuffd_us", SYS_KERNEL, WL_SEQ, GOAL_SEQ);
	if (common_hit_rates(&b->runs[SYS_KERNEL][WL_ZIPF][0], l, &hk, &hl, &reads) && hk > 0)
		bench_ratio(rep, "zipf_hitrate_libuffd_over_kernel", hl / hk, GOAL_ZIPF_HIT);
	/* no mismatch: every libuffd run that was started (--only) finished,
	 * and nothing it read or wrote back was wrong */
	for (s = SYS_LIBUFFD; s <= SYS_LIBUFFD_INTHREAD; s++)
		for (w = 0; w < NWL; w++)
			for (t = 0; t < NTHR; t++)
				if (b->runs[s][w][t].ran &&
				    (!b->runs[s][w][t].ok || b->runs[s][w][t].mismatches))
					clean = false;
	bench_ratio(rep, "no_mismatch", clean ? 1 : 0, 1);
	ratio_us(b, rep, "rmw_kernel_us_over_libuffd_us", SYS_KERNEL, WL_RMW, 0);
	ratio_us(b, rep, "zipf_kernel_us_over_libuffd_us", SYS_KERNEL, WL_ZIPF, 0);
	ratio_us(b, rep, "random_kernel_madv_random_us_over_libuffd_us", SYS_KERNEL_RANDOM,
		 WL_RANDOM, 0);
	if (common_hit_rates(&b->runs[SYS_KERNEL_RANDOM][WL_ZIPF][0], l, &hk, &hl,
			     &reads_random) && hk > 0)
		bench_ratio(rep, "zipf_hitrate_libuffd_over_kernel_madv_random", hl / hk, 0);
	return reads;
}

/*
 * How a 1 MiB read-ahead window is best mapped in (the issue asks for no
 * bounce-buffer copy where the kernel allows better): read into a bounce
 * buffer that is reused, then UFFDIO_COPY (what the pager does), against
 * read into fresh pages, then UFFDIO_MOVE (no copy, but a fresh page per
 * page and a PTE move with its flush per page).  The read itself is the
 * same for both and left out: memset stands for the data landing.  A
 * thread of the process runs on the other CPU meanwhile, so TLB flushes
 * cost what they cost under a running program.
 */
#define FILL_WINDOW	(1UL << 20)
#define FILL_WINDOWS	64

static volatile int fill_spin_stop;

static void *fill_spinner(void *arg)
{
	while (!fill_spin_stop)
		(void)*(volatile char *)arg;
	return NULL;
}

static double fill_us_per_page(struct uffd *u, char *region, char *src, bool move)
{
	double best = 0;
	int rep, w;

	for (rep = 0; rep < 3; rep++) {
		double t0 = bench_now_us();

		for (w = 0; w < FILL_WINDOWS; w++) {
			size_t done;

			memset(src, w + 1, FILL_WINDOW);
			if ((move ? uffd_move(u, region + w * FILL_WINDOW, src, FILL_WINDOW, 0, &done)
				  : uffd_copy(u, region + w * FILL_WINDOW, src, FILL_WINDOW, 0,
					      &done)) || region[w * FILL_WINDOW] != w + 1)
				return -1;
		}
		t0 = (bench_now_us() - t0) / (FILL_WINDOWS * FILL_WINDOW / 4096);
		best = rep && best < t0 ? best : t0;
		madvise(region, FILL_WINDOWS * FILL_WINDOW, MADV_DONTNEED);
	}
	return best;
}

static void fill_paths(struct bench_report *rep)
{
	size_t len = FILL_WINDOWS * FILL_WINDOW;
	char *region, *bounce, *fresh, *spin;
	double copy_us, move_us;
	struct uffd u;
	pthread_t t;

	if (uffd_open(&u, UFFD_F(UFFD_FEAT_MOVE), 0, 0))
		return;
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bounce = mmap(NULL, FILL_WINDOW, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	fresh = mmap(NULL, FILL_WINDOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	spin = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		    -1, 0);
	if (region == MAP_FAILED || bounce == MAP_FAILED || fresh == MAP_FAILED ||
	    spin == MAP_FAILED)
		goto out;
	madvise(region, len, MADV_NOHUGEPAGE);
	madvise(fresh, FILL_WINDOW, MADV_NOHUGEPAGE);
	if (uffd_register(&u, region, len, UFFD_REG_MISSING, NULL))
		goto out;
	fill_spin_stop = 0;
	if (pthread_create(&t, NULL, fill_spinner, spin))
		goto out;
	copy_us = fill_us_per_page(&u, region, bounce, false);
	move_us = fill_us_per_page(&u, region, fresh, true);
	fill_spin_stop = 1;
	pthread_join(t, NULL);
	if (copy_us > 0 && move_us > 0) {
		bench_result(rep, "libuffd", "fill_copy_us_per_page", copy_us, "us");
		bench_result(rep, "libuffd", "fill_move_us_per_page", move_us, "us");
		bench_ratio(rep, "fill_move_us_over_copy_us", move_us / copy_us, 0);
	}
out:
	munmap(region, len);
	munmap(bounce, FILL_WINDOW);
	munmap(fresh, FILL_WINDOW);
	munmap(spin, 4096);
	uffd_close(&u);
}

/*
 * A map on Redis (uffd_store_redis) against Redis itself: a redis-server
 * started here on a free loopback port holds REDIS_PAGES pages (the same
 * hashed words as the file), and the same pages are read twice, each way
 * once:
 *
 *   raw      GET pipelined by hiredis on one connection, REDIS_WINDOW
 *            commands sent before their replies are read, each value
 *            copied out - what a program that knows Redis would do;
 *   libuffd  a sequential scan of a pager map over the store (a word of
 *            every page, every word of one page in 64 checked): the
 *            faults' read-ahead windows pipelined by the store.
 *
 * redis_raw_get_us_over_libuffd_us: the goal is a page's fault at
 * most 1.3x a raw pipelined GET of it (the ratio at least 1/1.3).  The
 * server is stopped by pid at the end; without redis-server or hiredis the
 * section says so and is left out.
 */
#define REDIS_PAGES		16384		/* 64 MiB */
#define REDIS_QUICK_PAGES	4096
#define REDIS_WINDOW		256		/* the pager's 1 MiB window */
#define REDIS_READY_MS		10000
#define REDIS_ROUNDS		3		/* each side, the best kept */
#define GOAL_REDIS		(1 / 1.3)

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>

/* A free loopback port, or 0. */
static int redis_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* redis-server on port, no persistence, in dir; its pid once it answers
 * PING, or -1. */
static pid_t redis_start(int port, const char *dir)
{
	char sport[16];
	pid_t pid;
	int waited;

	snprintf(sport, sizeof(sport), "%d", port);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", sport, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	for (waited = 0; waited < REDIS_READY_MS; waited += 10) {
		struct timeval tv = { 1, 0 };
		redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
		redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
		bool up = r && r->type == REDIS_REPLY_STATUS;

		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (up)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* GET every page, REDIS_WINDOW at a time pipelined, into buf (a window);
 * us per page, or -1.  Mismatches in the words counted. */
static double redis_raw(int port, const char *prefix, uint64_t pages, char *buf,
			uint64_t *mismatches)
{
	struct timeval tv = { 5, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	double t0, us = -1;
	uint64_t p, i, k;

	if (!c || c->err)
		goto out;
	redisSetTimeout(c, tv);
	t0 = bench_now_us();
	for (p = 0; p < pages; p += REDIS_WINDOW) {
		uint64_t n = pages - p < REDIS_WINDOW ? pages - p : REDIS_WINDOW;

		for (i = 0; i < n; i++)
			redisAppendCommand(c, "GET %s:%llu", prefix, (unsigned long long)(p + i));
		for (i = 0; i < n; i++) {
			redisReply *r;

			if (redisGetReply(c, (void **)&r) != REDIS_OK)
				goto out;
			if (r->type != REDIS_REPLY_STRING || r->len != PAGE_SZ) {
				freeReplyObject(r);
				goto out;
			}
			memcpy(buf + i * PAGE_SZ, r->str, PAGE_SZ);
			freeReplyObject(r);
		}
		/* the same check as the map's scan: a word of each page */
		for (i = 0; i < n; i++) {
			k = (p + i) * PAGE_SZ + ((p + i) % PAGE_WORDS) * WORD_SZ;
			if (*(uint64_t *)(buf + i * PAGE_SZ + k % PAGE_SZ) != data_word(k))
				(*mismatches)++;
		}
	}
	us = (bench_now_us() - t0) / pages;
out:
	if (c)
		redisFree(c);
	return us;
}

/* A sequential scan of a pager map over the store: us per page, or -1. */
static double redis_map(int port, const char *prefix, uint64_t pages, uint64_t *mismatches)
{
	UFFD_OPTS(uffd_pager_opts, po, .buffer_bytes = pages * PAGE_SZ / 2);
	UFFD_OPTS(uffd_store_redis_opts, o, .port = port, .prefix = prefix,
		  .size = pages * PAGE_SZ, .timeout_ms = 5000);
	struct uffd_store *s = uffd_store_redis(&o);
	struct uffd_pager *p = s ? uffd_pager_new(&po) : NULL;
	double t0, us = -1;
	uint64_t pg, k, off;
	char *map;

	if (!p)
		goto out;
	map = uffd_pager_map(p, s, 0, pages * PAGE_SZ, PROT_READ, UFFD_PAGER_OWN_STORE, 0);
	if (!map)
		goto out;
	s = NULL;
	t0 = bench_now_us();
	for (pg = 0; pg < pages; pg++) {
		off = pg * PAGE_SZ + (pg % PAGE_WORDS) * WORD_SZ;
		*mismatches += load_word(map, off) != data_word(off);
		if (pg % FULL_CHECK_EVERY)
			continue;
		for (k = 0; k < PAGE_WORDS; k++) {
			off = pg * PAGE_SZ + k * WORD_SZ;
			*mismatches += load_word(map, off) != data_word(off);
		}
	}
	us = (bench_now_us() - t0) / pages;
out:
	uffd_store_free(s);
	if (p)
		uffd_pager_free(p);
	return us;
}

static void redis_section(const struct pager_bench *b, struct bench_report *rep,
			  bool quick, char *fail, size_t faillen)
{
	uint64_t pages = quick ? REDIS_QUICK_PAGES : REDIS_PAGES, mism = 0, i;
	UFFD_OPTS(uffd_store_redis_opts, o, .prefix = "bench", .size = pages * PAGE_SZ,
		  .timeout_ms = 5000);
	double raw = -1, map = -1;
	struct uffd_store *s;
	char dir[300], *buf;
	int port, round;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/redis", b->dir);
	port = redis_free_port();
	if (mkdir(dir, 0700) || !port || (pid = redis_start(port, dir)) < 0) {
		if (b->human)
			printf("  redis: no redis-server could be started here: left out\n");
		rmdir(dir);
		return;
	}
	buf = malloc(pages * PAGE_SZ);
	o.port = port;
	s = uffd_store_redis(&o);
	if (buf && s) {
		for (i = 0; i < pages * PAGE_WORDS; i++)
			((uint64_t *)buf)[i] = data_word(i * WORD_SZ);
		if (s->ops->write(s->data, buf, pages * PAGE_SZ, 0) == (ssize_t)(pages * PAGE_SZ))
			for (round = 0; round < REDIS_ROUNDS; round++) {
				double r = redis_raw(port, "bench", pages, buf, &mism),
				       m = redis_map(port, "bench", pages, &mism);

				raw = r > 0 && (raw < 0 || r < raw) ? r : raw;
				map = m > 0 && (map < 0 || m < map) ? m : map;
			}
	}
	uffd_store_free(s);
	free(buf);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	rmdir(dir);
	if (raw < 0 || map < 0) {
		if (!fail[0])
			snprintf(fail, faillen, "redis: %s failed", raw < 0 ? "raw GET" : "the map");
		return;
	}
	if (mism && !fail[0])
		snprintf(fail, faillen, "redis: %llu words read wrong", (unsigned long long)mism);
	bench_result(rep, "redis", "raw_pipelined_get_us_per_page", raw, "us");
	bench_result(rep, "libuffd", "redis_map_seq_us_per_page", map, "us");
	bench_result(rep, "libuffd", "redis_mismatches", mism, "words");
	bench_ratio(rep, "redis_raw_get_us_over_libuffd_us", raw / map, GOAL_REDIS);
}
#else
static void redis_section(const struct pager_bench *b, struct bench_report *rep,
			  bool quick, char *fail, size_t faillen)
{
	if (b->human)
		printf("  redis: libuffd built without hiredis: left out\n");
}
#endif

static void make_config(const struct pager_bench *b, struct bench_report *rep,
			uint64_t zipf_ratio_reads)
{
	char cg[80], disk[200];
	int n;

	snprintf(disk, sizeof(disk), "{\"direct_seq_1m_qd%d_mb_s\":%.0f,\"direct_seq_us_per_page\":"
		 "%.2f,\"direct_rand_4k_qd1_iops\":%.0f,\"direct_rand_4k_8thr_iops\":%.0f}",
		 DISK_SEQ_QD, b->disk.seq_mb_s, b->disk.seq_mb_s > 0 ? PAGE_SZ / b->disk.seq_mb_s : 0,
		 b->disk.rand_qd1_iops, b->disk.rand_8thr_iops);
	if (b->cg.version)
		snprintf(cg, sizeof(cg), "\"v%d\",\"limit_mib\":{\"kernel\":%zu,\"libuffd\":%zu}",
			 b->cg.version, cgroup_limit(b, SYS_KERNEL) >> 20,
			 cgroup_limit(b, SYS_LIBUFFD) >> 20);
	else
		snprintf(cg, sizeof(cg), "\"none\"");
	n = snprintf(rep->config, sizeof(rep->config),
		     "{\"mem_mib\":%zu,\"file_mib\":%llu,\"random_reads\":%llu,\"seq_pages\":%llu,"
		     "\"rmw_pages\":%llu,\"zipf_reads\":%llu,\"zipf_warm_reads\":%llu,"
		     "\"zipf_s\":%.2f,\"threads\":[1,2],\"random_threads\":[1,2,8],"
		     "\"inthread_random_threads\":[1,8],"
		     "\"ratios_at_threads\":1,\"zipf_hit_ratio_over_reads\":%llu,"
		     "\"budget_s\":%d,\"drop_caches\":%s,\"cgroup\":%s,\"disk\":%s,"
		     "\"libuffd_store\":\"file O_DIRECT, io_uring read-ahead\",\"rmw_time\":\"incl. msync/flush\","
		     "\"no_goal\":\"ratios with goal 0\"}",
		     b->mem >> 20, (unsigned long long)(b->file_bytes >> 20),
		     (unsigned long long)b->plans[WL_RANDOM].n, (unsigned long long)b->pages,
		     (unsigned long long)b->plans[WL_RMW].n,
		     (unsigned long long)b->plans[WL_ZIPF].n,
		     (unsigned long long)zipf_warm_reads(b), ZIPF_S,
		     (unsigned long long)zipf_ratio_reads, b->budget_s,
		     b->drop_caches ? "true" : "false", cg, disk);
	if (n < 0 || (size_t)n >= sizeof(rep->config))	/* never half a JSON object */
		snprintf(rep->config, sizeof(rep->config), "{\"mem_mib\":%zu,\"file_mib\":%llu}",
			 b->mem >> 20, (unsigned long long)(b->file_bytes >> 20));
}

/* ---- setup and the run -------------------------------------------------------- */

/* A directory on the real disk: not tmpfs (the kernel side would have
 * nothing to read), room for the file. */
static int check_dir(const struct pager_bench *b, char *msg, size_t msglen)
{
	struct statfs fs;
	struct statvfs vfs;

	if (statfs(b->parent_dir, &fs) || statvfs(b->parent_dir, &vfs)) {
		snprintf(msg, msglen, "%s: %s", b->parent_dir, strerror(errno));
		return -errno;
	}
	if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
		snprintf(msg, msglen, "%s is in memory (tmpfs): give --dir on a disk",
			 b->parent_dir);
		return -EINVAL;
	}
	if ((uint64_t)vfs.f_bavail * vfs.f_frsize < b->file_bytes + DISK_MARGIN) {
		snprintf(msg, msglen, "%s: %llu MiB free, the file needs %llu MiB",
			 b->parent_dir,
			 (unsigned long long)((uint64_t)vfs.f_bavail * vfs.f_frsize >> 20),
			 (unsigned long long)(b->file_bytes >> 20));
		return -ENOSPC;
	}
	return 0;
}

static void cleanup_files(struct pager_bench *b)
{
	unlink(b->path);
	rmdir(b->dir);
	cleanup_file[0] = cleanup_dir[0] = 0;
}

#define MAX_READS	(1UL << 26)
#define MAX_SECONDS	3600

int bench_pager(int argc, char **argv)
{
	static struct pager_bench bench;
	struct pager_bench *b = &bench;
	struct bench_report rep = { .bench = "pager" };
	char fail[600] = "", msg[400];
	const char *dir = "/var/tmp";
	uint64_t mem = 0, reads = 0, timeout_s = 0, budget_s = 0, threads = 0;
	bool quick = false;
	int only = -1;
	const struct arg_opt opts[] = {
		OPT_FLAG("json", 'j', &rep.json, "JSON lines, the summary last"),
		OPT_FLAG("quick", 'q', &quick, "a short run: --mem 32M, budget 2 s, "
			 "timeout 60 s"),
		OPT_BYTES("mem", 'm', &mem, NULL, "memory allowed to each side, a multiple "
			  "of 4K; the file is 4 times it (default 256M)", MIN_MEM, MAX_MEM),
		OPT_UINT("reads", 'n', &reads, NULL, "N", "random reads (default: pages/4; "
			 "N/4 read-modify-writes, 8N zipf reads)", 1, MAX_READS, 1),
		OPT_STRING("dir", 'd', &dir, "DIR", "where the file's directory is made "
			   "(default /var/tmp)", sizeof(b->parent_dir) - 41),
		OPT_UINT("timeout", 't', &timeout_s, NULL, "SEC", "a run is killed after "
			 "this (default 120, --quick 60)", 1, MAX_SECONDS, 1),
		OPT_UINT("budget", 'b', &budget_s, NULL, "SEC", "a run stops its accesses "
			 "after this, less than the timeout (default 15, --quick 2)", 1,
			 MAX_SECONDS, 1),
		OPT_CHOICE("only", 'o', &only, NULL, "NAME", "only this workload, or only the "
			   "Redis section (no goals then)", only_names),
		OPT_UINT("threads", 'T', &threads, NULL, "N", "only this many threads: 1, 2 "
			 "or 8 (no goals then; default: 1 and 2, and 8 for random reads)", 1,
			 MAX_THREADS, 1),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd bench pager",
		.about = "A file 4x the memory allowed, through the libuffd pager (buffer = mem)\n"
			 "and through mmap in a memory cgroup limited to mem (also with MADV_RANDOM,\n"
			 "as a reference): random 4 KiB reads, sequential reads, random\n"
			 "read-modify-writes and zipf reads, 1 and 2 threads, cold page cache before\n"
			 "each run (random reads with 8 threads too, and through the pager in-thread\n"
			 "with 1 and 8).  us per page, zipf hit rate, mismatches, peak memory.\n"
			 "The file goes to a new directory under /var/tmp (or DIR) and is deleted.\n"
			 "Run as root for the cgroups and drop_caches (without, it says so).\n",
		.opts = opts,
	};
	uint64_t most;
	double t0;
	int ret, w, t, ti, s;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	memset(b, 0, sizeof(*b));
	b->only_wl = only;
	b->only_threads = (int)threads;
	if (threads && thread_counts[thr_slot((int)threads)] != (int)threads)
		return args_usage_error(&spec, "--threads: %d is not 1, 2 or 8", (int)threads);
	snprintf(b->parent_dir, sizeof(b->parent_dir), "%s", dir);
	b->mem = mem ? mem : quick ? QUICK_MEM : DEFAULT_MEM;
	b->timeout_s = timeout_s ? (int)timeout_s : quick ? QUICK_TIMEOUT_S : DEFAULT_TIMEOUT_S;
	b->budget_s = budget_s ? (int)budget_s : quick ? QUICK_BUDGET_S : DEFAULT_BUDGET_S;
	if (b->mem % PAGE_SZ)
		return args_usage_error(&spec, "--mem: %zu is not a multiple of 4K", b->mem);
	if (b->budget_s >= b->timeout_s)
		return args_usage_error(&spec, "--budget: %d s is not less than the timeout "
					"(%d s)", b->budget_s, b->timeout_s);
	b->file_bytes = (uint64_t)b->mem * FILE_OVER_MEM;
	b->pages = b->file_bytes / PAGE_SZ;
	b->random_n = reads ? reads : b->pages / 4;
	b->human = !rep.json;

	if (check_dir(b, msg, sizeof(msg))) {
		fprintf(stderr, "uffd bench pager: %s\n", msg);
		return EXIT_FAILED;
	}
	if (make_plans(b)) {
		fprintf(stderr, "uffd bench pager: out of memory for the accesses\n");
		free_plans(b);
		return EXIT_FAILED;
	}
	most = b->pages;
	for (w = 0; w < NWL; w++)
		most = b->plans[w].n > most ? b->plans[w].n : most;
	b->shared_len = sizeof(struct run_result) + (most / CHECKPOINT_EVERY + 1) * sizeof(uint64_t);
	b->shared = mmap(NULL, b->shared_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (b->shared == MAP_FAILED) {
		fprintf(stderr, "uffd bench pager: mmap: %s\n", strerror(errno));
		free_plans(b);
		return EXIT_FAILED;
	}
	snprintf(b->dir, sizeof(b->dir), "%.200s/uffd-bench-pager.XXXXXX", b->parent_dir);
	if (!mkdtemp(b->dir)) {
		fprintf(stderr, "uffd bench pager: mkdtemp %s: %s\n", b->dir, strerror(errno));
		ret = EXIT_FAILED;
		goto out_unmap;
	}
	snprintf(b->path, sizeof(b->path), "%.255s/data", b->dir);
	snprintf(cleanup_dir, sizeof(cleanup_dir), "%.255s", b->dir);
	snprintf(cleanup_file, sizeof(cleanup_file), "%.299s", b->path);
	bench_catch_signals(cleanup_on_signal);

	t0 = bench_now_us();
	ret = generate_file(b);
	if (ret) {
		fprintf(stderr, "uffd bench pager: writing %s: %s\n", b->path, strerror(-ret));
		ret = EXIT_FAILED;
		goto out_files;
	}
	probe_drop_caches(b);
	bench_cgroup_probe(&b->cg);
	cold_cache(b);
	measure_disk(b);
	if (b->human) {
		printf("uffd bench pager: %llu MiB file in %s (written in %.1f s), memory %zu MiB,"
		       " %llu random reads, %llu rmw pages, %llu zipf reads (s=%.2f)\n",
		       (unsigned long long)(b->file_bytes >> 20), b->dir,
		       (bench_now_us() - t0) / 1e6, b->mem >> 20,
		       (unsigned long long)b->plans[WL_RANDOM].n,
		       (unsigned long long)b->plans[WL_RMW].n,
		       (unsigned long long)b->plans[WL_ZIPF].n, ZIPF_S);
		if (b->cg.version)
			printf("  cgroup v%d under %s: kernel limited to %zu MiB, libuffd to %zu MiB\n",
			       b->cg.version, b->cg.base, cgroup_limit(b, SYS_KERNEL) >> 20,
			       cgroup_limit(b, SYS_LIBUFFD) >> 20);
		else
			printf("  no memory cgroup (%s): the kernel side is NOT capped\n",
			       b->cg.why);
		if (!b->drop_caches)
			printf("  drop_caches not writable (%s): only this file's pages are"
			       " dropped before each run\n", b->drop_why);
		printf("  the disk, O_DIRECT: sequential 1 MiB reads (%d in flight) %.0f MB/s"
		       " (%.2f us per 4 KiB); random 4 KiB reads %.0f IOPS one at a time,"
		       " %.0f with 8 threads\n", DISK_SEQ_QD, b->disk.seq_mb_s,
		       b->disk.seq_mb_s > 0 ? PAGE_SZ / b->disk.seq_mb_s : 0,
		       b->disk.rand_qd1_iops, b->disk.rand_8thr_iops);
		printf("\n");
	}

	for (w = 0; w < NWL; w++)
		for (ti = 0; ti < NTHR; ti++)
			for (s = 0; s < NSYS; s++) {
				t = thread_counts[ti];
				if (!runs_with(w, t, s))
					continue;
				if ((b->only_wl >= 0 && w != b->only_wl) ||
				    (b->only_threads && t != b->only_threads))
					continue;
				if (!run_one(b, s, w, t, msg, sizeof(msg)) && !fail[0])
					snprintf(fail, sizeof(fail), "%s", msg);
				if (b->runs[s][w][ti].mismatches && !fail[0])
					snprintf(fail, sizeof(fail), "%s %s %d thr: %llu mismatches",
						 sys_names[s], wl_names[w], t,
						 (unsigned long long)b->runs[s][w][ti].mismatches);
				if (b->human && b->runs[s][w][ti].ran)
					print_run(b, s, w, t);
			}

	if (b->human)
		printf("\n");
	report(b, &rep);
	make_config(b, &rep, ratios(b, &rep));
	fill_paths(&rep);
	if ((b->only_wl < 0 || b->only_wl == ONLY_REDIS) && !b->only_threads)
		redis_section(b, &rep, quick, fail, sizeof(fail));
	bench_print(&rep);
	ret = EXIT_OK;
	if (fail[0]) {
		fprintf(stderr, "uffd bench pager: FAILED: %s\n", fail);
		ret = EXIT_FAILED;
	}
out_files:
	bench_catch_signals(SIG_DFL);
	cleanup_files(b);
out_unmap:
	munmap(b->shared, b->shared_len);
	free_plans(b);
	for (s = 0; s < NSYS; s++)
		for (w = 0; w < NWL; w++)
			for (t = 0; t < NTHR; t++)
				free(b->runs[s][w][t].chk);
	return ret;
}
