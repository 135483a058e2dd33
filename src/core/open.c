/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening a userfaultfd and negotiating its features.
 *
 * Two facts shape this file.  First, there are three ways in, with
 * different permission rules: /dev/userfaultfd is governed by the device's
 * file mode, userfaultfd(2) by CAP_SYS_PTRACE or vm.unprivileged_userfaultfd,
 * and userfaultfd(UFFD_USER_MODE_ONLY) is open to everyone.  So we try them
 * in that order and record which one worked.  Second, UFFDIO_API succeeds
 * only once per fd, and a request for a feature the kernel lacks fails as a
 * whole with a bare EINVAL.  So the set the kernel offers is learned once on
 * a throwaway fd (the probe cache), the request is checked against it first,
 * and the caller gets -EOPNOTSUPP with the missing bits named, not EINVAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "internal.h"

#define DEFAULT_DEVICE "/dev/userfaultfd"
#define OPEN_FLAGS (UFFD_NONBLOCK | UFFD_USER_ONLY | UFFD_ALLOW_USER_ONLY | \
		    UFFD_VIA_DEV | UFFD_VIA_SYSCALL)

int core_open_dev(unsigned kernel_flags)
{
	const char *path = getenv("LIBUFFD_DEVICE");
	int dev, fd, err;

	if (!path || !*path)
		path = DEFAULT_DEVICE;
	dev = open(path, O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | kernel_flags);
	err = errno;
	close(dev);
	return fd < 0 ? -err : fd;
}

int core_open_syscall(unsigned kernel_flags)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | kernel_flags);

	return fd < 0 ? -errno : (int)fd;
}

int core_api(int fd, uint64_t features, uint64_t *granted, uint64_t *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (granted)
		*granted = api.features;
	if (ioctls)
		*ioctls = api.ioctls;
	return 0;
}

static bool refused(int err)
{
	return err == -EPERM || err == -EACCES;
}

/* Try the open paths in the documented order; fd or -errno. */
static int open_any(unsigned flags, unsigned *how)
{
	unsigned kflags = (flags & UFFD_NONBLOCK) ? O_NONBLOCK : 0;
	unsigned user_only = (flags & UFFD_USER_ONLY) ? UFFD_USER_MODE_ONLY : 0;
	int fd = -ENOSYS, first_err = 0;

	if (!(flags & UFFD_VIA_SYSCALL)) {
		fd = core_open_dev(kflags | user_only);
		if (fd >= 0) {
			*how = UFFD_OPENED_DEV | (user_only ? UFFD_OPENED_USER_ONLY : 0);
			return fd;
		}
		first_err = fd;
	}
	if (!(flags & UFFD_VIA_DEV)) {
		fd = core_open_syscall(kflags | user_only);
		if (fd >= 0) {
			*how = UFFD_OPENED_SYSCALL | (user_only ? UFFD_OPENED_USER_ONLY : 0);
			return fd;
		}
		/* The syscall's refusal says more than a missing device node. */
		if (first_err == 0 || first_err == -ENOENT || refused(fd))
			first_err = fd;
		if (!user_only && (flags & UFFD_ALLOW_USER_ONLY) && refused(fd)) {
			fd = core_open_syscall(kflags | UFFD_USER_MODE_ONLY);
			if (fd >= 0) {
				*how = UFFD_OPENED_SYSCALL | UFFD_OPENED_USER_ONLY;
				return fd;
			}
		}
	}
	return first_err ? first_err : fd;
}

int uffd_open(struct uffd *u, uint64_t required, uint64_t wanted, unsigned flags)
{
	uint64_t offered = uffd_kernel_features();
	uint64_t ask, granted = 0, ioctls = 0;
	unsigned how = 0;
	int fd, ret;

	if (!u)
		return -EINVAL;
	memset(u, 0, sizeof(*u));
	u->fd = -1;
	if ((flags & ~OPEN_FLAGS) ||
	    ((flags & UFFD_VIA_DEV) && (flags & UFFD_VIA_SYSCALL)))
		return -EINVAL;
	/* An offered set of 0 means the probe could not open one: try anyway. */
	if (offered && (required & ~offered)) {
		u->missing = required & ~offered;
		return -EOPNOTSUPP;
	}
	fd = open_any(flags, &how);
	if (fd < 0)
		return fd;
	/* The probe's throwaway fd failed (EMFILE, ...) but ours opened. */
	if (!offered) {
		offered = uffd_kernel_features();
		if (offered && (required & ~offered)) {
			u->missing = required & ~offered;
			close(fd);
			return -EOPNOTSUPP;
		}
	}

	ask = required | (offered ? (wanted & offered) : wanted);
	ret = core_api(fd, ask, &granted, &ioctls);
	/* EVENT_FORK needs CAP_SYS_PTRACE: drop it if it was only wanted.  A
	 * failed UFFDIO_API leaves the fd uninitialised, so it can be retried. */
	if (ret == -EPERM && (ask & UFFD_F(UFFD_FEAT_EVENT_FORK)) &&
	    !(required & UFFD_F(UFFD_FEAT_EVENT_FORK))) {
		ask &= ~UFFD_F(UFFD_FEAT_EVENT_FORK);
		ret = core_api(fd, ask, &granted, &ioctls);
	}
	if (ret == -EINVAL && !offered) {
		/* Still no probe result, and a refused UFFDIO_API leaves the fd
		 * as it was: drop the wanted bits, then blame the required. */
		if (ask != required)
			ret = core_api(fd, ask = required, &granted, &ioctls);
		if (ret == -EINVAL && required) {
			u->missing = required;
			ret = -EOPNOTSUPP;
		}
	}
	if (ret) {
		close(fd);
		return ret;
	}
	u->fd = fd;
	/* The kernel reports everything it offers; keep what this fd has.
	 * WP_ASYNC implies WP_UNPOPULATED (the kernel turns it on). */
	u->features = ask;
	if (ask & UFFD_F(UFFD_FEAT_WP_ASYNC))
		u->features |= UFFD_F(UFFD_FEAT_WP_UNPOPULATED);
	u->ioctls = ioctls;
	u->how = how | ((flags & UFFD_NONBLOCK) ? UFFD_OPENED_NONBLOCK : 0);
	return 0;
}

int uffd_adopt(struct uffd *u, int fd, uint64_t features)
{
	int fl;

	if (!u)
		return -EINVAL;
	memset(u, 0, sizeof(*u));
	u->fd = -1;
	if (fd < 0)
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	u->fd = fd;
	u->features = features;
	/* A FORK fd has had UFFDIO_API done by the kernel: the base ioctls. */
	u->ioctls = 1ULL << _UFFDIO_REGISTER | 1ULL << _UFFDIO_UNREGISTER |
		    1ULL << _UFFDIO_API;
	u->how = (fl & O_NONBLOCK) ? UFFD_OPENED_NONBLOCK : 0;
	return 0;
}

void uffd_close(struct uffd *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

char *uffd_describe_missing(uint64_t mask, char *buf, size_t size)
{
	size_t used = 0;
	int f;

	if (!buf || !size) {
		errno = EINVAL;
		return NULL;
	}
	buf[0] = '\0';
	for (f = 0; f < 64; f++) {
		const char *name;
		int n;

		if (!(mask & (1ULL << f)))
			continue;
		name = f < UFFD_FEAT_KERNEL_BITS_END ? uffd_feature_name(f) : NULL;
		if (name)
			n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", name);
		else
			n = snprintf(buf + used, size - used, "%sbit %d", used ? ", " : "", f);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += n;
	}
	return buf;
}
