/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shared test helpers declared in harness.h. */
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

const char *t_errname(long long v)
{
	if (v >= 0 || v < -4095)
		return "";
	return strerrorname_np((int)-v) ? strerrorname_np((int)-v) : "?";
}

void t_require(enum uffd_feature f)
{
	int ret = uffd_feature_supported(f);

	if (ret == 1)
		return;
	if (ret == 0)
		SKIP("this kernel/machine lacks %s", uffd_feature_name(f));
	SKIP("cannot tell whether %s is supported: %s", uffd_feature_name(f),
	     strerror(-ret));
}

#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

bool t_in_thread_ok(void)
{
#ifdef T_TSAN
	fprintf(stderr, "note: in-thread cases skipped under ThreadSanitizer (its thread "
		"blocks every signal, which in-thread mode refuses)\n");
	return false;
#else
	return true;
#endif
}

void t_require_in_thread(void)
{
#ifdef T_TSAN
	SKIP("in-thread mode under ThreadSanitizer: its thread blocks every signal, "
	     "which in-thread mode refuses (EBUSY)");
#endif
}

static void *sigbus_blocker(void *arg)
{
	struct t_sigbus_blocker *b = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	__atomic_store_n(&b->state, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&b->state, __ATOMIC_ACQUIRE) != 2)
		t_sleep_ms(1);		/* runs now and then: seen blocking */
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	__atomic_store_n(&b->state, 3, __ATOMIC_RELEASE);
	while (__atomic_load_n(&b->state, __ATOMIC_ACQUIRE) != 4)
		t_sleep_ms(1);
	return NULL;
}

static void sigbus_blocker_await(struct t_sigbus_blocker *b, int state)
{
	while (__atomic_load_n(&b->state, __ATOMIC_ACQUIRE) != state)
		t_sleep_ms(1);
}

void t_sigbus_blocker_start(struct t_sigbus_blocker *b)
{
	b->state = 0;
	if (pthread_create(&b->thread, NULL, sigbus_blocker, b))
		FAIL("pthread_create: the SIGBUS blocker");
	sigbus_blocker_await(b, 1);
}

void t_sigbus_blocker_unblock(struct t_sigbus_blocker *b)
{
	__atomic_store_n(&b->state, 2, __ATOMIC_RELEASE);
	sigbus_blocker_await(b, 3);
}

void t_sigbus_blocker_end(struct t_sigbus_blocker *b)
{
	__atomic_store_n(&b->state, 4, __ATOMIC_RELEASE);
	pthread_join(b->thread, NULL);
}

void t_open(struct uffd *u, uint64_t required, unsigned flags)
{
	char names[256];
	int ret = uffd_open(u, required, 0, flags | UFFD_NONBLOCK);

	if (ret == -EOPNOTSUPP)
		SKIP("kernel lacks %s",
		     uffd_describe_missing(u->missing, names, sizeof(names)));
	if (ret)
		FAIL("uffd_open: %s", strerror(-ret));
}

void *t_map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	return p;
}

void *t_map_shared(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		FAIL("mmap shared: %s", strerror(errno));
	return p;
}

void *t_map_memfd(size_t len, int *fd)
{
	*fd = memfd_create("libuffd-test", MFD_CLOEXEC);
	if (*fd < 0)
		FAIL("memfd_create: %s", strerror(errno));
	if (ftruncate(*fd, len))
		FAIL("ftruncate: %s", strerror(errno));
	return t_map_shared(*fd, len);
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
static long saved_hugepages = -1;

static long read_long(const char *path)
{
	char buf[32] = "";
	long v = -1;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = strtol(buf, NULL, 10);
		close(fd);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY), n, ok;

	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	ok = write(fd, buf, n) == n;
	close(fd);
	return ok ? 0 : -EIO;
}

static void restore_hugepages(void)
{
	if (saved_hugepages >= 0)
		write_long(NR_HUGEPAGES, saved_hugepages);
}

static long free_hugepages(void)
{
	return read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
}

void *t_map_hugetlb(size_t npages, int *fd)
{
	long have = read_long(NR_HUGEPAGES);

	if (have < 0)
		SKIP("no %s", NR_HUGEPAGES);
	if (free_hugepages() < (long)npages) {
		if (saved_hugepages < 0) {
			saved_hugepages = have;
			atexit(restore_hugepages);
		}
		if (write_long(NR_HUGEPAGES, have + (long)npages) ||
		    free_hugepages() < (long)npages)
			SKIP("cannot reserve %zu hugetlb pages (need root and free memory)",
			     npages);
	}
	*fd = memfd_create("libuffd-test-huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (*fd < 0)
		SKIP("memfd_create(MFD_HUGETLB): %s", strerror(errno));
	if (ftruncate(*fd, npages * HPAGE))
		FAIL("ftruncate hugetlb: %s", strerror(errno));
	return t_map_shared(*fd, npages * HPAGE);
}

void t_fill(void *p, size_t len, unsigned seed)
{
	unsigned char *c = p;
	size_t i;

	for (i = 0; i < len; i++)
		c[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 12));
}

bool t_is_filled(const void *p, size_t len, unsigned seed)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (c[i] != (unsigned char)(seed * 131 + i * 7 + (i >> 12)))
			return false;
	return true;
}

bool t_is_zero(const void *p, size_t len)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (c[i])
			return false;
	return true;
}

/*
 * Not instrumented by ThreadSanitizer: it records a store before the CPU
 * executes it, so a write still blocked in a userfault would look like a
 * write that raced with the handler reading the page.  The completion
 * below (release/acquire on done, or the join) is the real synchronisation.
 */
__attribute__((no_sanitize("thread"), noinline))
static void raw_access(struct t_access *a)
{
	if (a->write)
		*a->addr = a->value;
	else
		a->value = *a->addr;
}

static void *access_main(void *arg)
{
	struct t_access *a = arg;

	raw_access(a);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void t_access_start(struct t_access *a, void *addr, bool write, char value)
{
	a->addr = addr;
	a->write = write;
	a->value = value;
	a->done = 0;
	if (pthread_create(&a->thread, NULL, access_main, a))
		FAIL("pthread_create");
}

bool t_access_wait(struct t_access *a, int ms)
{
	return t_wait_flag(&a->done, ms);
}

void t_access_join(struct t_access *a)
{
	pthread_join(a->thread, NULL);
}

bool t_wait_flag(const int *flag, int ms)
{
	int waited;

	for (waited = 0; waited < ms * 10; waited++) {
		if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
			return true;
		usleep(100);
	}
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

bool t_waits_in(pid_t tid, const char *want)
{
	char path[64], buf[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return !strcmp(buf, want);
}

bool t_wait_in(const pid_t *tid, const char *want, int ms)
{
	int waited;

	for (waited = 0; waited < ms; waited++) {
		pid_t t = __atomic_load_n(tid, __ATOMIC_ACQUIRE);

		if (t && t_waits_in(t, want))
			return true;
		poll(NULL, 0, 1);
	}
	return false;
}

void t_read_one(struct uffd *u, struct uffd_event *ev, int ms)
{
	int n = uffd_read_events(u, ev, 1, ms);

	if (n < 0)
		FAIL("uffd_read_events: %s", strerror(-n));
	if (n == 0)
		FAIL("no userfaultfd message within %d ms", ms);
}

void t_expect_fault(struct uffd *u, void *page, enum uffd_fault_kind kind,
		    bool write)
{
	struct uffd_event ev;

	t_read_one(u, &ev, 5000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, kind);
	CHECK_EQ(ev.fault.addr, (uintptr_t)page);
	CHECK_EQ(ev.fault.write, write);
}

void t_expect_no_event(struct uffd *u, int ms)
{
	struct uffd_event ev;
	int n = uffd_read_events(u, &ev, 1, ms);

	if (n < 0)
		FAIL("uffd_read_events: %s", strerror(-n));
	if (n > 0)
		FAIL("unexpected %s message", uffd_event_name(ev.type));
}

void t_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int t_run_unprivileged(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(T_EXIT_SKIP);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) < 0)
		FAIL("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status))
		FAIL("unprivileged child died with signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

/* Reap pid within ms: 1 (its status in *status), 0 (it has not exited by
 * then), or -errno from waitpid. */
static int reap_within(pid_t pid, int ms, int *status)
{
	int waited;

	for (waited = 0; waited < ms; waited++) {
		pid_t got = waitpid(pid, status, WNOHANG);

		if (got < 0)
			return -errno;
		if (got == pid)
			return 1;
		t_sleep_ms(1);
	}
	return 0;
}

int t_wait_child(pid_t pid, int ms)
{
	int status, ret = reap_within(pid, ms, &status);

	if (ret < 0)
		FAIL("waitpid: %s", strerror(-ret));
	if (!ret) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		FAIL("child did not exit within %d ms", ms);
	}
	if (!WIFEXITED(status))
		FAIL("child died with signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

int t_wait_child_fork_safe(pid_t pid, int ms, void (*cleanup)(void *), void *arg)
{
	int status, ret = reap_within(pid, ms, &status);

	if (ret < 0)
		FAIL_FORK_SAFE(cleanup, arg, "waitpid: %s", strerror(-ret));
	if (!ret) {
		kill(pid, SIGKILL);
		FAIL_FORK_SAFE(cleanup, arg, "child %d did not exit within %d ms", (int)pid, ms);
	}
	if (!WIFEXITED(status))
		FAIL_FORK_SAFE(cleanup, arg, "child %d died with signal %d", (int)pid,
			       WTERMSIG(status));
	return WEXITSTATUS(status);
}

int t_run_in_child(int (*fn)(void *), void *arg, int ms)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	return t_wait_child(pid, ms);
}

int t_run_each_in_child(int (*fn)(void *), const void *items, size_t size, int n, int ms,
			int *ran)
{
	int i, rc, failed = 0, done = 0;

	for (i = 0; i < n; i++) {
		rc = t_run_in_child(fn, (char *)items + (size_t)i * size, ms);
		failed += rc != T_EXIT_PASS && rc != T_EXIT_SKIP;
		done += rc != T_EXIT_SKIP;
	}
	if (ran)
		*ran = done;
	return failed;
}

int t_private_tmpfs(const char *dir, const char *size)
{
	char opts[64];

	if (unshare(CLONE_NEWNS)) {
		fprintf(stderr, "SKIP: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return T_EXIT_SKIP;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		fprintf(stderr, "SKIP: make mounts private: %s\n", strerror(errno));
		return T_EXIT_SKIP;
	}
	snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
	if (mount("tmpfs", dir, "tmpfs", 0, opts)) {
		fprintf(stderr, "SKIP: mount tmpfs: %s\n", strerror(errno));
		return T_EXIT_SKIP;
	}
	return 0;
}

void t_check_bytes(const char *what, const void *got, const void *want, size_t len)
{
	const unsigned char *g = got, *w = want;
	size_t i;

	for (i = 0; i < len; i++)
		if (g[i] != w[i])
			FAIL("%s: byte %zu (page %zu) is 0x%02x, want 0x%02x",
			     what, i, i / PAGE, g[i], w[i]);
}
