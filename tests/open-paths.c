/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_open() takes the path its flags ask for and says so in u.how:
 * UFFD_VIA_SYSCALL -> userfaultfd(2), UFFD_VIA_DEV -> /dev/userfaultfd, no
 * flag -> the device first; UFFD_USER_ONLY adds UFFD_OPENED_USER_ONLY and
 * really makes the fd user-mode-only; both VIA flags -> -EINVAL; the fd is
 * always close-on-exec; UFFD_NONBLOCK sets O_NONBLOCK (and only then);
 * LIBUFFD_DEVICE overrides the device path, and a failing device falls
 * through to the syscall unless UFFD_VIA_DEV, which returns the device's
 * own error (-ENOENT for a missing node, -ENOTTY for a non-uffd one).
 *
 * Kernel behaviour libuffd relies on: USERFAULTFD_IOC_NEW on
 * /dev/userfaultfd accepts UFFD_USER_MODE_ONLY like userfaultfd(2) does; a
 * user-mode-only fd does not take a fault raised in kernel mode (read(2)
 * into a missing page fails with EFAULT and nothing is queued).
 *
 * Run as root (the lead's machine): every path is open to us.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/harness.h"

#define DEFAULT_DEVICE "/dev/userfaultfd"

/* Open with flags and expect success with exactly this how. */
static void open_expect(struct uffd *u, unsigned flags, unsigned how,
			int line)
{
	int ret = uffd_open(u, 0, 0, flags);
	int fd_flags, fl;

	if (ret)
		FAIL("line %d: uffd_open(flags %#x): %s", line, flags,
		     t_errname(ret));
	if (u->how != how)
		FAIL("line %d: flags %#x: how %#x, want %#x", line, flags,
		     u->how, how);
	CHECK(u->fd >= 0);
	fd_flags = fcntl(u->fd, F_GETFD);
	fl = fcntl(u->fd, F_GETFL);
	CHECK(fd_flags >= 0 && fl >= 0);
	if (!(fd_flags & FD_CLOEXEC))
		FAIL("line %d: flags %#x: fd not close-on-exec", line, flags);
	if (!!(fl & O_NONBLOCK) != !!(flags & UFFD_NONBLOCK))
		FAIL("line %d: flags %#x: O_NONBLOCK is %d", line, flags,
		     !!(fl & O_NONBLOCK));
}

#define OPEN_EXPECT(u, flags, how) open_expect(u, flags, how, __LINE__)

static void open_expect_error(unsigned flags, int err, int line)
{
	struct uffd u;
	int ret;

	memset(&u, 0x5a, sizeof(u));
	ret = uffd_open(&u, 0, 0, flags);
	if (ret != err)
		FAIL("line %d: uffd_open(flags %#x) = %d (%s), want %d (%s)",
		     line, flags, ret, t_errname(ret), err, t_errname(err));
	CHECK_EQ(u.fd, -1);
}

#define OPEN_EXPECT_ERROR(flags, err) open_expect_error(flags, err, __LINE__)

/*
 * A read(2) into a MISSING-registered page makes the kernel fault on it: a
 * user-mode-only fd must refuse that fault (EFAULT, nothing queued), so the
 * read cannot block.
 */
static void check_user_only_is_real(struct uffd *u)
{
	char *area = t_map_anon(PAGE);
	int pipefd[2];

	CHECK_OK(uffd_register(u, area, PAGE, UFFD_REG_MISSING, NULL));
	CHECK_OK(pipe(pipefd) ? -errno : 0);
	CHECK_EQ(write(pipefd[1], "k", 1), 1);
	CHECK_EQ(read(pipefd[0], area, 1), -1);
	CHECK_EQ(errno, EFAULT);
	t_expect_no_event(u, 50);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_OK(uffd_unregister(u, area, PAGE));
}

int main(void)
{
	struct uffd u;
	struct stat st;

	if (getuid() != 0)
		SKIP("needs root: every open path must be allowed");
	if (stat(DEFAULT_DEVICE, &st) || !S_ISCHR(st.st_mode))
		SKIP("no %s (Linux < 6.1 or not in this container)",
		     DEFAULT_DEVICE);
	unsetenv("LIBUFFD_DEVICE");

	OPEN_EXPECT(&u, UFFD_VIA_SYSCALL, UFFD_OPENED_SYSCALL);
	uffd_close(&u);
	OPEN_EXPECT(&u, UFFD_VIA_DEV, UFFD_OPENED_DEV);
	uffd_close(&u);
	/* Default order: the device first. */
	OPEN_EXPECT(&u, 0, UFFD_OPENED_DEV);
	uffd_close(&u);

	OPEN_EXPECT(&u, UFFD_NONBLOCK, UFFD_OPENED_DEV | UFFD_OPENED_NONBLOCK);
	uffd_close(&u);
	OPEN_EXPECT(&u, UFFD_NONBLOCK | UFFD_VIA_SYSCALL,
		    UFFD_OPENED_SYSCALL | UFFD_OPENED_NONBLOCK);
	uffd_close(&u);

	/* User-only on each path, and the kernel really treats it so. */
	OPEN_EXPECT(&u, UFFD_USER_ONLY | UFFD_NONBLOCK,
		    UFFD_OPENED_DEV | UFFD_OPENED_USER_ONLY | UFFD_OPENED_NONBLOCK);
	check_user_only_is_real(&u);
	uffd_close(&u);
	OPEN_EXPECT(&u, UFFD_USER_ONLY | UFFD_VIA_SYSCALL | UFFD_NONBLOCK,
		    UFFD_OPENED_SYSCALL | UFFD_OPENED_USER_ONLY |
		    UFFD_OPENED_NONBLOCK);
	check_user_only_is_real(&u);
	uffd_close(&u);
	/* ALLOW_USER_ONLY is only a fallback: root is not refused. */
	OPEN_EXPECT(&u, UFFD_ALLOW_USER_ONLY | UFFD_VIA_SYSCALL,
		    UFFD_OPENED_SYSCALL);
	uffd_close(&u);

	OPEN_EXPECT_ERROR(UFFD_VIA_DEV | UFFD_VIA_SYSCALL, -EINVAL);

	/* LIBUFFD_DEVICE moves the device; a missing node is -ENOENT... */
	CHECK_OK(setenv("LIBUFFD_DEVICE", "/nonexistent", 1) ? -errno : 0);
	OPEN_EXPECT_ERROR(UFFD_VIA_DEV, -ENOENT);
	/* ... and without VIA_DEV the syscall takes over. */
	OPEN_EXPECT(&u, 0, UFFD_OPENED_SYSCALL);
	uffd_close(&u);

	/* A node that is not the userfaultfd device: its ioctl's ENOTTY. */
	CHECK_OK(setenv("LIBUFFD_DEVICE", "/dev/null", 1) ? -errno : 0);
	OPEN_EXPECT_ERROR(UFFD_VIA_DEV, -ENOTTY);
	OPEN_EXPECT(&u, 0, UFFD_OPENED_SYSCALL);
	uffd_close(&u);

	/* An empty value means the default device. */
	CHECK_OK(setenv("LIBUFFD_DEVICE", "", 1) ? -errno : 0);
	OPEN_EXPECT(&u, UFFD_VIA_DEV, UFFD_OPENED_DEV);
	uffd_close(&u);
	unsetenv("LIBUFFD_DEVICE");

	return T_EXIT_PASS;
}
