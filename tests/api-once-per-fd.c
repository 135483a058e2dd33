/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Feature negotiation happens once per userfaultfd, inside uffd_open(): a
 * second UFFDIO_API on the same fd is refused and changes nothing; a
 * required bit the kernel lacks is reported before any fd is opened, as
 * -EOPNOTSUPP with u.missing naming exactly that bit ("bit 40" for a bit
 * with no name); WP_ASYNC, which this kernel has, is granted together with
 * the WP_UNPOPULATED it implies.
 *
 * Kernel behaviour libuffd relies on: UFFDIO_API succeeds only once per
 * fd; a second call fails with EINVAL (and the fd keeps working with the
 * features of the first).  This is why uffd_open() learns the offered set on
 * a throwaway fd first.  The raw ioctl below is the only one in the tests:
 * it is the kernel behaviour itself that is checked.
 */
#include <sys/ioctl.h>

#include "abi/userfaultfd.h"
#include "lib/harness.h"

/* No kernel defines feature bit 40 (the last one, MOVE, is 16). */
#define FUTURE_BIT 40

int main(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffd_event ev;
	struct t_access a;
	struct uffd u;
	char names[64], *area, *src;
	uint64_t features;
	int ret;

	/* A second UFFDIO_API is refused, with or without features. */
	t_open(&u, UFFD_F(UFFD_FEAT_THREAD_ID), 0);
	features = u.features;
	CHECK_EQ(ioctl(u.fd, UFFDIO_API, &api), -1);
	CHECK_EQ(errno, EINVAL);
	api = (struct uffdio_api){ .api = UFFD_API,
				   .features = UFFD_F(UFFD_FEAT_SIGBUS) };
	CHECK_EQ(ioctl(u.fd, UFFDIO_API, &api), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(u.features, features);

	/*
	 * The fd still works with its first features: faults block (SIGBUS
	 * was not turned on) and carry the thread id (THREAD_ID still on).
	 */
	area = t_map_anon(PAGE);
	src = t_map_anon(PAGE);
	t_fill(src, PAGE, 2);
	CHECK_OK(uffd_register(&u, area, PAGE, UFFD_REG_MISSING, NULL));
	t_access_start(&a, area, false, 0);
	t_read_one(&u, &ev, 2000);
	CHECK_EQ(ev.type, UFFD_EV_FAULT);
	CHECK_EQ(ev.fault.addr, (uintptr_t)area);
	CHECK(ev.fault.tid != 0);
	CHECK_OK(uffd_copy(&u, area, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 2000));
	t_access_join(&a);
	CHECK_EQ(a.value, src[0]);
	uffd_close(&u);

	/* A bit no kernel has: -EOPNOTSUPP, that bit missing, no fd. */
	memset(&u, 0x5a, sizeof(u));
	ret = uffd_open(&u, UFFD_F(FUTURE_BIT), 0, UFFD_NONBLOCK);
	CHECK_EQ(ret, -EOPNOTSUPP);
	CHECK_EQ(u.missing, UFFD_F(FUTURE_BIT));
	CHECK_EQ(u.fd, -1);
	CHECK(strcmp(uffd_describe_missing(u.missing, names, sizeof(names)),
		     "bit 40") == 0);

	/* Only the lacking bit is missing, not the ones the kernel has. */
	ret = uffd_open(&u, UFFD_F(UFFD_FEAT_MOVE) | UFFD_F(FUTURE_BIT), 0,
			UFFD_NONBLOCK);
	CHECK_EQ(ret, -EOPNOTSUPP);
	CHECK_EQ(u.missing, UFFD_F(FUTURE_BIT));
	CHECK_EQ(u.fd, -1);

	/* Wanted, not required: silently dropped. */
	CHECK_OK(uffd_open(&u, 0, UFFD_F(FUTURE_BIT), UFFD_NONBLOCK));
	CHECK(u.fd >= 0);
	CHECK_EQ(u.features & UFFD_F(FUTURE_BIT), 0);
	CHECK_EQ(u.missing, 0);
	uffd_close(&u);

	/* WP_ASYNC is granted here and brings WP_UNPOPULATED with it. */
	if (!(uffd_kernel_features() & UFFD_F(UFFD_FEAT_WP_ASYNC)))
		SKIP("kernel lacks WP_ASYNC (Linux < 6.7)");
	CHECK_OK(uffd_open(&u, UFFD_F(UFFD_FEAT_WP_ASYNC), 0, UFFD_NONBLOCK));
	CHECK(u.fd >= 0);
	CHECK(u.features & UFFD_F(UFFD_FEAT_WP_ASYNC));
	CHECK(u.features & UFFD_F(UFFD_FEAT_WP_UNPOPULATED));
	CHECK_EQ(u.missing, 0);
	uffd_close(&u);
	return T_EXIT_PASS;
}
