/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UFFD_STORE_URING: the file store gets read_batch and write_batch, and a
 * batch of 64 page writes in shuffled order then 64 reads round-trips
 * exactly, every io's res set.  A batch larger than the ring (300 small
 * unaligned I/Os) completes whole; reads across or past the end are short
 * or empty as pread's (the short completion is resubmitted and reads 0);
 * empty I/Os give 0; a read-only store fails each write with -EBADF and the
 * batch returns it.  With UFFD_STORE_DIRECT too, unaligned I/Os in a batch
 * give the right bytes.  Four threads batching at once all see their own
 * data.  Built without liburing the flag is accepted and the store has no
 * batches: checked, then skip.
 */
#include <fcntl.h>
#include <unistd.h>
#include <uffd/pager.h>

#include "lib/image-files.h"

#ifndef HAVE_LIBURING
/* The flag is still accepted: the store just has no batches. */
int main(void)
{
	const char *dir = t_img_dir();
	struct uffd_store *s;

	s = uffd_store_file(t_img_path(0, dir, "uring"), O_RDWR | O_CREAT,
			    UFFD_STORE_URING);
	CHECK(s);
	CHECK(!s->ops->read_batch && !s->ops->write_batch);
	uffd_store_free(s);
	SKIP("built without liburing: UFFD_STORE_URING is accepted and unused");
}
#else
#include <liburing.h>

#define N 64
#define SMALL 300
#define THREADS 4
#define ROUNDS 50

static char pages[N][PAGE] __attribute__((aligned(4096)));
static char back[N][PAGE] __attribute__((aligned(4096)));

/* Offsets in a fixed shuffled order: page i goes to slot perm[i]. */
static int perm[N];

static void shuffle(void)
{
	unsigned x = 12345;
	int i, j, t;

	for (i = 0; i < N; i++)
		perm[i] = i;
	for (i = N - 1; i > 0; i--) {
		x = x * 1103515245 + 12345;
		j = (x >> 16) % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

static int page_in_slot(int slot)
{
	int i;

	for (i = 0; perm[i] != slot; i++)
		;
	return i;
}

static void round_trip(struct uffd_store *s, const char *path)
{
	struct uffd_store_io io[N];
	char page[PAGE];
	int i, fd;

	for (i = 0; i < N; i++) {
		t_fill(pages[i], PAGE, i);
		io[i] = (struct uffd_store_io){
			.buf = pages[i], .len = PAGE, .off = (uint64_t)perm[i] * PAGE,
			.res = -12345,
		};
	}
	CHECK_OK(s->ops->write_batch(s->data, io, N));
	for (i = 0; i < N; i++)
		CHECK_EQ(io[i].res, PAGE);
	CHECK_EQ(s->ops->size(s->data), N * PAGE);

	/* What a plain reader of the file finds. */
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	for (i = 0; i < N; i++) {
		CHECK_EQ(pread(fd, page, PAGE, (uint64_t)perm[i] * PAGE), PAGE);
		CHECK(t_is_filled(page, PAGE, i));
	}
	CHECK_OK(close(fd));

	for (i = 0; i < N; i++)
		io[i] = (struct uffd_store_io){
			.buf = back[i], .len = PAGE, .off = (uint64_t)perm[i] * PAGE,
			.res = -12345,
		};
	CHECK_OK(s->ops->read_batch(s->data, io, N));
	for (i = 0; i < N; i++) {
		CHECK_EQ(io[i].res, PAGE);
		CHECK(t_is_filled(back[i], PAGE, i));
	}
}

/* Ends, empties, and more I/Os than the ring has entries. */
static void edges(struct uffd_store *s)
{
	static char bytes[SMALL][100];
	struct uffd_store_io io[SMALL];
	char expect[100];
	int i;

	io[0] = (struct uffd_store_io){ back[0], PAGE, N * PAGE - 100, 1 };
	io[1] = (struct uffd_store_io){ back[1], PAGE, N * PAGE, 1 };
	io[2] = (struct uffd_store_io){ back[2], PAGE, (N + 5) * PAGE, 1 };
	io[3] = (struct uffd_store_io){ back[3], 0, 0, 1 };
	io[4] = (struct uffd_store_io){ back[4], 2 * PAGE, (N - 1) * PAGE, 1 };
	CHECK_OK(s->ops->read_batch(s->data, io, 5));
	CHECK_EQ(io[0].res, 100);
	CHECK(!memcmp(back[0], pages[page_in_slot(N - 1)] + PAGE - 100, 100));
	CHECK_EQ(io[1].res, 0);
	CHECK_EQ(io[2].res, 0);
	CHECK_EQ(io[3].res, 0);
	CHECK_EQ(io[4].res, PAGE);
	CHECK(t_is_filled(back[4], PAGE, page_in_slot(N - 1)));
	CHECK_OK(s->ops->write_batch(s->data, io + 3, 1));	/* empty write */
	CHECK_EQ(io[3].res, 0);
	CHECK_OK(s->ops->read_batch(s->data, io, 0));
	CHECK_EQ(s->ops->read_batch(s->data, io, -1), -EINVAL);

	/* 300 unaligned 100-byte writes, then reads, beyond the ring's 64. */
	for (i = 0; i < SMALL; i++) {
		t_fill(bytes[i], 100, 1000 + i);
		io[i] = (struct uffd_store_io){ bytes[i], 100, 7 + 100 * (uint64_t)i, 1 };
	}
	CHECK_OK(s->ops->write_batch(s->data, io, SMALL));
	for (i = 0; i < SMALL; i++) {
		CHECK_EQ(io[i].res, 100);
		memset(bytes[i], 0, 100);
	}
	CHECK_OK(s->ops->read_batch(s->data, io, SMALL));
	for (i = 0; i < SMALL; i++) {
		CHECK_EQ(io[i].res, 100);
		t_fill(expect, 100, 1000 + i);
		CHECK(!memcmp(bytes[i], expect, 100));
	}
}

static void read_only(const char *path)
{
	struct uffd_store *s = uffd_store_file(path, O_RDONLY, UFFD_STORE_URING);
	struct uffd_store_io io[3];
	int i;

	CHECK(s && s->ops->write_batch);
	for (i = 0; i < 3; i++)
		io[i] = (struct uffd_store_io){ pages[i], PAGE, (uint64_t)i * PAGE, 1 };
	CHECK_EQ(s->ops->write_batch(s->data, io, 3), -EBADF);
	for (i = 0; i < 3; i++)
		CHECK_EQ(io[i].res, -EBADF);
	uffd_store_free(s);
}

/* O_DIRECT and io_uring: aligned I/Os direct, the others buffered. */
static void direct(const char *path)
{
	struct uffd_store *s = uffd_store_file(path, O_RDWR, UFFD_STORE_DIRECT |
					       UFFD_STORE_URING);
	static char buf[3][2 * PAGE] __attribute__((aligned(4096)));
	struct uffd_store_io io[3];

	CHECK(s && s->ops->read_batch);
	io[0] = (struct uffd_store_io){ buf[0], PAGE, (uint64_t)perm[5] * PAGE, 1 };
	io[1] = (struct uffd_store_io){ buf[1] + 1, 300, (uint64_t)perm[6] * PAGE + 9, 1 };
	io[2] = (struct uffd_store_io){ buf[2], PAGE, (uint64_t)perm[7] * PAGE, 1 };
	CHECK_OK(s->ops->read_batch(s->data, io, 3));
	CHECK_EQ(io[0].res, PAGE);
	CHECK_EQ(io[1].res, 300);
	CHECK_EQ(io[2].res, PAGE);
	CHECK(t_is_filled(buf[0], PAGE, 5));
	CHECK(!memcmp(buf[1] + 1, pages[6] + 9, 300));
	CHECK(t_is_filled(buf[2], PAGE, 7));

	/* Write them back through the batch, shifted: read them plainly. */
	io[1].off -= 9;
	CHECK_OK(s->ops->write_batch(s->data, io, 3));
	CHECK_EQ(io[1].res, 300);
	CHECK_EQ(s->ops->read(s->data, buf[0], 300, (uint64_t)perm[6] * PAGE), 300);
	CHECK(!memcmp(buf[0], pages[6] + 9, 300));
	uffd_store_free(s);
}

struct worker {
	pthread_t thread;
	struct uffd_store *s;
	int id;
};

/* Thread id reads pages id, id + THREADS, ... in batches, ROUNDS times. */
static void *batch_reader(void *arg)
{
	struct worker *w = arg;
	struct uffd_store_io io[N / THREADS];
	char (*buf)[PAGE] = aligned_alloc(PAGE, N / THREADS * PAGE);
	int r, i, page;

	CHECK(buf);
	for (r = 0; r < ROUNDS; r++) {
		for (i = 0; i < N / THREADS; i++) {
			page = w->id + THREADS * i;
			io[i] = (struct uffd_store_io){
				buf[i], PAGE, (uint64_t)perm[page] * PAGE, 1 };
			memset(buf[i], 0, PAGE);
		}
		CHECK_OK(w->s->ops->read_batch(w->s->data, io, N / THREADS));
		for (i = 0; i < N / THREADS; i++) {
			CHECK_EQ(io[i].res, PAGE);
			CHECK(t_is_filled(buf[i], PAGE, w->id + THREADS * i));
		}
	}
	free(buf);
	return NULL;
}

static void threads(const char *path)
{
	struct uffd_store *s = uffd_store_file(path, O_RDWR, UFFD_STORE_URING);
	struct worker w[THREADS];
	int i;

	CHECK(s);
	for (i = 0; i < N; i++)
		CHECK_EQ(s->ops->write(s->data, pages[i], PAGE, (uint64_t)perm[i] * PAGE),
			 PAGE);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .s = s, .id = i };
		CHECK_OK(pthread_create(&w[i].thread, NULL, batch_reader, &w[i]));
	}
	for (i = 0; i < THREADS; i++)
		CHECK_OK(pthread_join(w[i].thread, NULL));
	uffd_store_free(s);
}

int main(void)
{
	const char *dir = t_img_dir();
	const char *path = t_img_path(0, dir, "uring");
	struct uffd_store *s;
	struct io_uring ring;
	int ret, i;

	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0)
		SKIP("io_uring_queue_init: %s", strerror(-ret));
	io_uring_queue_exit(&ring);
	shuffle();

	s = uffd_store_file(path, O_RDWR | O_CREAT | O_EXCL, UFFD_STORE_URING);
	CHECK(s);
	CHECK(s->ops->read_batch && s->ops->write_batch);
	CHECK(!strcmp(s->kind, "file"));
	round_trip(s, path);
	edges(s);
	uffd_store_free(s);

	read_only(path);
	s = uffd_store_file(path, O_RDWR | O_TRUNC, 0);
	CHECK(s);
	for (i = 0; i < N; i++)
		CHECK_EQ(s->ops->write(s->data, pages[i], PAGE, (uint64_t)perm[i] * PAGE),
			 PAGE);
	uffd_store_free(s);
	direct(path);
	threads(path);
	return T_EXIT_PASS;
}
#endif
