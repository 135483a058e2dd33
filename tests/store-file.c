/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file store and the fd store: writes land in the file at their
 * offsets (a write past the end grows it, leaving a hole of zeros), reads
 * are short at the end and empty past it as pread's, size follows the
 * file, flush is 0, a read-only store refuses writes with -EBADF, a new
 * file is created 0600, threads may do I/O at once, and the fd store
 * leaves the caller's fd open.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uffd/pager.h>

#include "lib/image-files.h"

#define LEN (3 * PAGE + 100)
#define THREADS 4
#define ROUNDS 200

static void read_write(const char *path)
{
	struct uffd_store *s = uffd_store_file(path, O_RDWR | O_CREAT | O_EXCL, 0);
	static char model[11 * PAGE], buf[12 * PAGE];
	uint64_t size;
	uint8_t *file;
	struct stat st;

	CHECK(s);
	CHECK(!strcmp(s->kind, "file"));
	CHECK(!s->ops->read_batch && !s->ops->write_batch);
	CHECK_OK(stat(path, &st));
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(s->ops->size(s->data), 0);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), 0);

	t_fill(model, LEN, 4);
	CHECK_EQ(s->ops->write(s->data, model, LEN, 0), LEN);
	CHECK_EQ(s->ops->size(s->data), LEN);
	CHECK_EQ(s->ops->read(s->data, buf, LEN, 0), LEN);
	CHECK(!memcmp(buf, model, LEN));

	/* Short at the end, nothing at or past it. */
	CHECK_EQ(s->ops->read(s->data, buf, 2 * PAGE, LEN - 100), 100);
	CHECK(!memcmp(buf, model + LEN - 100, 100));
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, LEN), 0);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 100 * PAGE), 0);

	/* Unaligned offsets and lengths. */
	memset(model + 5, 'u', 3001);
	CHECK_EQ(s->ops->write(s->data, model + 5, 3001, 5), 3001);
	CHECK_EQ(s->ops->read(s->data, buf, 4000, 3), 4000);
	CHECK(!memcmp(buf, model + 3, 4000));

	/* A write past the end grows the file; the gap reads as zeros. */
	memset(model + 10 * PAGE, 'e', 10);
	CHECK_EQ(s->ops->write(s->data, model + 10 * PAGE, 10, 10 * PAGE), 10);
	CHECK_EQ(s->ops->size(s->data), 10 * PAGE + 10);
	CHECK_EQ(s->ops->read(s->data, buf, sizeof(buf), 0), 10 * PAGE + 10);
	CHECK(!memcmp(buf, model, 10 * PAGE + 10));
	CHECK(t_is_zero(buf + LEN, 10 * PAGE - LEN));

	CHECK_OK(s->ops->flush(s->data));
	uffd_store_free(s);

	/* What a reader of the file sees, without the library. */
	file = t_read_file(path, &size);
	CHECK_EQ(size, 10 * PAGE + 10);
	CHECK(!memcmp(file, model, size));
	free(file);
}

static void read_only(const char *path)
{
	struct uffd_store *s = uffd_store_file(path, O_RDONLY, 0);
	char buf[PAGE];

	CHECK(s);
	CHECK_EQ(s->ops->read(s->data, buf, 100, 0), 100);
	CHECK(t_is_filled(buf, 5, 4));
	CHECK_EQ(s->ops->write(s->data, buf, 100, 0), -EBADF);
	CHECK_OK(s->ops->flush(s->data));
	uffd_store_free(s);
}

struct worker {
	pthread_t thread;
	struct uffd_store *s;
	int id;
};

/* Each thread owns pages id, id + THREADS, ...: writes then reads them. */
static void *hammer(void *arg)
{
	struct worker *w = arg;
	char page[PAGE], back[PAGE];
	int r, p;

	for (r = 0; r < ROUNDS; r++) {
		p = w->id + THREADS * (r % 8);
		t_fill(page, PAGE, w->id * 1000 + r);
		CHECK_EQ(w->s->ops->write(w->s->data, page, PAGE, (uint64_t)p * PAGE), PAGE);
		CHECK_EQ(w->s->ops->read(w->s->data, back, PAGE, (uint64_t)p * PAGE), PAGE);
		CHECK(t_is_filled(back, PAGE, w->id * 1000 + r));
	}
	return NULL;
}

static void threads(const char *path)
{
	struct uffd_store *s = uffd_store_file(path, O_RDWR | O_CREAT | O_TRUNC, 0);
	struct worker w[THREADS];
	char page[PAGE];
	int i, p;

	CHECK(s);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .s = s, .id = i };
		CHECK_OK(pthread_create(&w[i].thread, NULL, hammer, &w[i]));
	}
	for (i = 0; i < THREADS; i++)
		CHECK_OK(pthread_join(w[i].thread, NULL));
	CHECK_EQ(s->ops->size(s->data), 8 * THREADS * PAGE);
	/* Page p's last write was round ROUNDS - 8 + p / THREADS. */
	for (p = 0; p < 8 * THREADS; p++) {
		CHECK_EQ(s->ops->read(s->data, page, PAGE, (uint64_t)p * PAGE), PAGE);
		CHECK(t_is_filled(page, PAGE, p % THREADS * 1000 + ROUNDS - 8 + p / THREADS));
	}
	uffd_store_free(s);
}

static void callers_fd(const char *path)
{
	int fd = open(path, O_RDWR);
	struct uffd_store *s;
	char buf[PAGE];

	CHECK(fd >= 0);
	s = uffd_store_fd(fd, 0);
	CHECK(s);
	CHECK(!strcmp(s->kind, "file"));
	CHECK_EQ(s->ops->size(s->data), 8 * THREADS * PAGE);
	memset(buf, 'f', 64);
	CHECK_EQ(s->ops->write(s->data, buf, 64, 7), 64);
	CHECK_OK(s->ops->flush(s->data));
	uffd_store_free(s);

	/* The fd is the caller's: still open, and the write is in the file. */
	CHECK_EQ(fcntl(fd, F_GETFD), 0);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(fd, buf, 64, 7), 64);
	CHECK(buf[0] == 'f' && buf[63] == 'f');
	CHECK_OK(close(fd));
}

static void bad_input(const char *dir)
{
	errno = 0;
	CHECK(!uffd_store_file(t_img_path(2, dir, "missing"), O_RDWR, 0));
	CHECK_EQ(errno, ENOENT);
	errno = 0;
	CHECK(!uffd_store_file(NULL, O_RDWR, 0));
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(!uffd_store_file(t_img_path(2, dir, "x"), O_RDWR | O_CREAT, 1u << 7));
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(t_count_files(dir), 2);	/* nothing created */
	errno = 0;
	CHECK(!uffd_store_fd(-1, 0));
	CHECK_EQ(errno, EBADF);
	errno = 0;
	CHECK(!uffd_store_fd(0, 1u << 7));
	CHECK_EQ(errno, EINVAL);
}

int main(void)
{
	const char *dir = t_img_dir();

	umask(022);
	read_write(t_img_path(0, dir, "store"));
	read_only(t_img_path(0, dir, "store"));
	threads(t_img_path(1, dir, "threads"));
	callers_fd(t_img_path(1, dir, "threads"));
	bad_input(dir);
	return T_EXIT_PASS;
}
