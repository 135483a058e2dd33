/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_open() keeps its required/wanted contract even when the probe of the
 * kernel's offered features could not run (here: the first probe hits
 * EMFILE because the fd table is full, so it learns nothing): a required bit
 * the kernel lacks is still -EOPNOTSUPP with u.missing exactly that bit (not
 * the bits the kernel has too), and a wanted bit the kernel lacks is still
 * dropped silently instead of failing the open.
 *
 * Why this path is delicate: UFFDIO_API with any unknown feature bit fails
 * as a whole with a bare EINVAL and reports nothing back (the kernel zeroes
 * the struct), so the lacking bits cannot be read off that refusal.
 */
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/harness.h"

/* No kernel defines feature bit 40 (the last one, MOVE, is 16). */
#define FUTURE_BIT	40
#define FD_LIMIT	32

/* Make the first probe run while no fd can be opened. */
static void probe_with_full_fd_table(void)
{
	struct rlimit saved, low;
	int fds[FD_LIMIT], n = 0, fd;

	CHECK_OK(getrlimit(RLIMIT_NOFILE, &saved) ? -errno : 0);
	low = saved;
	low.rlim_cur = FD_LIMIT;
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &low) ? -errno : 0);
	while (n < FD_LIMIT && (fd = open("/dev/null", O_RDONLY)) >= 0)
		fds[n++] = fd;
	CHECK_EQ(errno, EMFILE);
	uffd_probe_reset();
	/* Nothing can be had right now: the documented answer is 0. */
	CHECK_EQ(uffd_kernel_features(), 0);
	while (n)
		close(fds[--n]);
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &saved) ? -errno : 0);
}

int main(void)
{
	uint64_t have = UFFD_F(UFFD_FEAT_THREAD_ID);
	char names[64];
	struct uffd u;
	int ret;

	/* What this kernel offers, learned while the probe can run. */
	if (!(uffd_kernel_features() & have))
		SKIP("kernel lacks THREAD_ID");

	probe_with_full_fd_table();

	ret = uffd_open(&u, have | UFFD_F(FUTURE_BIT), 0, UFFD_NONBLOCK);
	CHECK_EQ(ret, -EOPNOTSUPP);
	CHECK_EQ(u.fd, -1);
	if (u.missing != UFFD_F(FUTURE_BIT))
		FAIL("u.missing is %#" PRIx64 " (%s), want bit %d only",
		     u.missing,
		     uffd_describe_missing(u.missing, names, sizeof(names)),
		     FUTURE_BIT);

	ret = uffd_open(&u, have, UFFD_F(FUTURE_BIT), UFFD_NONBLOCK);
	CHECK_EQ(ret, 0);
	CHECK(u.fd >= 0);
	CHECK(u.features & have);
	CHECK_EQ(u.features & UFFD_F(FUTURE_BIT), 0);
	uffd_close(&u);
	return T_EXIT_PASS;
}
