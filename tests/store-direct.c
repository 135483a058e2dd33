/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UFFD_STORE_DIRECT: the store really opens the file with O_DIRECT (an fd
 * of this process has the flag, and an aligned read leaves the pages out
 * of the page cache), yet any I/O - unaligned offset, length or buffer, or
 * one across the unaligned end of the file - gives exactly the bytes a
 * buffered store gives, and writes of every alignment land where a
 * buffered reader finds them.  A caller's fd opened with O_DIRECT works
 * for unaligned I/O too.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/pager.h>

#include "lib/image-files.h"

#define FILE_LEN (16 * PAGE + 1000)	/* the end is not aligned */
#define BIG (16 * PAGE)

static char model[32 * PAGE];

/* fds of this process open on path: how many with O_DIRECT, how many without. */
static void count_fds(const char *path, int *direct, int *buffered)
{
	char link[512], target[512], info[512];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	unsigned long flags;
	ssize_t n;
	FILE *f;

	CHECK(dir);
	*direct = *buffered = 0;
	while ((d = readdir(dir))) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", d->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		if (strcmp(target, path))
			continue;
		snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", d->d_name);
		f = fopen(info, "r");
		CHECK(f);
		CHECK(fscanf(f, "pos: %*u flags: %lo", &flags) == 1);
		fclose(f);
		if (flags & O_DIRECT)
			(*direct)++;
		else
			(*buffered)++;
	}
	closedir(dir);
}

/* Pages of [off, off+len) of the file in the page cache. */
static int cached_pages(int fd, uint64_t off, size_t len)
{
	unsigned char vec[64];
	void *map;
	int i, n = 0;

	CHECK(len / PAGE <= sizeof(vec));
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off);
	CHECK(map != MAP_FAILED);
	CHECK_OK(mincore(map, len, vec));
	for (i = 0; i < (int)(len / PAGE); i++)
		n += vec[i] & 1;
	munmap(map, len);
	return n;
}

struct io_case {
	uint64_t off;
	size_t len;
	int misalign;		/* of the buffer */
	ssize_t want;
};

static const struct io_case reads[] = {
	{ 0, PAGE, 0, PAGE },				/* direct */
	{ PAGE, 2 * PAGE, 0, 2 * PAGE },		/* direct */
	{ 1, PAGE - 1, 0, PAGE - 1 },
	{ 100, 5000, 3, 5000 },
	{ PAGE, PAGE, 1, PAGE },			/* aligned, buffer not */
	{ 512, 512, 0, 512 },				/* sector, not page */
	{ 15 * PAGE, 2 * PAGE, 0, PAGE + 1000 },	/* across the end */
	{ 16 * PAGE, PAGE, 0, 1000 },			/* the tail block */
	{ 16 * PAGE + 999, 10, 7, 1 },
	{ FILE_LEN, 10, 0, 0 },
	{ 20 * PAGE, PAGE, 0, 0 },			/* past the end */
	{ 0, FILE_LEN, 0, FILE_LEN },
	{ 3, FILE_LEN, 5, FILE_LEN - 3 },
};

static void same_bytes(struct uffd_store *direct, struct uffd_store *buffered)
{
	static char a[20 * PAGE] __attribute__((aligned(4096)));
	static char b[20 * PAGE] __attribute__((aligned(4096)));
	const struct io_case *c;
	size_t i;

	for (i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		c = &reads[i];
		memset(a, 0xee, sizeof(a));
		memset(b, 0xdd, sizeof(b));
		CHECK_EQ(direct->ops->read(direct->data, a + c->misalign, c->len, c->off),
			 c->want);
		CHECK_EQ(buffered->ops->read(buffered->data, b + c->misalign, c->len, c->off),
			 c->want);
		if (c->want && memcmp(a + c->misalign, model + c->off, c->want))
			FAIL("read %zu (off %" PRIu64 " len %zu): wrong bytes", i, c->off, c->len);
		CHECK(!memcmp(a + c->misalign, b + c->misalign, c->want));
	}
}

static const struct io_case writes[] = {
	{ PAGE, PAGE, 0, PAGE },			/* direct */
	{ 10, 100, 0, 100 },
	{ 8000, 9000, 3, 9000 },
	{ 4 * PAGE, 2 * PAGE, 1, 2 * PAGE },		/* aligned, buffer not */
	{ 16 * PAGE + 500, 600, 0, 600 },		/* grows the file */
	{ 18 * PAGE, 2 * PAGE, 0, 2 * PAGE },		/* direct, grows it */
};

static void writes_land(struct uffd_store *direct, const char *path)
{
	static char a[4 * PAGE] __attribute__((aligned(4096)));
	const struct io_case *c;
	uint64_t size;
	uint8_t *file;
	size_t i;

	for (i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		c = &writes[i];
		t_fill(a + c->misalign, c->len, 100 + i);
		memcpy(model + c->off, a + c->misalign, c->len);
		CHECK_EQ(direct->ops->write(direct->data, a + c->misalign, c->len, c->off),
			 c->want);
	}
	CHECK_EQ(direct->ops->size(direct->data), 20 * PAGE);
	CHECK_OK(direct->ops->flush(direct->data));

	file = t_read_file(path, &size);
	CHECK_EQ(size, 20 * PAGE);
	CHECK(!memcmp(file, model, size));
	free(file);

	/* And the direct store reads back what went through either fd. */
	CHECK_EQ(direct->ops->read(direct->data, a, 4 * PAGE, 0), 4 * PAGE);
	CHECK(!memcmp(a, model, 4 * PAGE));
	CHECK_EQ(direct->ops->read(direct->data, a, 4 * PAGE, 16 * PAGE), 4 * PAGE);
	CHECK(!memcmp(a, model + 16 * PAGE, 4 * PAGE));
}

/*
 * An aligned read through the direct store does not fill the page cache
 * (a buffered one does: the check can see it).  Pages the kernel keeps
 * cached despite POSIX_FADV_DONTNEED leave nothing to prove.
 */
static void bypasses_cache(struct uffd_store *direct, struct uffd_store *buffered,
			   int fd)
{
	static char a[BIG] __attribute__((aligned(4096)));

	CHECK_OK(fdatasync(fd));
	CHECK_OK(posix_fadvise(fd, 0, BIG, POSIX_FADV_DONTNEED));
	if (cached_pages(fd, 0, BIG)) {
		fprintf(stderr, "note: pages stay cached; page-cache check skipped\n");
		return;
	}
	CHECK_EQ(direct->ops->read(direct->data, a, BIG, 0), BIG);
	CHECK(!memcmp(a, model, BIG));
	CHECK_EQ(cached_pages(fd, 0, BIG), 0);
	CHECK_EQ(buffered->ops->read(buffered->data, a, BIG, 0), BIG);
	CHECK_EQ(cached_pages(fd, 0, BIG), BIG / PAGE);
}

/* A caller's O_DIRECT fd: unaligned I/O still works, the fd stays open. */
static void callers_direct_fd(const char *path)
{
	char buf[100];
	int fd = open(path, O_RDWR | O_DIRECT);
	struct uffd_store *s;

	CHECK(fd >= 0);
	s = uffd_store_fd(fd, 0);
	CHECK(s);
	CHECK_EQ(s->ops->read(s->data, buf, 77, 13), 77);
	CHECK(!memcmp(buf, model + 13, 77));
	memset(buf, 'z', sizeof(buf));
	CHECK_EQ(s->ops->write(s->data, buf, 33, 5), 33);
	memset(model + 5, 'z', 33);
	uffd_store_free(s);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_DIRECT, O_DIRECT);
	CHECK_OK(close(fd));
	fd = open(path, O_RDONLY);
	CHECK_EQ(pread(fd, buf, 40, 0), 40);
	CHECK(!memcmp(buf, model, 40));
	CHECK_OK(close(fd));
}

int main(void)
{
	const char *dir = t_img_dir();
	const char *path = t_img_path(0, dir, "direct");
	struct uffd_store *direct, *buffered;
	int fd, ndirect, nbuffered;
	char real[PATH_MAX];

	t_fill(model, FILE_LEN, 9);
	t_write_file(path, model, FILE_LEN);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0 && errno == EINVAL)
		SKIP("the file system of %s does not do O_DIRECT", dir);
	CHECK(fd >= 0);
	CHECK_OK(close(fd));
	CHECK(realpath(path, real));

	direct = uffd_store_file(path, O_RDWR, UFFD_STORE_DIRECT);
	CHECK(direct);
	buffered = uffd_store_file(path, O_RDONLY, 0);
	CHECK(buffered);
	CHECK(!strcmp(direct->kind, "file"));
	count_fds(real, &ndirect, &nbuffered);
	CHECK_EQ(ndirect, 1);
	CHECK_EQ(nbuffered, 2);		/* the direct store's twin, and buffered */

	same_bytes(direct, buffered);
	writes_land(direct, path);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	bypasses_cache(direct, buffered, fd);
	CHECK_OK(close(fd));
	uffd_store_free(direct);
	uffd_store_free(buffered);

	callers_direct_fd(path);
	count_fds(real, &ndirect, &nbuffered);
	CHECK_EQ(ndirect + nbuffered, 0);	/* the stores closed theirs */
	return T_EXIT_PASS;
}
