// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The migration's API refuses what it cannot honour, with the documented
 * answer: NULL handles and out-pointers (-EINVAL, or NULL with EINVAL);
 * options out of range; regions that overlap, are unaligned, have pages
 * above 2 MiB, or are shared/hugetlb memory without their file at the
 * destination; a resume of a migration that is not broken and a poison
 * before the switchover (-EINVAL).  Peers that disagree fail at the
 * handshake, both sides, without moving a page: other regions (EINVAL),
 * one channel against two (EINVAL), no common version (EPROTONOSUPPORT).
 */
#include <sys/socket.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"
#include "migrate/wire.h"

static char *area;

static struct uffd_mig_source *src_with(const struct uffd_image_region *r, int n, int s, int u,
					bool one)
{
	UFFD_OPTS(uffd_mig_source_opts, o, .regions = r, .nregions = n, .stream_fd = s,
		  .urgent_fd = u, .one_channel = one, .mode = UFFD_MIG_POSTCOPY_ONLY,
		  .timeout_ms = 3000);
	return uffd_mig_source_start(&o);
}

static struct uffd_mig_dest *dst_with(const struct uffd_image_region *r, int n, int s, int u,
				      bool one)
{
	UFFD_OPTS(uffd_mig_dest_opts, o, .regions = r, .nregions = n, .stream_fd = s,
		  .urgent_fd = u, .one_channel = one, .timeout_ms = 3000);
	return uffd_mig_dest_start(&o);
}

#define CHECK_NULL_EINVAL(expr) do {					\
	errno = 0;							\
	CHECK((expr) == NULL);						\
	CHECK_EQ(errno, EINVAL);					\
} while (0)

static void arguments(void)
{
	struct uffd_image_region r[2] = {
		{ (uintptr_t)area, 1 << 20, 4096, UFFD_IMAGE_ANON },
		{ (uintptr_t)area + (1 << 20), 1 << 20, 4096, UFFD_IMAGE_ANON },
	};
	struct uffd_image_region bad;
	struct uffd_mig_stats st;
	int s[2];

	CHECK_NULL_EINVAL(uffd_mig_source_start(NULL));
	CHECK_NULL_EINVAL(uffd_mig_dest_start(NULL));
	CHECK_EQ(uffd_mig_source_wait(NULL, 0), -EINVAL);
	CHECK_EQ(uffd_mig_source_switchover(NULL), -EINVAL);
	CHECK_EQ(uffd_mig_source_resume(NULL, 0, 0), -EINVAL);
	CHECK_EQ(uffd_mig_source_stats(NULL, &st), -EINVAL);
	CHECK_EQ(uffd_mig_dest_wait(NULL, 0), -EINVAL);
	CHECK_EQ(uffd_mig_dest_resume(NULL, 0, 0), -EINVAL);
	CHECK_EQ(uffd_mig_dest_poison(NULL), -EINVAL);
	CHECK_EQ(uffd_mig_dest_stats(NULL, &st), -EINVAL);
	uffd_mig_source_free(NULL);
	uffd_mig_dest_free(NULL);

	t_tcp_pair(&s[0], &s[1]);
	CHECK_NULL_EINVAL(src_with(r, 0, s[0], -1, true));
	CHECK_NULL_EINVAL(src_with(NULL, 1, s[0], -1, true));
	CHECK_NULL_EINVAL(src_with(r, 1, -1, -1, true));
	CHECK_NULL_EINVAL(src_with(r, 1, s[0], -1, false));	/* no urgent fd */
	bad = r[0];
	bad.len = 4096 + 1;
	CHECK_NULL_EINVAL(src_with(&bad, 1, s[0], -1, true));
	bad = r[0];
	bad.page_size = 8u << 20;
	bad.len = 8u << 20;
	CHECK_NULL_EINVAL(src_with(&bad, 1, s[0], -1, true));
	bad = r[1];
	bad.addr -= 4096;					/* overlaps r[0] */
	{
		struct uffd_image_region two[2] = { r[0], bad };

		CHECK_NULL_EINVAL(src_with(two, 2, s[0], -1, true));
		CHECK_NULL_EINVAL(dst_with(two, 2, s[1], -1, true));
	}
	bad = r[0];
	bad.flags = UFFD_IMAGE_SHMEM;				/* without its file */
	CHECK_NULL_EINVAL(dst_with(&bad, 1, s[1], -1, true));
	{
		UFFD_OPTS(uffd_mig_source_opts, o, .regions = r, .nregions = 1, .stream_fd = s[0],
			  .one_channel = true, .mode = 7);
		CHECK_NULL_EINVAL(uffd_mig_source_start(&o));
	}
	{
		UFFD_OPTS(uffd_mig_source_opts, o, .regions = r, .nregions = 1, .stream_fd = s[0],
			  .one_channel = true, .pause = (void (*)(void *))abort);
		CHECK_NULL_EINVAL(uffd_mig_source_start(&o));	/* pause without resume */
	}
	close(s[0]);
	close(s[1]);
}

/* A source and a destination that disagree: both fail with err. */
static void disagree(const struct uffd_image_region *sr, bool sone,
		     const struct uffd_image_region *dr, bool done, int err)
{
	struct uffd_mig_source *src;
	struct uffd_mig_dest *dst;
	struct uffd_mig_stats st;
	int s[2], u[2] = { -1, -1 };

	t_tcp_pair(&s[0], &s[1]);
	if (!sone || !done)
		t_tcp_pair(&u[0], &u[1]);
	dst = dst_with(dr, 1, s[1], u[1], done);
	src = src_with(sr, 1, s[0], u[0], sone);
	CHECK(src && dst);
	CHECK_EQ(uffd_mig_dest_wait(dst, 5000), err);
	CHECK_EQ(uffd_mig_source_wait(src, 5000), err);
	/* Nothing moved, nothing registered: not resumable, not poisonable. */
	CHECK_EQ(uffd_mig_dest_resume(dst, s[1], u[1]), -EINVAL);
	CHECK_EQ(uffd_mig_source_resume(src, s[0], u[0]), -EINVAL);
	CHECK_EQ(uffd_mig_dest_poison(dst), -EINVAL);
	CHECK_OK(uffd_mig_dest_stats(dst, &st));
	CHECK_EQ(st.pages_received, 0);
	CHECK(strstr(st.message, "handshake"));
	uffd_mig_source_free(src);
	uffd_mig_dest_free(dst);
	close(s[0]);
	close(s[1]);
	if (u[0] >= 0) {
		close(u[0]);
		close(u[1]);
	}
}

static void version(void)
{
	struct uffd_image_region r = { (uintptr_t)area, 1 << 20, 4096, UFFD_IMAGE_ANON };
	uint8_t hello[MIG_HDR_SIZE + MIG_HELLO_BASE + 16], back[MIG_HDR_SIZE + 24];
	struct uffd_mig_dest *dst;
	int s[2];

	t_tcp_pair(&s[0], &s[1]);
	dst = dst_with(&r, 1, s[1], -1, true);
	CHECK(dst);
	memset(hello, 0, sizeof(hello));
	put_le32(hello + MIG_HDR_SIZE, 2);		/* versions 2..3 only */
	put_le32(hello + MIG_HDR_SIZE + 4, 3);
	put_le32(hello + MIG_HDR_SIZE + 12, MIG_HELLO_ONE_CHANNEL);
	put_le32(hello + MIG_HDR_SIZE + 20, 1);
	put_le64(hello + MIG_HDR_SIZE + 24, 7);
	put_le64(hello + MIG_HDR_SIZE + MIG_HELLO_BASE, 1 << 20);
	put_le32(hello + MIG_HDR_SIZE + MIG_HELLO_BASE + 8, 4096);
	mig_put_hdr(hello, MIG_HELLO, 0, 0, MIG_HELLO_BASE + 16);
	CHECK_EQ(write(s[0], hello, sizeof(hello)), sizeof(hello));
	CHECK_EQ(read(s[0], back, sizeof(back)), sizeof(back));
	CHECK_EQ(back[4], MIG_WELCOME);
	CHECK_EQ(get_le32(back + MIG_HDR_SIZE + 4), EPROTONOSUPPORT);
	CHECK_EQ(uffd_mig_dest_wait(dst, 5000), -EPROTONOSUPPORT);
	uffd_mig_dest_free(dst);
	close(s[0]);
	close(s[1]);
}

int main(void)
{
	struct uffd_image_region one = { 0, 1 << 20, 4096, UFFD_IMAGE_ANON };
	struct uffd_image_region two = { 0, 2 << 20, 4096, UFFD_IMAGE_ANON };
	struct uffd_image_region dst1 = { 0, 1 << 20, 4096, UFFD_IMAGE_ANON };

	area = t_map_anon(4 << 20);
	one.addr = (uintptr_t)area;
	two.addr = (uintptr_t)area;
	dst1.addr = (uintptr_t)area + (2 << 20);
	arguments();
	disagree(&two, true, &dst1, true, -EINVAL);	/* other regions */
	disagree(&one, true, &dst1, false, -EINVAL);	/* one channel against two */
	version();
	return T_EXIT_PASS;
}
