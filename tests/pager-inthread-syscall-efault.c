// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The price of the pager's in-thread mode, as uffd/pager.h documents it:
 * a system call that touches a page of an in-thread map that is not
 * resolved fails with EFAULT instead of waiting - the kernel raises no
 * SIGBUS for its own accesses, and no thread is there to serve a message.
 * read(2) from a pipe into a page never touched fails so, the page is not
 * read from the store and the data stays in the pipe; once the program
 * has touched the page (read in its own thread), the page is mapped
 * clean, write-protected, and read(2) into it still fails; once the
 * program has written it (marked dirty in its own thread), the same
 * read(2) succeeds, and a flush writes both writes back.  write(2) from a
 * page never touched fails with EFAULT too.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"

#define SEED	3

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 1 << 20, .in_thread = true,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	struct t_store *ts = t_store_new(4 * PAGE, SEED);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	int pipefd[2];
	char *map, buf[8];

	t_require_in_thread();
	t_require(UFFD_FEAT_SIGBUS);
	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, 4 * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	CHECK_OK(pipe2(pipefd, O_NONBLOCK) ? -errno : 0);

	/* Into a page never touched: EFAULT, not read, nothing consumed. */
	CHECK_EQ(write(pipefd[1], "abcdef", 6), 6);
	errno = 0;
	CHECK_EQ(read(pipefd[0], map + 100, 6), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(t_reads(ts, 0), 0);

	/* Touched (read): mapped clean and write-protected - still EFAULT. */
	CHECK_EQ(*(uint64_t *)map, t_word(0, SEED));
	CHECK_EQ(t_reads(ts, 0), 1);
	errno = 0;
	CHECK_EQ(read(pipefd[0], map + 100, 6), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(*(uint64_t *)(map + 96), t_word(96, SEED));

	/* Written by the program (dirty, un-protected): read(2) goes in. */
	map[0] = 'W';
	CHECK_EQ(read(pipefd[0], map + 100, 6), 6);
	CHECK(!memcmp(map + 100, "abcdef", 6));

	/* write(2) from a page never touched: EFAULT, nothing written. */
	errno = 0;
	CHECK_EQ(write(pipefd[1], map + 2 * PAGE, 4), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(t_reads(ts, 2), 0);
	errno = 0;
	CHECK_EQ(read(pipefd[0], buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EAGAIN);

	CHECK_OK(uffd_pager_flush(p, map, 0));
	CHECK_EQ(ts->data[0], 'W');
	CHECK(!memcmp(ts->data + 100, "abcdef", 6));
	CHECK_EQ(t_writes(ts, 0), 1);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK_EQ(st.faults, 1);
	CHECK_EQ(st.wp_faults, 1);
	CHECK_EQ(st.fills, 1);
	close(pipefd[0]);
	close(pipefd[1]);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return T_EXIT_PASS;
}
