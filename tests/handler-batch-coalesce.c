/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Duplicate faults on one page in one batch are served once: 8 threads
 * fault on the same page before the handler is started, so 8 messages are
 * queued (each thread is asleep in handle_userfault, as its
 * /proc/self/task/TID/wchan says, before the handler starts).  The handler
 * (batch 64) reads all 8 in one read(2), runs the callback exactly once,
 * fills the page once, and that one fill wakes all 8 threads, which read
 * the callback's bytes.  Counters: faults[MISSING] == messages == 8,
 * reads == 1, coalesced == 7, pages_resolved == 1, one latency sample.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uffd/handler.h>

#include "lib/harness.h"
#include "lib/handler-stats.h"

#define NTHREADS 8

static char *src;		/* set before uffd_handler_start() */
static int calls;		/* atomic */

static int copy_once(struct uffd_fault *f)
{
	__atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	return uffd_fault_copy(f, src, PAGE);
}

struct reader {
	pthread_t thread;
	volatile char *addr;
	int tid;		/* atomic */
	char value;
	int done;		/* atomic */
};

static void *read_main(void *arg)
{
	struct reader *rd = arg;

	__atomic_store_n(&rd->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	rd->value = *rd->addr;
	__atomic_store_n(&rd->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* True if thread tid of this process sleeps in handle_userfault. */
static bool in_userfault(int tid)
{
	char path[64], buf[64] = "";
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strncmp(buf, "handle_userfault", 16) == 0;
}

static void wait_all_blocked(struct reader *rd)
{
	int i, waited;

	for (i = 0; i < NTHREADS; i++) {
		for (waited = 0; waited < 2000; waited++) {
			int tid = __atomic_load_n(&rd[i].tid, __ATOMIC_ACQUIRE);

			if (tid && in_userfault(tid))
				break;
			t_sleep_ms(1);
		}
		if (waited == 2000)
			SKIP("cannot see thread %d blocked in handle_userfault "
			     "(no wchan?)", i);
	}
}

int main(void)
{
	struct uffd_region_ops ops = { .missing = copy_once };
	UFFD_OPTS(uffd_handler_opts, opts, .threads = 2, .batch = 64);
	struct uffd_handler_stats s;
	struct reader rd[NTHREADS];
	struct uffd_handler *h;
	struct uffd u;
	char *area;
	int i;

	t_open(&u, 0, 0);
	area = t_map_anon(2 * PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 17);
	h = uffd_handler_new(&u, &opts);
	CHECK(h);
	CHECK(uffd_handler_add(h, area, 2 * PAGE, 0, UFFD_REG_MISSING, &ops, NULL));

	for (i = 0; i < NTHREADS; i++) {
		rd[i] = (struct reader){ .addr = area + PAGE + 64 * i };
		if (pthread_create(&rd[i].thread, NULL, read_main, &rd[i]))
			FAIL("pthread_create");
	}
	wait_all_blocked(rd);
	for (i = 0; i < NTHREADS; i++)
		CHECK(!__atomic_load_n(&rd[i].done, __ATOMIC_ACQUIRE));

	CHECK_OK(uffd_handler_start(h));
	for (i = 0; i < NTHREADS; i++) {
		if (!t_wait_flag(&rd[i].done, 2000))
			FAIL("reader %d still blocked 2 s after start", i);
		pthread_join(rd[i].thread, NULL);
		CHECK_EQ(rd[i].value, src[64 * i]);
	}
	CHECK(t_is_filled(area + PAGE, PAGE, 17));
	CHECK_EQ(__atomic_load_n(&calls, __ATOMIC_RELAXED), 1);

	WAIT_STATS(h, s, s.pages_resolved == 1 && t_hist_total(&s) == 1);
	CHECK_EQ(s.faults[UFFD_FAULT_MISSING], NTHREADS);
	CHECK_EQ(s.messages, NTHREADS);
	CHECK_EQ(s.reads, 1);
	CHECK_EQ(s.coalesced, NTHREADS - 1);
	CHECK(s.coalesced >= 1);
	CHECK_EQ(s.pages_resolved, 1);
	CHECK_EQ(s.eexist, 0);
	CHECK_EQ(t_hist_total(&s), 1);
	CHECK_OK(uffd_handler_stop(h));
	uffd_handler_free(h);
	uffd_close(&u);
	return T_EXIT_PASS;
}
