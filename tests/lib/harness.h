/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every test program shares: exact-outcome checks that name the line
 * and the values, skip-with-a-reason (exit 77), memory of each kind, a
 * worker thread that touches memory and reports when its access completed,
 * waiting for one userfaultfd message with a deadline, and reaping a child
 * with a deadline (a hung fault is the typical failure, so no wait in a
 * test is unbounded).
 */
#ifndef LIBUFFD_TEST_HARNESS_H
#define LIBUFFD_TEST_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <uffd/uffd.h>

#define T_EXIT_PASS 0
#define T_EXIT_FAIL 1
#define T_EXIT_SKIP 77

#define PAGE 4096UL
#define HPAGE (2UL << 20)

#define FAIL(...) do {							\
	fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);		\
	fprintf(stderr, __VA_ARGS__);					\
	fprintf(stderr, "\n");						\
	exit(T_EXIT_FAIL);						\
} while (0)

#define SKIP(...) do {							\
	fprintf(stderr, "SKIP: ");					\
	fprintf(stderr, __VA_ARGS__);					\
	fprintf(stderr, "\n");						\
	exit(T_EXIT_SKIP);						\
} while (0)

#define CHECK(cond) do {						\
	if (!(cond))							\
		FAIL("%s", #cond);					\
} while (0)

/*
 * FAIL where exit() may wait for ever: a fork of this process may hold
 * glibc's locks (the allocator's, stdio's list, pthread_atfork's), which
 * exit() would wait for.  cleanup(arg) when cleanup is not NULL (to kill
 * children that must not outlive the test), then _exit().
 */
#define FAIL_FORK_SAFE(cleanup, arg, ...) do {				\
	void (*_cleanup)(void *) = (cleanup);				\
	fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);		\
	fprintf(stderr, __VA_ARGS__);					\
	fprintf(stderr, "\n");						\
	if (_cleanup)							\
		_cleanup(arg);						\
	_exit(T_EXIT_FAIL);						\
} while (0)

/* Integer equality, printing both sides (errnos as names where possible). */
#define CHECK_EQ(a, b) do {						\
	long long _a = (long long)(a), _b = (long long)(b);		\
	if (_a != _b)							\
		FAIL("%s == %s: got %lld (%s), want %lld (%s)", #a, #b,	\
		     _a, t_errname(_a), _b, t_errname(_b));		\
} while (0)

/* A call returning 0 or -errno must succeed. */
#define CHECK_OK(call) CHECK_EQ((call), 0)

const char *t_errname(long long v);

/* Skip unless the probe says yes (and say which feature). */
void t_require(enum uffd_feature f);

/*
 * In-thread mode (uffd/handler.h) can run here: not under
 * ThreadSanitizer, whose own thread blocks every signal - in-thread mode
 * refuses that process with EBUSY, as it must - and which runs signal
 * handlers its own way.  t_require_in_thread() skips, saying so;
 * t_in_thread_ok() lets a test that also has other cases skip just its
 * in-thread ones (with a note on stderr).
 */
bool t_in_thread_ok(void);
void t_require_in_thread(void);

/*
 * A thread that blocks SIGBUS, which in-thread set-up must refuse (EBUSY):
 * _start returns once it blocks it, _unblock once it has unblocked it
 * (the thread lives on, sleeping), _end joins it.
 */
struct t_sigbus_blocker {
	pthread_t thread;
	int state;	/* atomic: 1 blocking, 2 told to unblock, 3 unblocked, 4 told to end */
};
void t_sigbus_blocker_start(struct t_sigbus_blocker *b);
void t_sigbus_blocker_unblock(struct t_sigbus_blocker *b);
void t_sigbus_blocker_end(struct t_sigbus_blocker *b);

/*
 * Open a non-blocking userfaultfd (so reads can have deadlines) with these
 * features, or skip (feature missing) / fail with the reason.
 */
void t_open(struct uffd *u, uint64_t required, unsigned flags);

/* Memory of each kind; fail on error.  memfd: *fd receives the memfd. */
void *t_map_anon(size_t len);
void *t_map_memfd(size_t len, int *fd);
void *t_map_shared(int fd, size_t len);	/* second mapping of a memfd */

/*
 * Hugetlb: reserve n 2 MiB pages for this test (restored at exit) and map a
 * hugetlbfs-backed memfd of n pages; skip if pages cannot be reserved.
 */
void *t_map_hugetlb(size_t npages, int *fd);

/* Fill a page with a recognisable pattern / check it. */
void t_fill(void *p, size_t len, unsigned seed);
bool t_is_filled(const void *p, size_t len, unsigned seed);
bool t_is_zero(const void *p, size_t len);
/* Fail at the first byte where got and want differ, naming its offset. */
void t_check_bytes(const char *what, const void *got, const void *want, size_t len);

/*
 * A thread that performs one access (read or write of one byte) at addr and
 * then sets done.  Used to raise a fault the test then handles.
 */
struct t_access {
	pthread_t thread;
	volatile char *addr;
	bool write;
	char value;		/* written, or read back */
	int done;		/* atomic: 1 when the access completed */
};
void t_access_start(struct t_access *a, void *addr, bool write, char value);
/* Wait up to ms for completion; true if it completed. */
bool t_access_wait(struct t_access *a, int ms);
void t_access_join(struct t_access *a);

/* Wait up to ms for another thread to set *flag (atomic); true if it did. */
bool t_wait_flag(const int *flag, int ms);

/* Thread tid of this process waits in the kernel function named want (its
 * wchan: "handle_userfault", "userfaultfd_event_wait_completion").  It
 * neither allocates nor uses stdio, so a test may ask while a fork of its
 * own holds glibc's locks. */
bool t_waits_in(pid_t tid, const char *want);
/* Wait up to ms until thread *tid (atomic: 0 until the thread stores its
 * tid) waits in want.  Fork-safe as t_waits_in(), and it sleeps with
 * poll(), not usleep(), which ThreadSanitizer makes wait for a lock that
 * its fork() holds. */
bool t_wait_in(const pid_t *tid, const char *want, int ms);

/* Read exactly one message within ms or fail. */
void t_read_one(struct uffd *u, struct uffd_event *ev, int ms);
/*
 * Read one message within 5 s: it must be a fault of this kind at page (the
 * start of the page that faulted), with this write flag.
 */
void t_expect_fault(struct uffd *u, void *page, enum uffd_fault_kind kind,
		    bool write);
/* Fail if any message arrives within ms. */
void t_expect_no_event(struct uffd *u, int ms);

/* Milliseconds sleep. */
void t_sleep_ms(int ms);

/*
 * In a new mount namespace (call it in a child: the mount goes with it),
 * mount a private tmpfs of the given size ("64k") at dir.  0, or
 * T_EXIT_SKIP after saying on stderr why it could not.
 */
int t_private_tmpfs(const char *dir, const char *size);

/* Run fn in a child that drops to uid/gid 65534 (nobody); its exit code. */
int t_run_unprivileged(int (*fn)(void *), void *arg);

/*
 * Reap child pid within ms: its exit status.  Fail if it died of a signal,
 * or if it has not exited by then (it is killed and reaped first).
 */
int t_wait_child(pid_t pid, int ms);
/*
 * The same for a test that may fail while a fork of its own is stuck
 * holding glibc's locks (the allocator's, stdio's list, pthread_atfork's):
 * a failure ends the process with _exit(), not exit(), which would wait
 * for those locks, after cleanup(arg) when cleanup is not NULL (to kill
 * children that must not outlive the test).  A child that has not exited
 * by then is killed first, and not reaped.
 */
int t_wait_child_fork_safe(pid_t pid, int ms, void (*cleanup)(void *), void *arg);
/* fn(arg) in a forked child (a fresh address space for a test that races
 * the memory map); its exit status, reaped within ms as t_wait_child. */
int t_run_in_child(int (*fn)(void *), void *arg, int ms);
/* The same for each of n items (of size bytes each, from items): fn gets
 * a pointer to one.  How many failed (exited neither 0 nor 77); *ran (may
 * be NULL) gets how many did not skip. */
int t_run_each_in_child(int (*fn)(void *), const void *items, size_t size, int n, int ms,
			int *ran);

#endif
