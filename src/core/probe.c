/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Feature probes, libbpf style: a table with one tiny real operation per
 * feature, run on a throwaway userfaultfd or mapping the first time someone
 * asks, and cached.  Asking is cheap and thread-safe; two threads racing on
 * the first ask both probe and store the same answer.
 *
 * Probes prove by doing: a register mode is supported on a memory type when
 * UFFDIO_REGISTER on such a mapping succeeds; soft-dirty is supported when a
 * write after clear_refs really sets pagemap bit 55 (writing "4" to
 * clear_refs succeeds on kernels built without CONFIG_MEM_SOFT_DIRTY).
 * Hugetlb probes map with MAP_NORESERVE, so they need no reserved pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "abi/userfaultfd.h"
#include "internal.h"

#define HUGE_2M (2UL << 20)

/*
 * What a registration probe asks for: the bits that let each memory type
 * and mode register and that unlock MOVE and POISON.  Never an EVENT_* bit:
 * an event blocks the process (munmap of the probe mapping!) until someone
 * reads it, and a probe has no reader.
 */
#define REGISTER_FEATURES						\
	(UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP) |				\
	 UFFD_F(UFFD_FEAT_MISSING_SHMEM) | UFFD_F(UFFD_FEAT_MISSING_HUGETLBFS) | \
	 UFFD_F(UFFD_FEAT_MINOR_SHMEM) | UFFD_F(UFFD_FEAT_MINOR_HUGETLBFS) | \
	 UFFD_F(UFFD_FEAT_WP_HUGETLBFS_SHMEM) | UFFD_F(UFFD_FEAT_MOVE) |	\
	 UFFD_F(UFFD_FEAT_POISON))

enum mem_type { MEM_ANON, MEM_SHMEM, MEM_HUGETLB };

struct probe {
	const char *name;
	int (*run)(enum uffd_feature f);
};

static int probed[UFFD_FEAT_COUNT];
static int result[UFFD_FEAT_COUNT];
static int kernel_probed;
static uint64_t kernel_offered;

/* Open by whatever path this process is allowed; fd or -errno. */
static int open_throwaway(void)
{
	int fd = core_open_dev(0);

	if (fd >= 0)
		return fd;
	fd = core_open_syscall(0);
	if (fd >= 0)
		return fd;
	return core_open_syscall(UFFD_USER_MODE_ONLY);
}

/* Features reported absent whatever the kernel offers (tests). */
static uint64_t hidden_features;

void uffd__hide_features(uint64_t mask)
{
	__atomic_store_n(&hidden_features, mask, __ATOMIC_RELAXED);
}

uint64_t uffd_kernel_features(void)
{
	uint64_t offered = 0, hidden = __atomic_load_n(&hidden_features, __ATOMIC_RELAXED);
	int fd;

	if (__atomic_load_n(&kernel_probed, __ATOMIC_ACQUIRE))
		return __atomic_load_n(&kernel_offered, __ATOMIC_RELAXED) & ~hidden;
	fd = open_throwaway();
	if (fd >= 0) {
		if (core_api(fd, 0, &offered, NULL))
			offered = 0;
		close(fd);
	} else if (fd != -EPERM && fd != -EACCES && fd != -ENOSYS) {
		return 0;	/* EMFILE, ENOMEM...: ask again next time */
	}
	__atomic_store_n(&kernel_offered, offered, __ATOMIC_RELAXED);
	__atomic_store_n(&kernel_probed, 1, __ATOMIC_RELEASE);
	return offered & ~hidden;
}

static int probe_kernel_bit(enum uffd_feature f)
{
	int fd = open_throwaway();

	if (fd < 0)
		return fd;
	close(fd);
	return !!(uffd_kernel_features() & UFFD_F(f));
}

static int opened(int fd)
{
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	/* Refused, absent or not implemented: "no".  Anything else: unknown. */
	if (fd == -EPERM || fd == -EACCES || fd == -ENOENT || fd == -ENOSYS ||
	    fd == -EINVAL || fd == -ENOTTY || fd == -ENXIO || fd == -ENODEV)
		return 0;
	return fd;
}

static int probe_open(enum uffd_feature f)
{
	switch (f) {
	case UFFD_FEAT_SYSCALL:
		return opened(core_open_syscall(0));
	case UFFD_FEAT_USER_MODE_ONLY:
		return opened(core_open_syscall(UFFD_USER_MODE_ONLY));
	default:
		return opened(core_open_dev(0));
	}
}

static void *map_memory(enum mem_type type, size_t len)
{
	void *p;
	int fd;

	switch (type) {
	case MEM_ANON:
		return mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	case MEM_HUGETLB:
		return mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE,
			    -1, 0);
	default:
		fd = memfd_create("libuffd-probe", MFD_CLOEXEC);
		if (fd < 0)
			return MAP_FAILED;
		if (ftruncate(fd, len)) {
			close(fd);
			return MAP_FAILED;
		}
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		return p;
	}
}

/*
 * Register a fresh mapping of the type in the mode; 1/0/-errno, and the
 * ioctls the kernel allows there.
 */
static int try_register(enum mem_type type, unsigned mode, uint64_t *ioctls)
{
	size_t len = type == MEM_HUGETLB ? HUGE_2M : UFFD_BASE_PAGE;
	struct uffd u;
	void *p;
	int ret;

	*ioctls = 0;
	ret = uffd_open(&u, 0, REGISTER_FEATURES, UFFD_ALLOW_USER_ONLY);
	if (ret)
		return ret;
	p = map_memory(type, len);
	if (p == MAP_FAILED) {
		ret = -errno;
		goto out_close;
	}
	ret = uffd_register(&u, p, len, mode, ioctls);
	munmap(p, len);
	ret = ret == 0 ? 1 : ret == -EINVAL ? 0 : ret;
out_close:
	uffd_close(&u);
	return ret;
}

static int probe_register(enum uffd_feature f)
{
	static const struct { enum mem_type type; unsigned mode; } what[] = {
		[UFFD_FEAT_REG_MISSING_ANON - UFFD_FEAT_REG_MISSING_ANON] = { MEM_ANON, UFFD_REG_MISSING },
		[UFFD_FEAT_REG_WP_ANON - UFFD_FEAT_REG_MISSING_ANON] = { MEM_ANON, UFFD_REG_WP },
		[UFFD_FEAT_REG_MINOR_ANON - UFFD_FEAT_REG_MISSING_ANON] = { MEM_ANON, UFFD_REG_MINOR },
		[UFFD_FEAT_REG_MISSING_SHMEM - UFFD_FEAT_REG_MISSING_ANON] = { MEM_SHMEM, UFFD_REG_MISSING },
		[UFFD_FEAT_REG_WP_SHMEM - UFFD_FEAT_REG_MISSING_ANON] = { MEM_SHMEM, UFFD_REG_WP },
		[UFFD_FEAT_REG_MINOR_SHMEM - UFFD_FEAT_REG_MISSING_ANON] = { MEM_SHMEM, UFFD_REG_MINOR },
		[UFFD_FEAT_REG_MISSING_HUGETLB - UFFD_FEAT_REG_MISSING_ANON] = { MEM_HUGETLB, UFFD_REG_MISSING },
		[UFFD_FEAT_REG_WP_HUGETLB - UFFD_FEAT_REG_MISSING_ANON] = { MEM_HUGETLB, UFFD_REG_WP },
		[UFFD_FEAT_REG_MINOR_HUGETLB - UFFD_FEAT_REG_MISSING_ANON] = { MEM_HUGETLB, UFFD_REG_MINOR },
	};
	uint64_t ioctls;
	int i = f - UFFD_FEAT_REG_MISSING_ANON;

	return try_register(what[i].type, what[i].mode, &ioctls);
}

/*
 * A resolve ioctl is supported when the kernel lists it for a range where
 * it applies: anonymous MISSING|WP for most, shmem MINOR for CONTINUE.
 */
static int probe_ioctl(enum uffd_feature f)
{
	uint64_t ioctls, bit;
	enum mem_type type = MEM_ANON;
	unsigned mode = UFFD_REG_MISSING | UFFD_REG_WP;
	int ret;

	switch (f) {
	case UFFD_FEAT_IOCTL_COPY:		bit = UFFD_IOCTL_COPY; break;
	case UFFD_FEAT_IOCTL_ZEROPAGE:		bit = UFFD_IOCTL_ZEROPAGE; break;
	case UFFD_FEAT_IOCTL_WAKE:		bit = UFFD_IOCTL_WAKE; break;
	case UFFD_FEAT_IOCTL_WRITEPROTECT:	bit = UFFD_IOCTL_WRITEPROTECT; break;
	case UFFD_FEAT_IOCTL_MOVE:		bit = UFFD_IOCTL_MOVE; break;
	case UFFD_FEAT_IOCTL_POISON:		bit = UFFD_IOCTL_POISON; break;
	default:
		bit = UFFD_IOCTL_CONTINUE;
		type = MEM_SHMEM;
		mode = UFFD_REG_MINOR;
		break;
	}
	ret = try_register(type, mode, &ioctls);
	if (ret <= 0)
		return ret;
	return !!(ioctls & bit);
}

static int probe_pagemap_scan(enum uffd_feature f)
{
	struct uffd_range r;
	struct uffd_scan s = { .len = UFFD_BASE_PAGE,
			       .category_anyof_mask = UFFD_PAGE_PRESENT,
			       .return_mask = UFFD_PAGE_PRESENT };
	int fd, ret;

	(void)f;
	fd = uffd_pagemap_open(0);
	if (fd < 0)
		return fd == -ENOENT || fd == -EACCES ? 0 : fd;
	s.addr = map_memory(MEM_ANON, UFFD_BASE_PAGE);
	if (s.addr == MAP_FAILED) {
		ret = -errno;
		goto out_close;
	}
	*(volatile char *)s.addr = 1;
	ret = uffd_pagemap_scan(fd, &s, &r, 1);
	munmap(s.addr, UFFD_BASE_PAGE);
	if (ret == 1)
		ret = 1;
	else if (ret == -ENOTTY || ret == -EINVAL || ret >= 0)
		ret = 0;
out_close:
	close(fd);
	return ret;
}

/*
 * In a child, because clear_refs resets soft-dirty for the whole process:
 * a parent that uses soft-dirty itself must not lose its bits to a probe.
 */
static int soft_dirty_child(void)
{
	uint64_t entry;
	volatile char *p;
	int fd;

	p = map_memory(MEM_ANON, UFFD_BASE_PAGE);
	if (p == MAP_FAILED)
		return 2;
	p[0] = 1;
	fd = open("/proc/self/clear_refs", O_WRONLY);
	if (fd < 0 || write(fd, "4", 1) != 1)
		return 2;
	close(fd);
	p[0] = 2;
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return 2;
	if (pread(fd, &entry, sizeof(entry),
		  (uintptr_t)p / UFFD_BASE_PAGE * sizeof(entry)) != sizeof(entry))
		return 2;
	return (entry & PM_ENTRY_SOFT_DIRTY) ? 0 : 1;
}

static int probe_soft_dirty(enum uffd_feature f)
{
	int status;
	pid_t pid;

	(void)f;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(soft_dirty_child());
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 2)
		return -EIO;
	return WEXITSTATUS(status) == 0;
}

#define KBIT(x) [UFFD_FEAT_##x] = { #x, probe_kernel_bit }
static const struct probe probes[UFFD_FEAT_COUNT] = {
	KBIT(PAGEFAULT_FLAG_WP), KBIT(EVENT_FORK), KBIT(EVENT_REMAP),
	KBIT(EVENT_REMOVE), KBIT(MISSING_HUGETLBFS), KBIT(MISSING_SHMEM),
	KBIT(EVENT_UNMAP), KBIT(SIGBUS), KBIT(THREAD_ID),
	KBIT(MINOR_HUGETLBFS), KBIT(MINOR_SHMEM), KBIT(EXACT_ADDRESS),
	KBIT(WP_HUGETLBFS_SHMEM), KBIT(WP_UNPOPULATED), KBIT(POISON),
	KBIT(WP_ASYNC), KBIT(MOVE),
	[UFFD_FEAT_SYSCALL] = { "SYSCALL", probe_open },
	[UFFD_FEAT_USER_MODE_ONLY] = { "USER_MODE_ONLY", probe_open },
	[UFFD_FEAT_DEV_USERFAULTFD] = { "DEV_USERFAULTFD", probe_open },
	[UFFD_FEAT_REG_MISSING_ANON] = { "REG_MISSING_ANON", probe_register },
	[UFFD_FEAT_REG_WP_ANON] = { "REG_WP_ANON", probe_register },
	[UFFD_FEAT_REG_MINOR_ANON] = { "REG_MINOR_ANON", probe_register },
	[UFFD_FEAT_REG_MISSING_SHMEM] = { "REG_MISSING_SHMEM", probe_register },
	[UFFD_FEAT_REG_WP_SHMEM] = { "REG_WP_SHMEM", probe_register },
	[UFFD_FEAT_REG_MINOR_SHMEM] = { "REG_MINOR_SHMEM", probe_register },
	[UFFD_FEAT_REG_MISSING_HUGETLB] = { "REG_MISSING_HUGETLB", probe_register },
	[UFFD_FEAT_REG_WP_HUGETLB] = { "REG_WP_HUGETLB", probe_register },
	[UFFD_FEAT_REG_MINOR_HUGETLB] = { "REG_MINOR_HUGETLB", probe_register },
	[UFFD_FEAT_IOCTL_COPY] = { "IOCTL_COPY", probe_ioctl },
	[UFFD_FEAT_IOCTL_ZEROPAGE] = { "IOCTL_ZEROPAGE", probe_ioctl },
	[UFFD_FEAT_IOCTL_WAKE] = { "IOCTL_WAKE", probe_ioctl },
	[UFFD_FEAT_IOCTL_WRITEPROTECT] = { "IOCTL_WRITEPROTECT", probe_ioctl },
	[UFFD_FEAT_IOCTL_CONTINUE] = { "IOCTL_CONTINUE", probe_ioctl },
	[UFFD_FEAT_IOCTL_MOVE] = { "IOCTL_MOVE", probe_ioctl },
	[UFFD_FEAT_IOCTL_POISON] = { "IOCTL_POISON", probe_ioctl },
	[UFFD_FEAT_PAGEMAP_SCAN] = { "PAGEMAP_SCAN", probe_pagemap_scan },
	[UFFD_FEAT_SOFT_DIRTY] = { "SOFT_DIRTY", probe_soft_dirty },
};

const char *uffd_feature_name(enum uffd_feature f)
{
	if ((unsigned)f >= UFFD_FEAT_COUNT || !probes[f].name) {
		errno = EINVAL;
		return NULL;
	}
	return probes[f].name;
}

int uffd_feature_supported(enum uffd_feature f)
{
	int ret;

	if ((unsigned)f >= UFFD_FEAT_COUNT || !probes[f].run)
		return -EINVAL;
	if (__atomic_load_n(&probed[f], __ATOMIC_ACQUIRE))
		return __atomic_load_n(&result[f], __ATOMIC_RELAXED);
	ret = probes[f].run(f);
	__atomic_store_n(&result[f], ret, __ATOMIC_RELAXED);
	__atomic_store_n(&probed[f], 1, __ATOMIC_RELEASE);
	return ret;
}

void uffd_probe_reset(void)
{
	int f;

	for (f = 0; f < UFFD_FEAT_COUNT; f++)
		__atomic_store_n(&probed[f], 0, __ATOMIC_RELEASE);
	__atomic_store_n(&kernel_probed, 0, __ATOMIC_RELEASE);
}

size_t uffd_page_size(void)
{
	static size_t cached;
	size_t size = __atomic_load_n(&cached, __ATOMIC_RELAXED);

	if (!size) {
		size = (size_t)sysconf(_SC_PAGESIZE);
		__atomic_store_n(&cached, size, __ATOMIC_RELAXED);
	}
	return size;
}
