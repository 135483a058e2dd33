/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bad input is refused with an exact errno, never a crash or a partial
 * effect.  Every range call (register, unregister, copy, zeropage,
 * writeprotect, wake, continue, move, poison) given an unaligned address,
 * an unaligned length, a zero length, a range that wraps past 2^64 or one
 * beyond the address space returns -EINVAL, reports *done == 0 (and no
 * ioctls for register) and leaves the registered range untouched.  Then
 * what the kernel answers for ranges that are valid but wrong:
 *
 * Kernel behaviour libuffd relies on (6.18, exact errnos):
 *   COPY/ZEROPAGE/CONTINUE/POISON into a mapped but unregistered range, or
 *   into an unmapped one: -ENOENT.  MOVE there: -EINVAL.
 *   WRITEPROTECT on a range not registered for WP: -ENOENT.
 *   WAKE and UNREGISTER on an unregistered range: 0 (nothing to do);
 *   UNREGISTER where nothing is mapped: -EINVAL.
 *   REGISTER in MINOR mode on private anonymous memory: -EINVAL.
 * (REGISTER where nothing is mapped: see register-unmapped-enomem.c.)
 * And uffd_feature_supported()/uffd_feature_name() on values that are not
 * features: -EINVAL and NULL.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "lib/harness.h"

#define NPAGES 4
#define DONE_POISON 12345	/* done must be overwritten with 0 */

enum op {
	OP_REGISTER, OP_UNREGISTER, OP_COPY, OP_ZEROPAGE, OP_WRITEPROTECT,
	OP_WAKE, OP_CONTINUE, OP_MOVE_DST, OP_MOVE_SRC, OP_POISON, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"register", "unregister", "copy", "zeropage", "writeprotect", "wake",
	"continue", "move (dst)", "move (src)", "poison",
};

static struct uffd u;
static char *src;	/* a good source for copy and move */

/* Call op on [addr, addr+len); *done is what the call reported. */
static int call(enum op op, uint64_t addr, uint64_t len, size_t *done)
{
	void *p = (void *)(uintptr_t)addr;
	uint64_t ioctls = DONE_POISON;
	int ret;

	*done = DONE_POISON;
	switch (op) {
	case OP_REGISTER:
		ret = uffd_register(&u, p, len, UFFD_REG_MISSING, &ioctls);
		*done = ioctls;
		return ret;
	case OP_UNREGISTER:
		*done = 0;
		return uffd_unregister(&u, p, len);
	case OP_COPY:
		return uffd_copy(&u, p, src, len, 0, done);
	case OP_ZEROPAGE:
		return uffd_zeropage(&u, p, len, 0, done);
	case OP_WRITEPROTECT:
		*done = 0;
		return uffd_writeprotect(&u, p, len, true, 0);
	case OP_WAKE:
		*done = 0;
		return uffd_wake(&u, p, len);
	case OP_CONTINUE:
		return uffd_continue(&u, p, len, 0, done);
	case OP_MOVE_DST:
		return uffd_move(&u, p, src, len, 0, done);
	case OP_MOVE_SRC:	/* the bad range is the source */
		return uffd_move(&u, src, p, len, 0, done);
	case OP_POISON:
		return uffd_poison(&u, p, len, 0, done);
	default:
		FAIL("bad op %d", op);
	}
}

static void expect(enum op op, uint64_t addr, uint64_t len, int want,
		   const char *what)
{
	size_t done;
	int ret = call(op, addr, len, &done);

	if (ret != want || done != 0)
		FAIL("%s, %s (addr %#" PRIx64 " len %#" PRIx64
		     "): got %d (%s) done %zu, want %d (%s) done 0",
		     op_names[op], what, addr, len, ret, t_errname(ret), done,
		     want, t_errname(want));
}

int main(void)
{
	const uint64_t top = UINT64_MAX & ~(uint64_t)(PAGE - 1);
	struct uffd_event ev;
	struct t_access a;
	char *area, *plain, *hole, *shm;
	uint64_t base, ioctls;
	int op, fd;

	t_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |
		   UFFD_F(UFFD_FEAT_MINOR_SHMEM) | UFFD_F(UFFD_FEAT_MOVE) |
		   UFFD_F(UFFD_FEAT_POISON), 0);
	area = t_map_anon(NPAGES * PAGE);
	src = t_map_anon(NPAGES * PAGE);
	t_fill(src, NPAGES * PAGE, 1);
	CHECK_OK(uffd_register(&u, area, NPAGES * PAGE,
			       UFFD_REG_MISSING | UFFD_REG_WP, NULL));
	base = (uintptr_t)area;

	for (op = 0; op < OP_COUNT; op++) {
		expect(op, base + 1, PAGE, -EINVAL, "unaligned address");
		expect(op, base + PAGE - 8, PAGE, -EINVAL, "unaligned address");
		expect(op, base, PAGE + 1, -EINVAL, "unaligned length");
		expect(op, base, PAGE / 2, -EINVAL, "unaligned length");
		expect(op, base, 0, -EINVAL, "zero length");
		expect(op, base + 1, 0, -EINVAL, "zero length, unaligned");
		expect(op, top, 2 * PAGE, -EINVAL, "wraps");
		expect(op, top, PAGE, -EINVAL, "ends at 2^64");
		expect(op, base, top, -EINVAL, "wraps (huge length)");
		expect(op, base, 1ULL << 62, -EINVAL, "beyond the address space");
	}
	/* Register with no mode or an unknown mode bit. */
	ioctls = DONE_POISON;
	CHECK_EQ(uffd_register(&u, area, PAGE, 0, &ioctls), -EINVAL);
	CHECK_EQ(ioctls, 0);
	CHECK_EQ(uffd_register(&u, area, PAGE, 1u << 7, &ioctls), -EINVAL);
	CHECK_EQ(ioctls, 0);

	/* None of that touched the registered range: it still faults. */
	t_expect_no_event(&u, 0);
	t_access_start(&a, area + PAGE, false, 0);
	t_read_one(&u, &ev, 5000);
	CHECK_EQ(ev.fault.kind, UFFD_FAULT_MISSING);
	CHECK_EQ(ev.fault.addr, (uintptr_t)(area + PAGE));
	CHECK_OK(uffd_copy(&u, area + PAGE, src, PAGE, 0, NULL));
	CHECK(t_access_wait(&a, 5000));
	t_access_join(&a);
	CHECK(t_is_filled(area + PAGE, PAGE, 1));

	/* Mapped, not registered. */
	plain = t_map_anon(NPAGES * PAGE);
	base = (uintptr_t)plain;
	expect(OP_COPY, base, PAGE, -ENOENT, "not registered");
	expect(OP_ZEROPAGE, base, PAGE, -ENOENT, "not registered");
	expect(OP_CONTINUE, base, PAGE, -ENOENT, "not registered");
	expect(OP_POISON, base, PAGE, -ENOENT, "not registered");
	expect(OP_MOVE_DST, base, PAGE, -EINVAL, "not registered");
	expect(OP_WRITEPROTECT, base, PAGE, -ENOENT, "not registered");
	expect(OP_WAKE, base, PAGE, 0, "not registered");
	expect(OP_UNREGISTER, base, PAGE, 0, "not registered");
	CHECK(t_is_zero(plain, NPAGES * PAGE));

	/* Registered MISSING only: WRITEPROTECT is refused. */
	CHECK_OK(uffd_register(&u, plain, PAGE, UFFD_REG_MISSING, NULL));
	expect(OP_WRITEPROTECT, base, PAGE, -ENOENT, "registered MISSING only");
	CHECK_OK(uffd_unregister(&u, plain, PAGE));

	/* Nothing mapped: [hole + PAGE, hole + 3 * PAGE) of a hole. */
	hole = t_map_anon(4 * PAGE);
	CHECK_OK(munmap(hole + PAGE, 2 * PAGE));
	base = (uintptr_t)hole;
	expect(OP_UNREGISTER, base + PAGE, 2 * PAGE, -EINVAL, "nothing mapped");
	expect(OP_COPY, base + PAGE, PAGE, -ENOENT, "nothing mapped");
	expect(OP_ZEROPAGE, base + PAGE, PAGE, -ENOENT, "nothing mapped");

	/* MINOR needs a page cache: refused on private anonymous memory,
	 * accepted on shmem by the same userfaultfd. */
	ioctls = DONE_POISON;
	CHECK_EQ(uffd_register(&u, plain, PAGE, UFFD_REG_MINOR, &ioctls),
		 -EINVAL);
	CHECK_EQ(ioctls, 0);
	shm = t_map_memfd(PAGE, &fd);
	CHECK_OK(uffd_register(&u, shm, PAGE, UFFD_REG_MINOR, &ioctls));
	CHECK(ioctls & UFFD_IOCTL_CONTINUE);

	/* Not features. */
	CHECK_EQ(uffd_feature_supported((enum uffd_feature)999), -EINVAL);
	CHECK(uffd_feature_name((enum uffd_feature)999) == NULL);
	CHECK_EQ(uffd_feature_supported(UFFD_FEAT_KERNEL_BITS_END), -EINVAL);
	CHECK(uffd_feature_name(UFFD_FEAT_KERNEL_BITS_END) == NULL);
	CHECK_EQ(uffd_feature_supported(UFFD_FEAT_COUNT), -EINVAL);
	CHECK(uffd_feature_name(UFFD_FEAT_COUNT) == NULL);
	CHECK_EQ(uffd_feature_supported((enum uffd_feature)-1), -EINVAL);
	CHECK(uffd_feature_name((enum uffd_feature)-1) == NULL);
	CHECK(uffd_feature_name(UFFD_FEAT_MOVE) != NULL);
	CHECK_EQ(strcmp(uffd_feature_name(UFFD_FEAT_MOVE), "MOVE"), 0);

	t_expect_no_event(&u, 0);
	uffd_close(&u);
	close(fd);
	return T_EXIT_PASS;
}
