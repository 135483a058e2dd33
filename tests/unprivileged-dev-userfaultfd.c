/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An unprivileged process gets a full userfaultfd, one that also takes
 * faults raised in kernel mode, through a /dev/userfaultfd node it may open:
 * root makes a node with the device's major/minor in a temporary directory,
 * owned by nobody with mode 0600; nobody points LIBUFFD_DEVICE at it and
 * uffd_open(UFFD_VIA_DEV) succeeds with how == UFFD_OPENED_DEV (not
 * user-only), and a read(2) from a pipe into a MISSING-registered page is
 * delivered as a fault that a COPY resolves.  With the node's mode 000 the
 * same open fails with -EACCES.  vm.unprivileged_userfaultfd plays no part.
 *
 * Kernel behaviour libuffd relies on: access to USERFAULTFD_IOC_NEW is
 * decided by the device node's file mode alone, and an fd made that way
 * handles kernel-mode faults without CAP_SYS_PTRACE.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/harness.h"

#define REAL_DEVICE "/dev/userfaultfd"
#define NOBODY 65534

static char dir[] = "/tmp/libuffd-dev-XXXXXX";
static char node[sizeof(dir) + 16];
static pid_t owner;

static void remove_node(void)
{
	if (getpid() != owner)
		return;		/* a forked child must not clean up */
	unlink(node);
	rmdir(dir);
}

/* A read(2) from a pipe into memory, on its own thread. */
struct pipe_read {
	pthread_t thread;
	int fd;
	char *dst;
	size_t len;
	ssize_t ret;
	int err;
	int done;		/* atomic */
};

static void *pipe_read_main(void *arg)
{
	struct pipe_read *r = arg;

	r->ret = read(r->fd, r->dst, r->len);
	r->err = errno;
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int open_via_node(void *arg)
{
	struct pipe_read r = { 0 };
	struct uffd_event ev;
	struct uffd u;
	char *area, *src;
	int pipefd[2];

	(void)arg;
	CHECK_EQ(geteuid(), NOBODY);
	uffd_probe_reset();	/* forget what root may have probed */

	/* Without the node nobody has no full userfaultfd. */
	CHECK_OK(unsetenv("LIBUFFD_DEVICE") ? -errno : 0);
	CHECK_EQ(uffd_open(&u, 0, 0, UFFD_VIA_DEV), -EACCES);

	CHECK_OK(setenv("LIBUFFD_DEVICE", node, 1) ? -errno : 0);
	CHECK_OK(uffd_open(&u, 0, 0, UFFD_VIA_DEV | UFFD_NONBLOCK));
	CHECK_EQ(u.how, UFFD_OPENED_DEV | UFFD_OPENED_NONBLOCK);

	area = t_map_anon(PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 6);
	CHECK_OK(uffd_register(&u, area, PAGE, UFFD_REG_MISSING, NULL));
	CHECK_OK(pipe(pipefd) ? -errno : 0);
	CHECK_EQ(write(pipefd[1], "kernel", 6), 6);

	/* The kernel's write into the missing page is a fault we serve. */
	r.fd = pipefd[0];
	r.dst = area + 1000;
	r.len = 6;
	if (pthread_create(&r.thread, NULL, pipe_read_main, &r))
		FAIL("pthread_create");
	t_read_one(&u, &ev, 2000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)area);
	CHECK_EQ(ev.fault.write, true);
	CHECK(!t_wait_flag(&r.done, 50));
	CHECK_OK(uffd_copy(&u, area, src, PAGE, 0, NULL));
	CHECK(t_wait_flag(&r.done, 2000));
	pthread_join(r.thread, NULL);
	CHECK_EQ(r.ret, 6);
	CHECK(memcmp(area + 1000, "kernel", 6) == 0);
	CHECK(memcmp(area, src, 1000) == 0);
	CHECK(memcmp(area + 1006, src + 1006, PAGE - 1006) == 0);
	t_expect_no_event(&u, 0);

	close(pipefd[0]);
	close(pipefd[1]);
	uffd_close(&u);
	return T_EXIT_PASS;
}

static int open_refused(void *arg)
{
	struct uffd u;

	(void)arg;
	uffd_probe_reset();
	CHECK_OK(setenv("LIBUFFD_DEVICE", node, 1) ? -errno : 0);
	CHECK_EQ(uffd_open(&u, 0, 0, UFFD_VIA_DEV), -EACCES);
	CHECK_EQ(u.fd, -1);
	return T_EXIT_PASS;
}

static int run_as_nobody(int (*fn)(void *))
{
	int ret = t_run_unprivileged(fn, NULL);

	if (ret == T_EXIT_SKIP)
		SKIP("could not drop to uid/gid %d", NOBODY);
	return ret;
}

int main(void)
{
	struct stat st;
	int fd, ret;

	if (getuid() != 0)
		SKIP("needs root to create a device node");
	if (stat(REAL_DEVICE, &st) || !S_ISCHR(st.st_mode))
		SKIP("no %s (Linux < 6.1 or not in this container)", REAL_DEVICE);
	if (!mkdtemp(dir))
		FAIL("mkdtemp: %s", strerror(errno));
	owner = getpid();
	snprintf(node, sizeof(node), "%s/userfaultfd", dir);
	atexit(remove_node);
	/* nobody must reach the node through the directory. */
	CHECK_OK(chmod(dir, 0711) ? -errno : 0);
	if (mknod(node, S_IFCHR | 0600, st.st_rdev))
		SKIP("mknod %s (%u:%u): %s", node, major(st.st_rdev),
		     minor(st.st_rdev), strerror(errno));
	fd = open(node, O_RDWR);
	if (fd < 0)
		SKIP("cannot open a device node in %s (nodev mount?): %s",
		     dir, strerror(errno));
	close(fd);
	CHECK_OK(chown(node, NOBODY, NOBODY) ? -errno : 0);
	CHECK_OK(chmod(node, 0600) ? -errno : 0);

	ret = run_as_nobody(open_via_node);
	if (ret != T_EXIT_PASS)
		return ret;

	CHECK_OK(chmod(node, 0) ? -errno : 0);
	return run_as_nobody(open_refused);
}
