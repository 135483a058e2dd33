/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holes cost nothing.  A base image of one 4 GiB region holding a single
 * page (a file of a few KiB) restores without touching the holes:
 *  - eager (UFFD_RESTORE_ANYWHERE): exactly one page of the region is
 *    resident afterwards (mincore), the data page is right, a hole reads
 *    zero; stats: pages = 1 Mi, zero = all but one, done;
 *  - lazy: the same once uffd_restore_wait() returns (the prefetch fills
 *    the one recorded page; the holes are not filled with zero pages),
 *    and a hole touched afterwards reads zero;
 *  - the uffd tool (eager and lazy) restores it with a peak RSS far below
 *    the region's size (under 256 MiB of 4 GiB).
 * And the size limit: regions adding up to UFFD_IMAGE_MAX_BYTES are
 * written and read; one byte-page more is refused by uffd_image_create()
 * (EINVAL) and, in a file edited to say so, by uffd_image_open() (EBADMSG
 * at the offending region's entry).
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "util/crc32c.h"

#define REGION_LEN	(4ULL << 30)
#define NPAGES		(REGION_LEN / PAGE)
#define DATA_PAGE	123457ULL
#define SEED		9
#define RSS_LIMIT_KB	(256 * 1024)

static void write_sparse(const char *path)
{
	struct uffd_image_region reg = { 0x7e0000000000ULL, REGION_LEN, PAGE, UFFD_IMAGE_ANON };
	struct uffd_image_writer *w = uffd_image_create(path, &reg, 1, NULL, 0);
	uint8_t data[PAGE];

	if (!w)
		FAIL("create: %s", strerror(errno));
	t_fill(data, PAGE, SEED);
	CHECK_OK(uffd_image_put_page(w, 0, DATA_PAGE, data));
	CHECK_OK(uffd_image_commit(w));
}

/* Pages of [mem, mem + len) that are mapped in (mincore). */
static uint64_t resident(const char *mem, uint64_t len)
{
	unsigned char *vec = malloc(len / PAGE);
	uint64_t i, n = 0;

	CHECK(vec);
	CHECK_OK(mincore((void *)mem, len, vec) ? -errno : 0);
	for (i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

static void restore(const char *path, unsigned flags, const char *what)
{
	struct uffd_restore_stats st;
	struct uffd_restore *r = uffd_restore_open(path, UFFD_RESTORE_ANYWHERE | flags);
	const char *mem;
	uint64_t n;

	if (!r)
		FAIL("%s restore: %s", what, strerror(errno));
	CHECK_OK(uffd_restore_wait(r, 10000));
	mem = uffd_restore_addr(r, 0);
	n = resident(mem, REGION_LEN);
	if (n != 1)
		FAIL("%s: %" PRIu64 " pages resident after the restore, want 1", what, n);
	CHECK(t_is_filled(mem + DATA_PAGE * PAGE, PAGE, SEED));
	CHECK_OK(uffd_restore_stats(r, &st));
	CHECK(st.done);
	CHECK_EQ(st.pages, NPAGES);
	CHECK_EQ(st.zero, NPAGES - 1);
	CHECK_EQ(st.faulted, 0);
	CHECK_EQ(st.prefetched, flags & UFFD_RESTORE_LAZY ? 1 : 0);
	/* a hole, touched now: zeros (an ordinary fault once lazy is done) */
	CHECK(t_is_zero(mem + 7 * PAGE, PAGE));
	CHECK(t_is_zero(mem + REGION_LEN - PAGE, PAGE));
	uffd_restore_close(r, true);
}

/* The peak RSS of `uffd restore --anywhere [--lazy] path`, in KiB. */
static long tool_peak_rss_kb(const char *path, bool lazy)
{
	const char *build = getenv("BUILD");
	char tool[512];
	struct rusage ru;
	int status;
	pid_t pid;

	if (!build)
		build = "build";
	snprintf(tool, sizeof(tool), "%s/uffd", build);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		if (lazy)
			execl(tool, tool, "restore", "--anywhere", "--lazy", path, (char *)NULL);
		else
			execl(tool, tool, "restore", "--anywhere", path, (char *)NULL);
		_exit(127);
	}
	CHECK_EQ(wait4(pid, &status, 0, &ru), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("%s restore %s: status 0x%x", tool, lazy ? "--lazy" : "", status);
	return ru.ru_maxrss;
}

/* Two regions of 2 MiB pages adding up to the limit (plus extra). */
static int create_at_limit(const char *path, uint64_t extra)
{
	struct uffd_image_region reg[2] = {
		{ 0x200000000000ULL, UFFD_IMAGE_MAX_BYTES / 2, HPAGE, UFFD_IMAGE_ANON },
		{ 0x400000000000ULL, UFFD_IMAGE_MAX_BYTES / 2 + extra, HPAGE, UFFD_IMAGE_ANON },
	};
	struct uffd_image_writer *w = uffd_image_create(path, reg, 2, NULL, 0);

	if (!w)
		return -errno;
	CHECK_OK(uffd_image_put_page(w, 1, 3, NULL));
	return uffd_image_commit(w);
}

static void limit(const char *dir)
{
	const char *path = t_img_path(2, dir, "limit.img");
	struct uffd_image *img;
	uint64_t size, bad = 0;
	uint8_t *f;

	CHECK_EQ(create_at_limit(path, HPAGE), -EINVAL);
	CHECK_OK(create_at_limit(path, 0));
	img = uffd_image_open(path, &bad);
	CHECK(img);
	uffd_image_close(img);

	/* region 1 one page longer, its table CRC redone: the file lies */
	f = t_read_file(path, &size);
	t_put_le(f + T_IMG_REGIONS_OFF + 32 + 8, UFFD_IMAGE_MAX_BYTES / 2 + HPAGE, 8);
	t_put_le(f + T_IMG_REGIONS_OFF + 64, crc32c(0, f + T_IMG_REGIONS_OFF, 64), 4);
	t_write_file(path, f, size);
	free(f);
	CHECK(!uffd_image_open(path, &bad));
	CHECK_EQ(errno, EBADMSG);
	CHECK_EQ(bad, T_IMG_REGIONS_OFF + 32);
}

int main(void)
{
	const char *dir = t_img_dir();
	const char *path = t_img_path(0, dir, "sparse.img");
	long kb;

	write_sparse(path);
	CHECK(t_file_size(path) < 3 * PAGE);
	restore(path, 0, "eager");
	restore(path, UFFD_RESTORE_LAZY, "lazy");
	kb = tool_peak_rss_kb(path, false);
	if (kb >= RSS_LIMIT_KB)
		FAIL("uffd restore (eager): peak RSS %ld KiB for a one-page image", kb);
	kb = tool_peak_rss_kb(path, true);
	if (kb >= RSS_LIMIT_KB)
		FAIL("uffd restore --lazy: peak RSS %ld KiB for a one-page image", kb);
	limit(dir);
	return T_EXIT_PASS;
}
