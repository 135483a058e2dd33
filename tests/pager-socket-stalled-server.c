/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A socket store's time-out bounds every fault, however many queue behind
 * each other.  The server is stopped (SIGSTOP: connected, silent) and six
 * threads touch six pages not yet read through a pager with one servicing
 * thread, so their store reads run one after another: each thread gets
 * SIGBUS at its address within the store's time-out (1 s here, through
 * uffd_store_socket_open()) plus 1.5 s of slack for scheduling - not the
 * time-outs of the reads queued before it added up.  Once the server runs
 * again and a time-out has passed, a page not read yet reads right: a
 * server that was silent once is not taken for dead for good.  Bad
 * time-outs are refused (EINVAL).
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/sigbus.h"
#include "lib/test-store.h"
#include "util/clock.h"

#define LEN		(256 * PAGE)
#define SEED		5
#define NTHREADS	6
#define TIMEOUT_MS	1000
#define SLACK_MS	1500

int main(void)
{
	struct uffd_pager_opts o = { .sz = sizeof(o), .buffer_bytes = 64 * PAGE,
				     .read_ahead = UFFD_PAGER_NO_READ_AHEAD };
	const char *path = t_img_path(0, t_img_dir(), "mem.sock");
	UFFD_OPTS(uffd_store_socket_opts, so, .timeout_ms = TIMEOUT_MS);
	UFFD_OPTS(uffd_store_socket_opts, bad, .timeout_ms = -1);
	struct t_sigbus_read rd[NTHREADS];
	uint64_t start, took_ms[NTHREADS] = { 0 };
	static char model[LEN];
	struct uffd_store *s;
	struct uffd_pager *p;
	int i, left, n, status;
	pid_t server;
	char *map;

	t_sigbus_catch();
	server = t_serve_start(path, LEN, SEED);
	CHECK(!uffd_store_socket_open(path, &bad));
	CHECK_EQ(errno, EINVAL);
	bad.timeout_ms = UFFD_STORE_SOCKET_MAX_TIMEOUT_MS + 1;
	CHECK(!uffd_store_socket_open(path, &bad));
	CHECK_EQ(errno, EINVAL);

	p = t_pager_new(&o);
	s = uffd_store_socket_open(path, &so);
	CHECK(s);
	map = uffd_pager_map(p, s, 0, LEN, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	CHECK(map);
	t_fill(model, LEN, SEED);
	t_check_bytes("page 0 before the stop", map, model, PAGE);

	CHECK_OK(kill(server, SIGSTOP));
	CHECK_EQ(waitpid(server, &status, WUNTRACED), server);	/* stopped by now */
	CHECK(WIFSTOPPED(status));
	start = mono_ns();
	for (i = 0; i < NTHREADS; i++)
		t_sigbus_read_start(&rd[i], map + (10 + 20 * i) * PAGE + 3);
	for (left = NTHREADS; left;) {
		for (i = 0; i < NTHREADS; i++) {
			if (took_ms[i] || !__atomic_load_n(&rd[i].done, __ATOMIC_ACQUIRE))
				continue;
			took_ms[i] = (mono_ns() - start) / 1000000 + 1;
			left--;
		}
		if (left && (mono_ns() - start) / 1000000 > 30000)
			break;		/* report below which ones hung */
		usleep(2000);
	}
	for (i = 0; i < NTHREADS; i++) {
		if (!took_ms[i])
			FAIL("thread %d: no answer after 30 s", i);
		fprintf(stderr, "thread %d: %s after %" PRIu64 " ms\n", i,
			rd[i].got_sigbus ? "SIGBUS" : "no signal", took_ms[i]);
	}
	for (i = 0, n = 0; i < NTHREADS; i++) {
		t_sigbus_read_join(&rd[i]);
		if (!rd[i].got_sigbus)
			FAIL("thread %d read a page from a stopped server", i);
		CHECK_EQ((uintptr_t)rd[i].bus.addr, (uintptr_t)(map + (10 + 20 * i) * PAGE + 3));
		if (took_ms[i] > TIMEOUT_MS + SLACK_MS)
			n++;
	}
	if (n)
		FAIL("%d of %d faults took longer than the time-out (%d ms) + %d ms", n,
		     NTHREADS, TIMEOUT_MS, SLACK_MS);

	/* The server back: after a time-out, pages read again. */
	CHECK_OK(kill(server, SIGCONT));
	usleep((TIMEOUT_MS + 100) * 1000);
	t_check_bytes("page 200 after the server came back", map + 200 * PAGE,
		      model + 200 * PAGE, PAGE);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	t_serve_kill(server);
	return T_EXIT_PASS;
}
