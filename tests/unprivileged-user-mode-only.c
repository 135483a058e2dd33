/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An unprivileged process (uid nobody, no capabilities) with
 * vm.unprivileged_userfaultfd=0 gets a user-mode-only userfaultfd and
 * nothing more: userfaultfd(2) without the flag is -EPERM, the root-only
 * device is -EACCES; UFFD_USER_ONLY and UFFD_ALLOW_USER_ONLY both end on
 * the user-only syscall and say so in u.how.  Such an fd sees user-mode
 * faults but not faults the kernel raises on the program's behalf.
 * EVENT_FORK needs CAP_SYS_PTRACE: dropped when only wanted, -EPERM when
 * required.
 *
 * Kernel behaviour libuffd relies on:
 *  - userfaultfd(0) is EPERM without CAP_SYS_PTRACE when the sysctl is 0,
 *    while userfaultfd(UFFD_USER_MODE_ONLY) is open to everyone;
 *  - a user-mode-only fd refuses a kernel-mode fault (read(2) from a pipe
 *    into a MISSING-registered page): the read fails with EFAULT, its data
 *    stays in the pipe, and no message is queued;
 *  - UFFDIO_API with EVENT_FORK fails with EPERM without CAP_SYS_PTRACE and
 *    leaves the fd uninitialised, so it can be retried without the bit.
 */
#include <fcntl.h>
#include <unistd.h>

#include "lib/harness.h"

#define SYSCTL "/proc/sys/vm/unprivileged_userfaultfd"

static void open_expect_error(unsigned flags, uint64_t required, int err,
			      int line)
{
	struct uffd u;
	int ret = uffd_open(&u, required, 0, flags);

	if (ret != err)
		FAIL("line %d: uffd_open(flags %#x) = %d (%s), want %d (%s)",
		     line, flags, ret, t_errname(ret), err, t_errname(err));
	CHECK_EQ(u.fd, -1);
}

#define OPEN_EXPECT_ERROR(flags, required, err) \
	open_expect_error(flags, required, err, __LINE__)

/* A kernel-mode fault is refused, a user-mode one is delivered. */
static void check_faults(struct uffd *u)
{
	char *area = t_map_anon(2 * PAGE), *src = t_map_anon(PAGE);
	struct uffd_event ev;
	struct t_access a;
	int pipefd[2];

	t_fill(src, PAGE, 4);
	CHECK_OK(uffd_register(u, area, 2 * PAGE, UFFD_REG_MISSING, NULL));

	CHECK_OK(pipe(pipefd) ? -errno : 0);
	CHECK_EQ(write(pipefd[1], "pipe", 4), 4);
	CHECK_EQ(read(pipefd[0], area + PAGE, 4), -1);
	CHECK_EQ(errno, EFAULT);
	t_expect_no_event(u, 100);

	t_access_start(&a, area + PAGE + 2, false, 0);
	t_read_one(u, &ev, 2000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + PAGE));
	CHECK(!t_access_wait(&a, 50));
	CHECK_OK(uffd_copy(u, area + PAGE, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[2]);

	/* Once the page is there the kernel's access needs no fault. */
	CHECK_EQ(read(pipefd[0], area + PAGE, 4), 4);
	CHECK(memcmp(area + PAGE, "pipe", 4) == 0);
	close(pipefd[0]);
	close(pipefd[1]);
}

static int unprivileged_main(void *arg)
{
	const unsigned user_only_how = UFFD_OPENED_SYSCALL |
				       UFFD_OPENED_USER_ONLY |
				       UFFD_OPENED_NONBLOCK;
	struct uffd u;

	(void)arg;
	CHECK_EQ(geteuid(), 65534);
	uffd_probe_reset();	/* forget what root may have probed */
	CHECK_EQ(uffd_feature_supported(UFFD_FEAT_SYSCALL), 0);
	CHECK_EQ(uffd_feature_supported(UFFD_FEAT_USER_MODE_ONLY), 1);

	OPEN_EXPECT_ERROR(UFFD_VIA_SYSCALL, 0, -EPERM);
	OPEN_EXPECT_ERROR(UFFD_VIA_DEV, 0, -EACCES);
	/* Both paths refused: the syscall's EPERM is the one reported. */
	OPEN_EXPECT_ERROR(0, 0, -EPERM);

	CHECK_OK(uffd_open(&u, 0, 0, UFFD_USER_ONLY | UFFD_NONBLOCK));
	CHECK_EQ(u.how, user_only_how);
	check_faults(&u);
	uffd_close(&u);

	CHECK_OK(uffd_open(&u, 0, 0, UFFD_ALLOW_USER_ONLY | UFFD_VIA_SYSCALL |
			   UFFD_NONBLOCK));
	CHECK_EQ(u.how, user_only_how);
	check_faults(&u);
	uffd_close(&u);

	CHECK_OK(uffd_open(&u, 0, 0, UFFD_ALLOW_USER_ONLY | UFFD_NONBLOCK));
	CHECK_EQ(u.how, user_only_how);
	uffd_close(&u);

	/* EVENT_FORK: only wanted -> dropped, the rest granted. */
	CHECK_OK(uffd_open(&u, UFFD_F(UFFD_FEAT_THREAD_ID),
			   UFFD_F(UFFD_FEAT_EVENT_FORK), UFFD_USER_ONLY));
	CHECK(u.fd >= 0);
	CHECK_EQ(u.features & UFFD_F(UFFD_FEAT_EVENT_FORK), 0);
	CHECK(u.features & UFFD_F(UFFD_FEAT_THREAD_ID));
	uffd_close(&u);
	/* Required -> EPERM (the kernel's answer, not EOPNOTSUPP). */
	OPEN_EXPECT_ERROR(UFFD_USER_ONLY, UFFD_F(UFFD_FEAT_EVENT_FORK), -EPERM);
	return T_EXIT_PASS;
}

int main(void)
{
	char buf[8] = "";
	int fd = open(SYSCTL, O_RDONLY), ret;

	if (fd < 0)
		SKIP("no %s: %s", SYSCTL, strerror(errno));
	ret = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (ret <= 0)
		SKIP("cannot read %s", SYSCTL);
	if (buf[0] != '0')
		SKIP("%s is not 0: unprivileged userfaultfd(2) is allowed",
		     SYSCTL);
	if (getuid() != 0)
		SKIP("needs root to drop to nobody");
	ret = t_run_unprivileged(unprivileged_main, NULL);
	if (ret == T_EXIT_SKIP)
		SKIP("could not drop to uid/gid 65534");
	return ret;
}
