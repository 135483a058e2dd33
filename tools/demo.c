/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd demo: a tour that shows each working capability on a built-in
 * workload, live, and says what happened.  Each capability is one section;
 * a section that cannot run on this machine says why and the tour goes on.
 * The exit status is 1 if any section that could run went wrong.
 */
#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <uffd/handler.h>
#include <uffd/track.h>
#include <uffd/checker.h>
#include <uffd/checkpoint.h>
#include <uffd/snapshot.h>
#include <uffd/pager.h>
#include <uffd/serve.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "migrate_run.h"
#include "uffd.h"

#define DEMO_PAGE 4096
#define DEMO_WAIT_MS 5000

/* A thread that touches one page (read or write) the way an application would. */
struct toucher {
	pthread_t thread;
	char *addr;
	const char *text;	/* written when non-NULL */
	char seen[64];		/* what it read afterwards */
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	if (t->text)
		strcpy(t->addr, t->text);
	snprintf(t->seen, sizeof(t->seen), "%s", t->addr);
	return NULL;
}

static int wait_fault(struct uffd *u, struct uffd_event *ev)
{
	int n = uffd_read_events(u, ev, 1, DEMO_WAIT_MS);

	if (n == 1 && ev->type == UFFD_EV_FAULT)
		return 0;
	printf("  no fault message arrived (%s)\n", n < 0 ? strerror(-n) : "timeout");
	return -1;
}

static int demo_missing(void)
{
	static char src[DEMO_PAGE] __attribute__((aligned(DEMO_PAGE)));
	struct toucher t = { 0 };
	struct uffd_event ev;
	struct uffd u;
	char *area;
	int ret = -1;

	if (uffd_open(&u, 0, 0, UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY)) {
		printf("  cannot open a userfaultfd: skipped\n");
		return 0;
	}
	area = mmap(NULL, DEMO_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || uffd_register(&u, area, DEMO_PAGE, UFFD_REG_MISSING, NULL))
		goto out;
	printf("  registered 1 page at %p for MISSING faults\n", (void *)area);
	t.addr = area;
	pthread_create(&t.thread, NULL, touch_main, &t);
	printf("  a worker thread reads the page ...\n");
	if (wait_fault(&u, &ev))
		goto out_join;
	printf("  handler: %s fault (%s) at %#llx\n", uffd_fault_kind_name(ev.fault.kind),
	       ev.fault.write ? "write" : "read", (unsigned long long)ev.fault.addr);
	snprintf(src, sizeof(src), "hello from the fault handler");
	if (uffd_copy(&u, (void *)(uintptr_t)ev.fault.addr, src, DEMO_PAGE, 0, NULL))
		goto out_join;
	printf("  handler: UFFDIO_COPY of a page that says \"%s\"\n", src);
	ret = 0;
out_join:
	if (ret)	/* unblock the worker whatever happened */
		uffd_zeropage(&u, area, DEMO_PAGE, 0, NULL);
	pthread_join(t.thread, NULL);
	if (!ret) {
		printf("  worker: read \"%s\"\n", t.seen);
		ret = strcmp(t.seen, src) ? -1 : 0;
	}
out:
	if (area != MAP_FAILED)
		munmap(area, DEMO_PAGE);
	uffd_close(&u);
	return ret;
}

static int demo_wp(void)
{
	struct toucher t = { 0 };
	char before[64] = "";
	struct uffd_event ev;
	struct uffd u;
	char *area;
	int ret = -1;

	if (uffd_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0,
		      UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY)) {
		printf("  write-protect faults not available: skipped\n");
		return 0;
	}
	area = mmap(NULL, DEMO_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		goto out;
	strcpy(area, "version 1");
	if (uffd_register(&u, area, DEMO_PAGE, UFFD_REG_WP, NULL) ||
	    uffd_writeprotect(&u, area, DEMO_PAGE, true, 0))
		goto out;
	printf("  page says \"%s\"; write-protected it\n", area);
	t.addr = area;
	t.text = "version 2";
	pthread_create(&t.thread, NULL, touch_main, &t);
	printf("  a worker thread writes \"version 2\" ...\n");
	if (wait_fault(&u, &ev))
		goto out_join;
	snprintf(before, sizeof(before), "%s", area);
	printf("  handler: %s fault (%s) at %#llx; the page still says \"%s\"\n",
	       uffd_fault_kind_name(ev.fault.kind), ev.fault.write ? "write" : "read",
	       (unsigned long long)ev.fault.addr, before);
	printf("  handler: (a snapshot would copy it now) un-protecting\n");
	ret = 0;
out_join:
	uffd_writeprotect(&u, area, DEMO_PAGE, false, 0);
	pthread_join(t.thread, NULL);
	if (!ret) {
		printf("  worker: its write landed, the page says \"%s\"\n", t.seen);
		ret = strcmp(before, "version 1") || strcmp(t.seen, "version 2") ? -1 : 0;
	}
out:
	if (area != MAP_FAILED)
		munmap(area, DEMO_PAGE);
	uffd_close(&u);
	return ret;
}

/* The runtime: servicing threads fill a region on demand for app threads. */
#define RT_PAGES 16384		/* 64 MiB */
#define RT_APPS 2

struct rt_app {
	pthread_t thread;
	unsigned char *start;
	size_t pages;
	uint64_t sum;
};

static void *rt_app_main(void *arg)
{
	struct rt_app *a = arg;
	size_t i;

	for (i = 0; i < a->pages; i++)
		a->sum += a->start[i * DEMO_PAGE];
	return NULL;
}

/* Each page is filled with its page number's low byte. */
static int rt_fill(struct uffd_fault *f)
{
	static __thread unsigned char page[DEMO_PAGE] __attribute__((aligned(DEMO_PAGE)));
	size_t n = ((char *)f->addr - (char *)uffd_region_addr(f->region)) / DEMO_PAGE;

	memset(page, (int)(n & 0xff), DEMO_PAGE);
	return uffd_fault_copy(f, page, DEMO_PAGE);
}

static int demo_runtime(void)
{
	static const struct uffd_region_ops ops = { .missing = rt_fill };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 1);
	struct rt_app apps[RT_APPS];
	struct uffd_handler_stats st;
	struct uffd_handler *h = NULL;
	uint64_t want = 0, got = 0;
	unsigned char *area;
	struct uffd u;
	size_t i;
	int ret = -1;

	if (uffd_open(&u, 0, 0, UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY)) {
		printf("  cannot open a userfaultfd: skipped\n");
		return 0;
	}
	area = mmap(NULL, (size_t)RT_PAGES * DEMO_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		goto out;
	h = uffd_handler_new(&u, &opts);
	if (!h || !uffd_handler_add(h, area, (size_t)RT_PAGES * DEMO_PAGE, 0,
				    UFFD_REG_MISSING, &ops, NULL) ||
	    uffd_handler_start(h))
		goto out;
	printf("  a handler thread fills 64 MiB on demand; %d app threads read it\n",
	       RT_APPS);
	for (i = 0; i < RT_APPS; i++) {
		apps[i] = (struct rt_app){ .start = area + i * (RT_PAGES / RT_APPS) * DEMO_PAGE,
					   .pages = RT_PAGES / RT_APPS };
		pthread_create(&apps[i].thread, NULL, rt_app_main, &apps[i]);
	}
	for (i = 0; i < RT_APPS; i++) {
		pthread_join(apps[i].thread, NULL);
		got += apps[i].sum;
	}
	for (i = 0; i < RT_PAGES; i++)
		want += i & 0xff;
	/* A fill wakes its thread before the handler adds it to its counters:
	 * stop (join) the handler first, and the counters are final. */
	uffd_handler_stop(h);
	uffd_handler_stats(h, &st);
	printf("  %llu faults, %llu pages resolved, %llu coalesced, %llu wakes\n",
	       (unsigned long long)st.faults[UFFD_FAULT_MISSING],
	       (unsigned long long)st.pages_resolved, (unsigned long long)st.coalesced,
	       (unsigned long long)st.wakes);
	printf("  service time read->wake: mean %.1f us, p50 < %.1f us, p99 < %.1f us\n",
	       st.faults[UFFD_FAULT_MISSING] ?
	       st.latency_ns_sum / 1e3 / st.faults[UFFD_FAULT_MISSING] : 0.0,
	       uffd_stats_quantile_ns(&st, 0.5) / 1e3, uffd_stats_quantile_ns(&st, 0.99) / 1e3);
	printf("  every page holds what the handler put there: %s\n",
	       got == want ? "yes" : "NO");
	ret = got == want && st.pages_resolved == RT_PAGES ? 0 : -1;
out:
	uffd_handler_free(h);
	if (area != MAP_FAILED)
		munmap(area, (size_t)RT_PAGES * DEMO_PAGE);
	uffd_close(&u);
	return ret;
}

/* Dirty tracking: which pages changed since the last look? */
#define TR_PAGES 65536		/* 256 MiB */
#define TR_WRITES 2000

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int demo_track(void)
{
	struct uffd_track_result res = { 0 };
	struct uffd_tracker *t;
	struct timespec t0;
	unsigned seed = 42;
	size_t i, written = 0;
	char *area;
	int ret = -1;

	t = uffd_track_new(NULL);
	if (!t) {
		printf("  no tracking backend available: skipped\n");
		return 0;
	}
	area = mmap(NULL, (size_t)TR_PAGES * DEMO_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || uffd_track_add(t, area, (size_t)TR_PAGES * DEMO_PAGE))
		goto out;
	printf("  tracking 256 MiB with the %s backend\n",
	       uffd_track_backend_name(uffd_track_backend_of(t)));
	for (i = 0; i < TR_WRITES; i++) {
		size_t page;

		seed = seed * 1103515245 + 12345;
		page = (seed >> 8) % TR_PAGES;
		written += !area[page * DEMO_PAGE];
		area[page * DEMO_PAGE] = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (uffd_track_collect(t, UFFD_TRACK_REARM, &res) || res.pages != written)
		goto out;
	printf("  the program wrote %zu distinct pages; collect + re-arm found %llu "
	       "in %.2f ms (%zu runs)\n", written, (unsigned long long)res.pages,
	       ms_since(&t0), res.nranges);
	area[7 * DEMO_PAGE] = 2;
	area[8 * DEMO_PAGE] = 2;
	if (uffd_track_collect(t, UFFD_TRACK_REARM, &res) || res.pages != 2)
		goto out;
	printf("  two more writes: the next collect reports exactly pages 7-8: %s\n",
	       res.nranges == 1 && res.ranges[0].start == (uintptr_t)area + 7 * DEMO_PAGE ?
	       "yes" : "NO");
	ret = res.nranges == 1 && res.ranges[0].start == (uintptr_t)area + 7 * DEMO_PAGE ? 0 : -1;
out:
	uffd_track_result_free(&res);
	uffd_track_free(t);
	if (area != MAP_FAILED)
		munmap(area, (size_t)TR_PAGES * DEMO_PAGE);
	return ret;
}

/* Live snapshot of the checker workload, proven exact, restored lazily. */
#define SNAP_TABLE (256UL << 20)

static struct uffd_checker *demo_checker(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = SNAP_TABLE, .writers = 2, .seed = 11,
		  .fill = 1.0);

	return uffd_checker_new(&co);
}

static int verify_file(struct uffd_checker *c, const char *path)
{
	struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);
	char msg[256] = "cannot open the image";
	int ret = chain ? uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)) : -1;

	uffd_image_chain_close(chain);
	printf("  the checker compared every page with its version at the instant: %s%s\n",
	       ret ? "MISMATCH: " : "exact", ret ? msg : "");
	return ret;
}

static int demo_snapshot(void)
{
	char path[] = "/tmp/uffd-demo-snapshot-XXXXXX", msg[256];
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = &reg, .nregions = 1,
		  .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb);
	struct uffd_restore_stats rst;
	struct uffd_snap_stats st;
	struct uffd_checker *c = demo_checker();
	struct uffd_restore *r;
	struct uffd_snap *s;
	uint64_t w0;
	int fd = mkstemp(path), ret = -1;

	if (!c || fd < 0) {
		printf("  cannot set up the workload: skipped\n");
		uffd_checker_free(c);
		return 0;
	}
	close(fd);
	so.arg = c;
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), SNAP_TABLE, 4096,
					  UFFD_IMAGE_ANON };
	uffd_checker_start(c);
	printf("  2 threads keep writing version stamps into a 256 MiB table\n");
	w0 = uffd_checker_writes(c);
	s = uffd_snap_begin(&so);
	if (!s) {
		printf("  snapshot failed: %s\n", strerror(errno));
		goto out;
	}
	if (uffd_snap_wait(s, -1) == 0) {
		uffd_snap_stats(s, &st);
		printf("  snapshot: writers paused %.0f us (precopy protected everything "
		       "in %.0f ms while they ran); %llu pages copied before their "
		       "first write, %llu streamed; %.0f MiB durable in %.0f ms\n",
		       st.pause_ns / 1e3, st.protect_ns / 1e6, (unsigned long long)st.copied_before_write,
		       (unsigned long long)st.written_background, st.bytes / 1048576.0,
		       st.duration_ns / 1e6);
		printf("  meanwhile the writers made %llu writes\n",
		       (unsigned long long)(uffd_checker_writes(c) - w0));
		ret = verify_file(c, path);
	}
	uffd_snap_free(s);
	if (ret)
		goto out;
	r = uffd_restore_open(path, UFFD_RESTORE_LAZY | UFFD_RESTORE_ANYWHERE);
	ret = r && !uffd_checker_verify_memory(c, uffd_restore_addr(r, 0), msg, sizeof(msg)) &&
	      !uffd_restore_wait(r, -1) ? 0 : -1;
	if (r) {
		uffd_restore_stats(r, &rst);
		printf("  lazy restore into a new mapping: %llu pages on first touch, %llu "
		       "prefetched; contents exact: %s\n", (unsigned long long)rst.faulted,
		       (unsigned long long)rst.prefetched, ret ? "NO" : "yes");
		uffd_restore_close(r, true);
	}
	printf("  (uffd snapshot-info FILE shows and verifies an image)\n");
out:
	uffd_checker_stop(c);
	uffd_checker_free(c);
	unlink(path);
	return ret;
}

/*
 * Incremental checkpoints: a base, then deltas of what changed, taken live:
 * the writers are stopped for each instant only and keep writing while
 * the delta is written (copy-before-write saves what they touch first).
 */
static int demo_checkpoint(void)
{
	char dir[] = "/tmp/uffd-demo-ckpt-XXXXXX", path[3][64];
	struct uffd_image_region reg;
	UFFD_OPTS(uffd_ckpt_opts, opts, .pause = uffd_checker_pause_cb,
		  .resume = uffd_checker_resume_cb);
	struct uffd_ckpt_stats st;
	struct uffd_checker *c;
	struct uffd_ckpt *k = NULL;
	int i, ret = -1;

	c = demo_checker();
	if (!c || !mkdtemp(dir)) {
		printf("  cannot set up the workload: skipped\n");
		uffd_checker_free(c);
		return 0;
	}
	opts.arg = c;
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), SNAP_TABLE, 4096,
					  UFFD_IMAGE_ANON };
	k = uffd_ckpt_new(&reg, 1, &opts);
	if (!k) {
		printf("  no dirty tracking here: skipped\n");
		ret = 0;
		goto out;
	}
	uffd_checker_start(c);
	printf("  2 threads keep writing version stamps into a 256 MiB table, "
	       "also while each image is written\n");
	for (i = 0; i < 3; i++) {
		uint64_t w0 = uffd_checker_writes(c);

		snprintf(path[i], sizeof(path[i]), "%s/ckpt-%d", dir, i);
		while (i && uffd_checker_writes(c) - w0 < 12000)
			usleep(100);
		ret = uffd_ckpt_take(k, path[i], &st);
		if (ret)
			break;
		printf("  %s: %llu pages, %.1f MiB, writers paused %.2f ms, durable in "
		       "%.0f ms (%llu pages saved before a write)\n", i ? "delta" : "base ",
		       (unsigned long long)st.pages_written, st.bytes / 1048576.0,
		       st.pause_ns / 1e6, st.duration_ns / 1e6,
		       (unsigned long long)(st.copied_before_write + st.sync_writes));
	}
	uffd_checker_pause(c);
	ret = ret ? ret : verify_file(c, path[2]);
out:
	uffd_ckpt_free(k);
	uffd_checker_stop(c);
	uffd_checker_free(c);
	for (i = 0; i < 3; i++)
		unlink(path[i]);
	rmdir(dir);
	return ret;
}

/*
 * The pager: sort a file 4x larger than the buffer that holds it.  Runs
 * that fit a quarter of the buffer are sorted in place through one map,
 * then merged into a second file through another; the pager reads, evicts
 * and writes back as the sort goes, and the result is checked by pread.
 */
#define SORT_BYTES	(32UL << 20)
#define SORT_BUFFER	(SORT_BYTES / 4)
#define SORT_RUN	(SORT_BUFFER / 4)
#define SORT_RUNS	(SORT_BYTES / SORT_RUN)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t sort_key(uint64_t i)
{
	i = (i + 1) * 0x9e3779b97f4a7c15ULL;
	i ^= i >> 29;
	return i * 0xbf58476d1ce4e5b9ULL;
}

static int make_sort_files(const char *dir, char in[][96], uint64_t *sum)
{
	static uint64_t block[8192];
	uint64_t i, k;
	int fd, ret = 0;

	snprintf(in[0], 96, "%s/unsorted", dir);
	snprintf(in[1], 96, "%s/sorted", dir);
	fd = open(in[0], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	*sum = 0;
	for (i = 0; i < SORT_BYTES / 8 && !ret; i += 8192) {
		for (k = 0; k < 8192; k++)
			*sum += block[k] = sort_key(i + k);
		if (pwrite(fd, block, sizeof(block), i * 8) != sizeof(block))
			ret = -EIO;
	}
	close(fd);
	fd = open(in[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, SORT_BYTES))
		ret = -EIO;
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Merge the sorted runs of src into dst (SORT_RUNS-way, smallest head). */
static void merge_runs(const uint64_t *src, uint64_t *dst)
{
	size_t head[SORT_RUNS], per = SORT_RUN / 8, out, r;

	for (r = 0; r < SORT_RUNS; r++)
		head[r] = r * per;
	for (out = 0; out < SORT_BYTES / 8; out++) {
		size_t best = SORT_RUNS;

		for (r = 0; r < SORT_RUNS; r++)
			if (head[r] < (r + 1) * per &&
			    (best == SORT_RUNS || src[head[r]] < src[head[best]]))
				best = r;
		dst[out] = src[head[best]++];
	}
}

/* Read the result back with pread: sorted, and the same keys. */
static int check_sorted(const char *path, uint64_t sum)
{
	static uint64_t block[8192];
	uint64_t i, k, prev = 0, got = 0;
	int fd = open(path, O_RDONLY), ret = 0;

	if (fd < 0)
		return -errno;
	for (i = 0; i < SORT_BYTES / 8 && !ret; i += 8192) {
		if (pread(fd, block, sizeof(block), i * 8) != sizeof(block))
			ret = -EIO;
		for (k = 0; k < 8192 && !ret; k++) {
			if (block[k] < prev)
				ret = -EILSEQ;
			prev = block[k];
			got += block[k];
		}
	}
	close(fd);
	return ret ? ret : got == sum ? 0 : -EILSEQ;
}

static int demo_pager(void)
{
	char dir[] = "/var/tmp/uffd-demo-sort-XXXXXX", path[2][96] = { "", "" };
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = SORT_BUFFER);
	struct uffd_pager_stats st = { 0 };
	struct uffd_pager *p = NULL;
	struct timespec t0;
	uint64_t *in = NULL, *out = NULL, sum = 0;
	size_t r;
	int ret;

	if (!mkdtemp(dir) || make_sort_files(dir, path, &sum)) {
		printf("  cannot write the input file: skipped\n");
		ret = 0;
		goto out;
	}
	p = uffd_pager_new(&o);
	if (!p) {
		printf("  no pager here (%s): skipped\n", strerror(errno));
		ret = 0;
		goto out;
	}
	in = uffd_pager_map(p, uffd_store_file(path[0], O_RDWR, UFFD_STORE_DIRECT), 0,
			    SORT_BYTES, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	out = uffd_pager_map(p, uffd_store_file(path[1], O_RDWR, UFFD_STORE_DIRECT), 0,
			     SORT_BYTES, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	if (!in || !out) {
		ret = -1;
		printf("  map: %s\n", strerror(errno));
		goto out;
	}
	printf("  %lu MiB of random keys in a file, a %lu MiB buffer\n",
	       SORT_BYTES >> 20, SORT_BUFFER >> 20);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (r = 0; r < SORT_RUNS; r++)
		qsort(in + r * (SORT_RUN / 8), SORT_RUN / 8, 8, cmp_u64);
	merge_runs(in, out);
	ret = uffd_pager_flush(p, out, 0);
	uffd_pager_stats(p, &st);
	printf("  sorted in %.0f ms: %d runs sorted in place, merged into a second file\n",
	       ms_since(&t0), (int)SORT_RUNS);
	printf("  pager: %llu faults, %llu MiB read, %llu MiB written back, %llu evictions,"
	       " peak %llu MiB resident\n", (unsigned long long)st.faults,
	       (unsigned long long)st.bytes_read >> 20,
	       (unsigned long long)st.bytes_written >> 20, (unsigned long long)st.evictions,
	       (unsigned long long)st.resident_peak_bytes >> 20);
	if (!ret)
		ret = uffd_pager_unmap(p, in);
	in = NULL;
	if (!ret)
		ret = uffd_pager_unmap(p, out);
	out = NULL;
	if (!ret)
		ret = check_sorted(path[1], sum);
	printf("  read back with pread: %s\n", ret ? strerror(-ret) :
	       "sorted, and the same keys as the input");
	if (st.resident_peak_bytes > SORT_BUFFER) {
		printf("  the buffer was exceeded\n");
		ret = -1;
	}
out:
	uffd_pager_free(p);
	if (path[0][0])
		unlink(path[0]);
	if (path[1][0])
		unlink(path[1]);
	rmdir(dir);
	return ret;
}

/* The page server: processes restored at once, then one whose server dies. */
#define SERVE_TABLE (32UL << 20)
#define SERVE_CLIENTS 3

static pid_t demo_server(const char *sock, const char *img, bool demand_only)
{
	int pipefd[2];
	pid_t pid;
	char c = 1;

	if (pipe(pipefd))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		UFFD_OPTS(uffd_serve_opts, o, .socket_path = sock, .image = img,
			  .demand_only = demand_only);
		struct uffd_serve *s;
		sigset_t set;
		int sig;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigprocmask(SIG_BLOCK, &set, NULL);
		s = uffd_serve_new(&o);
		c = s ? 0 : 1;
		if (write(pipefd[1], &c, 1) != 1 || !s)
			_exit(1);
		sigwait(&set, &sig);
		uffd_serve_free(s);
		_exit(0);
	}
	close(pipefd[1]);
	if (pid < 0 || read(pipefd[0], &c, 1) != 1 || c) {
		if (pid > 0)
			waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(pipefd[0]);
	return pid;
}

/* A client process: attach, touch a tenth of the pages, wait, check. */
static void demo_serve_client(struct uffd_checker *chk, const char *sock, int n,
			      int killed_fd)
{
	UFFD_OPTS(uffd_serve_attach_opts, o, .socket_path = sock, .flags = UFFD_SERVE_ANYWHERE);
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c = uffd_serve_attach(&o);
	char msg[256], *mem, b;
	size_t i;
	int ret;

	if (!c) {
		printf("  client %d: attach: %s\n", n, strerror(errno));
		_exit(1);
	}
	mem = uffd_serve_client_addr(c, 0);
	for (i = 0; i < SERVE_TABLE / DEMO_PAGE; i += 10)
		(void)*(volatile char *)(mem + ((i * 7919) % (SERVE_TABLE / DEMO_PAGE)) * DEMO_PAGE);
	if (killed_fd >= 0 && read(killed_fd, &b, 1) < 0)	/* the server is dead now */
		_exit(1);
	ret = uffd_serve_client_wait(c, 10000);
	uffd_serve_client_stats(c, &st);
	ret = ret ? ret : uffd_checker_verify_memory(chk, mem, msg, sizeof(msg));
	if (st.fallback)
		printf("  client %d (pid %d): its server gone, it filled the %llu pages not yet in "
		       "itself; contents exact: %s\n", n, (int)getpid(),
		       (unsigned long long)st.filled, ret ? "NO" : "yes");
	else
		printf("  client %d (pid %d): %llu pages on first touch, %llu filled in the "
		       "background; contents exact: %s\n", n, (int)getpid(),
		       (unsigned long long)st.faults, (unsigned long long)st.filled,
		       ret ? "NO" : "yes");
	fflush(stdout);
	uffd_serve_detach(c, true);
	_exit(ret ? 1 : 0);
}

static int demo_serve(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = SERVE_TABLE, .seed = 5, .fill = 1.0);
	char dir[] = "/tmp/uffd-demo-serve-XXXXXX", img[64], sock[64];
	struct uffd_checker *chk = NULL;
	struct uffd_image_region reg;
	struct uffd_image_writer *w = NULL;
	pid_t server = -1, pids[SERVE_CLIENTS + 1];
	int i, status, ret = -1, killed[2] = { -1, -1 };
	const char *mem;
	uint64_t p;

	if (!mkdtemp(dir) || !(chk = uffd_checker_new(&co))) {
		printf("  cannot set up the workload: skipped\n");
		uffd_checker_free(chk);
		return 0;
	}
	snprintf(img, sizeof(img), "%s/table.img", dir);
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	uffd_checker_mark_instant(chk);
	mem = uffd_checker_area(chk);
	reg = (struct uffd_image_region){ (uintptr_t)mem, SERVE_TABLE, DEMO_PAGE, UFFD_IMAGE_ANON };
	w = uffd_image_create(img, &reg, 1, NULL, 0);
	for (p = 0; w && p < SERVE_TABLE / DEMO_PAGE; p += 64)
		if (uffd_image_put(w, 0, p, 64, mem + p * DEMO_PAGE, 0))
			break;
	if (!w || uffd_image_commit(w)) {
		printf("  cannot write the image: skipped\n");
		ret = 0;
		goto out;
	}
	server = demo_server(sock, img, false);
	if (server < 0) {
		printf("  the server cannot start here (no userfaultfd?): skipped\n");
		ret = 0;
		goto out;
	}
	printf("  a server process serves a 32 MiB image on %s;\n"
	       "  %d client processes attach at once and touch a tenth of their pages\n",
	       sock, SERVE_CLIENTS);
	fflush(stdout);
	for (i = 0; i < SERVE_CLIENTS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			demo_serve_client(chk, sock, i + 1, -1);
	}
	for (ret = 0, i = 0; i < SERVE_CLIENTS; i++)
		if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			ret = -1;
	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	if (ret)
		goto out;
	/* The same with a server that serves on demand and is killed. */
	server = demo_server(sock, img, true);
	if (server < 0 || pipe(killed)) {
		ret = -1;
		goto out;
	}
	printf("  another client, whose server is SIGKILLed after its first touches:\n");
	fflush(stdout);
	pids[SERVE_CLIENTS] = fork();
	if (pids[SERVE_CLIENTS] == 0) {
		close(killed[1]);
		demo_serve_client(chk, sock, SERVE_CLIENTS + 1, killed[0]);
	}
	close(killed[0]);
	usleep(50000);
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	close(killed[1]);
	ret = pids[SERVE_CLIENTS] > 0 && waitpid(pids[SERVE_CLIENTS], &status, 0) > 0 &&
	      WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
	printf("  (uffd serve runs a server, for Firecracker VMs too: see uffd(1))\n");
out:
	unlink(img);
	unlink(sock);
	rmdir(dir);
	uffd_checker_free(chk);
	return ret;
}

/* The checker workload migrated, running, to another process. */
static int demo_migrate(void)
{
	struct mig_run_cfg cfg = {
		.bytes = 128ul << 20, .writers = 2, .hot_bytes = 16ul << 20, .rate = 100000,
		.fill = 1.0, .seed = 5, .mode = UFFD_MIG_HYBRID, .settle_s = 0.2, .after_s = 0.1,
	};
	struct mig_run_result r;
	int ret;

	printf("  2 threads write a 16 MiB hot set of a 128 MiB table at 100000 writes/s; "
	       "the table moves to a second process over loopback while they run\n");
	fflush(stdout);
	ret = mig_run(&cfg, &r);
	if (ret) {
		printf("  cannot set up the two processes (%s): skipped\n",
		       r.message[0] ? r.message : strerror(-ret));
		return 0;
	}
	if (r.error) {
		printf("  the migration failed: %s\n", r.message);
		return -1;
	}
	printf("  precopy: every page sent once while the writers ran (%u round)\n", r.src.round);
	printf("  switchover: the writers were stopped for %.2f ms; their state (%u bytes) "
	       "and a bitmap of the %llu pages written since crossed\n", r.downtime_ms,
	       (unsigned)(64 + 16 * cfg.writers), (unsigned long long)r.dst.switchover_pages);
	printf("  postcopy: the writers ran on in the second process; %llu pages they touched "
	       "came on request (p50 %.3f ms, p99 %.3f ms from fault to mapped), %llu streamed "
	       "meanwhile, %llu precopied pages moved into place without a copy\n",
	       (unsigned long long)r.dst.pages_answered, r.dst.req_p50_ns / 1e6,
	       r.dst.req_p99_ns / 1e6, (unsigned long long)r.dst.pages_background,
	       (unsigned long long)(r.dst.pages_continued + r.dst.pages_moved));
	printf("  %.1f MiB on the wire for 128 MiB of memory, %.0f ms in all\n",
	       r.wire_bytes / 1048576.0, r.src.total_ns / 1e6);
	printf("  the checker on the destination: %s\n", r.exact ? r.verdict : "NOT EXACT");
	printf("  (uffd migrate does it with options: --netns for two network namespaces)\n");
	return r.exact ? 0 : -1;
}

static int demo_probe(void)
{
	printf("  ");
	probe_summary(stdout);
	printf("  (uffd probe prints the full table)\n");
	return 0;
}

static const struct {
	const char *title;
	int (*run)(void);
} sections[] = {
	{ "What this machine offers", demo_probe },
	{ "A MISSING fault, resolved by copying a page in", demo_missing },
	{ "A WRITE-PROTECT fault: the handler sees the page before the write", demo_wp },
	{ "The runtime: servicing threads, batching, statistics", demo_runtime },
	{ "Dirty tracking: the pages written since the last look", demo_track },
	{ "A live snapshot without fork, proven exact, restored lazily", demo_snapshot },
	{ "Incremental checkpoints: a base and deltas of what changed", demo_checkpoint },
	{ "The pager: sorting a file 4x larger than its buffer", demo_pager },
	{ "A page server: processes restored at once, even when it dies", demo_serve },
	{ "Post-copy migration of a running program to another process", demo_migrate },
};

int cmd_demo(int argc, char **argv)
{
	struct arg_spec spec = {
		.prog = "uffd demo", .synopsis = "(no arguments)",
		.about = "A tour of libuffd's capabilities, live.  It takes no arguments.\n",
	};
	size_t i, failed = 0;
	int ret = args_parse(&spec, argc, argv);

	if (ret != ARGS_GO_ON)
		return ret;
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		printf("\n== %zu. %s\n", i + 1, sections[i].title);
		fflush(stdout);
		ret = sections[i].run();
		printf("  -> %s\n", ret ? "FAILED" : "ok");
		failed += ret != 0;
	}
	printf("\n%zu of %zu sections ok\n", i - failed, i);
	return failed ? EXIT_FAILED : EXIT_OK;
}
