/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Registration and the resolve ioctls.
 *
 * The kernel's fill ioctls (COPY, ZEROPAGE, CONTINUE, MOVE, POISON) share
 * one contract: a count field receives the bytes done or -errno; when only
 * part of the range was done the ioctl fails with EAGAIN, whatever stopped
 * it.  So each op is described by one small "issue" function that performs
 * a single ioctl, and one loop (fill_range) gives them all the same
 * behaviour: validate, issue, and on partial progress issue again for the
 * remainder, so the caller learns the real reason (EEXIST on a populated
 * page, ENOENT on an unmapped one) together with the bytes done.
 */
#include <errno.h>
#include <sys/ioctl.h>

#include "abi/userfaultfd.h"
#include "internal.h"

/* The count field is untouched when the kernel fails before filling it. */
#define COUNT_UNSET INT64_MIN

struct fill_op {
	unsigned long request;
	bool moves_src;		/* src advances with dst (COPY, MOVE) */
	bool src_aligned;	/* src must be page-aligned (MOVE; COPY reads
				   its source with copy_from_user: any address) */
	bool src_here;		/* src is in this process (COPY), not in the
				   userfaultfd's address space (MOVE) */
};

/*
 * A source that overlaps its own destination is refused before the ioctl.
 * For COPY the destination is registered and still missing there, so the
 * kernel's read of the source would fault on the same userfaultfd, in the
 * thread that was to resolve it, which would then wait for ever.  MOVE
 * follows the same rule: a range is not moved onto itself.
 *
 * COPY's source is in this process, its destination in the userfaultfd's
 * address space: the same numbers overlap only when that is this process,
 * i.e. when the fd was opened here.  An adopted fd (a forked child's, or
 * another process's handed over, as a page server gets its clients') has
 * the destination elsewhere, and a buffer here at the same address is no
 * overlap at all.
 */
static bool overlaps(const struct uffd *u, const struct fill_op *op, uint64_t dst,
		     uint64_t src, uint64_t len)
{
	if (op->src_here && !(u->how & (UFFD_OPENED_DEV | UFFD_OPENED_SYSCALL)))
		return false;
	return src < dst + len && dst < src + len;
}

/* One ioctl; returns bytes done (> 0), 0 on nothing done, or -errno. */
static int64_t issue(const struct fill_op *op, int fd, void *arg, __s64 *count)
{
	int ret;

	*count = COUNT_UNSET;
	ret = ioctl(fd, op->request, arg);
	if (ret == 0)
		return INT64_MAX;	/* whole range: caller knows the length */
	if (*count == COUNT_UNSET)
		return -errno;
	return *count;
}

/*
 * Perform one fill op over [dst, dst+len) (and [src, ...) if it moves).
 * fill() sets up the op's argument struct and returns where its count is.
 */
typedef __s64 *(*fill_setup)(void *arg, uint64_t dst, uint64_t src,
			       uint64_t len, uint64_t mode);

static int fill_range(struct uffd *u, const struct fill_op *op, fill_setup setup,
		      void *arg, uint64_t dst, uint64_t src, uint64_t len,
		      uint64_t mode, unsigned flags, size_t *done)
{
	uint64_t total = 0;
	int ret;

	if (done)
		*done = 0;
	if (!u)
		return -EINVAL;
	ret = check_range(dst, len);
	if (!ret && op->src_aligned)
		ret = check_range(src, len);
	if (!ret && op->moves_src && (src + len < src || overlaps(u, op, dst, src, len)))
		ret = -EINVAL;
	if (ret)
		return ret;
	for (;;) {
		__s64 *count = setup(arg, dst + total,
				       op->moves_src ? src + total : src,
				       len - total, mode);
		int64_t got = issue(op, u->fd, arg, count);

		if (got == INT64_MAX) {
			total = len;
			ret = 0;
			break;
		}
		if (got <= 0) {
			ret = got ? (int)got : -EAGAIN;
			break;
		}
		total += (uint64_t)got;
		if (total >= len) {	/* EAGAIN with everything done */
			total = len;
			ret = 0;
			break;
		}
		if (flags & UFFD_ONESHOT) {
			ret = -EAGAIN;
			break;
		}
	}
	if (done)
		*done = total;
	return ret;
}

static __s64 *setup_copy(void *arg, uint64_t dst, uint64_t src, uint64_t len,
			   uint64_t mode)
{
	struct uffdio_copy *c = arg;

	*c = (struct uffdio_copy){ .dst = dst, .src = src, .len = len, .mode = mode };
	return &c->copy;
}

int uffd_copy(struct uffd *u, void *dst, const void *src, size_t len,
	      unsigned flags, size_t *done)
{
	static const struct fill_op op = { UFFDIO_COPY, true, false, true };
	struct uffdio_copy arg;
	uint64_t mode = 0;

	if (flags & UFFD_DONTWAKE)
		mode |= UFFDIO_COPY_MODE_DONTWAKE;
	if (flags & UFFD_MAP_WP)
		mode |= UFFDIO_COPY_MODE_WP;
	return fill_range(u, &op, setup_copy, &arg, (uintptr_t)dst,
			  (uintptr_t)src, len, mode, flags, done);
}

static __s64 *setup_zeropage(void *arg, uint64_t dst, uint64_t src,
			       uint64_t len, uint64_t mode)
{
	struct uffdio_zeropage *z = arg;

	(void)src;
	*z = (struct uffdio_zeropage){ .range = { dst, len }, .mode = mode };
	return &z->zeropage;
}

int uffd_zeropage(struct uffd *u, void *dst, size_t len, unsigned flags,
		  size_t *done)
{
	static const struct fill_op op = { UFFDIO_ZEROPAGE, false, false, false };
	struct uffdio_zeropage arg;
	uint64_t mode = (flags & UFFD_DONTWAKE) ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0;

	return fill_range(u, &op, setup_zeropage, &arg, (uintptr_t)dst, 0, len,
			  mode, flags, done);
}

static __s64 *setup_continue(void *arg, uint64_t dst, uint64_t src,
			       uint64_t len, uint64_t mode)
{
	struct uffdio_continue *c = arg;

	(void)src;
	*c = (struct uffdio_continue){ .range = { dst, len }, .mode = mode };
	return &c->mapped;
}

int uffd_continue(struct uffd *u, void *dst, size_t len, unsigned flags,
		  size_t *done)
{
	static const struct fill_op op = { UFFDIO_CONTINUE, false, false, false };
	struct uffdio_continue arg;
	uint64_t mode = 0;

	if (flags & UFFD_DONTWAKE)
		mode |= UFFDIO_CONTINUE_MODE_DONTWAKE;
	if (flags & UFFD_MAP_WP)
		mode |= UFFDIO_CONTINUE_MODE_WP;
	return fill_range(u, &op, setup_continue, &arg, (uintptr_t)dst, 0, len,
			  mode, flags, done);
}

static __s64 *setup_move(void *arg, uint64_t dst, uint64_t src, uint64_t len,
			   uint64_t mode)
{
	struct uffdio_move *m = arg;

	*m = (struct uffdio_move){ .dst = dst, .src = src, .len = len, .mode = mode };
	return &m->move;
}

int uffd_move(struct uffd *u, void *dst, void *src, size_t len,
	      unsigned flags, size_t *done)
{
	static const struct fill_op op = { UFFDIO_MOVE, true, true, false };
	struct uffdio_move arg;
	uint64_t mode = 0;

	if (flags & UFFD_DONTWAKE)
		mode |= UFFDIO_MOVE_MODE_DONTWAKE;
	if (flags & UFFD_ALLOW_SRC_HOLES)
		mode |= UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES;
	return fill_range(u, &op, setup_move, &arg, (uintptr_t)dst,
			  (uintptr_t)src, len, mode, flags, done);
}

static __s64 *setup_poison(void *arg, uint64_t dst, uint64_t src,
			     uint64_t len, uint64_t mode)
{
	struct uffdio_poison *p = arg;

	(void)src;
	*p = (struct uffdio_poison){ .range = { dst, len }, .mode = mode };
	return &p->updated;
}

int uffd_poison(struct uffd *u, void *dst, size_t len, unsigned flags,
		size_t *done)
{
	static const struct fill_op op = { UFFDIO_POISON, false, false, false };
	struct uffdio_poison arg;
	uint64_t mode = (flags & UFFD_DONTWAKE) ? UFFDIO_POISON_MODE_DONTWAKE : 0;

	return fill_range(u, &op, setup_poison, &arg, (uintptr_t)dst, 0, len,
			  mode, flags, done);
}

int uffd_writeprotect(struct uffd *u, void *addr, size_t len, bool protect,
		      unsigned flags)
{
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)addr, len },
		.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
			((flags & UFFD_DONTWAKE) ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
	};
	int ret = u ? check_range((uintptr_t)addr, len) : -EINVAL;

	if (ret)
		return ret;
	return ioctl(u->fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

int uffd_wake(struct uffd *u, void *addr, size_t len)
{
	struct uffdio_range range = { (uintptr_t)addr, len };
	int ret = u ? check_range((uintptr_t)addr, len) : -EINVAL;

	if (ret)
		return ret;
	return ioctl(u->fd, UFFDIO_WAKE, &range) ? -errno : 0;
}

int uffd_register(struct uffd *u, void *addr, size_t len, unsigned modes,
		  uint64_t *ioctls)
{
	struct uffdio_register reg = { .range = { (uintptr_t)addr, len } };
	int ret = u ? check_range((uintptr_t)addr, len) : -EINVAL;

	if (ioctls)
		*ioctls = 0;
	if (ret)
		return ret;
	if (!modes || (modes & ~(UFFD_REG_MISSING | UFFD_REG_WP | UFFD_REG_MINOR)))
		return -EINVAL;
	if (modes & UFFD_REG_MISSING)
		reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
	if (modes & UFFD_REG_WP)
		reg.mode |= UFFDIO_REGISTER_MODE_WP;
	if (modes & UFFD_REG_MINOR)
		reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
	if (ioctl(u->fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

int uffd_unregister(struct uffd *u, void *addr, size_t len)
{
	struct uffdio_range range = { (uintptr_t)addr, len };
	int ret = u ? check_range((uintptr_t)addr, len) : -EINVAL;

	if (ret)
		return ret;
	return ioctl(u->fd, UFFDIO_UNREGISTER, &range) ? -errno : 0;
}
