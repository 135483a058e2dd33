/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * umap(), uunmap() and umap_flush() may be called from several threads at
 * once: four threads each map their own quarter of one file again and
 * again (through one buffer smaller than the four maps together), write a
 * pattern of their own, read it back and unmap, while a fifth flushes all
 * the time.  At the end the file holds each thread's last pattern exactly.
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/harness.h"
#include "lib/umap-test.h"

#define THREADS		4
#define ROUNDS		20
#define SLICE_PAGES	16
#define SLICE_BYTES	(SLICE_PAGES * PAGE)

struct worker {
	pthread_t thread;
	int fd, id;
	const char *failed;	/* what went wrong, or NULL */
	int err;
};

static int stop_flushing;	/* atomic */

static unsigned seed_of(int id, int round)
{
	return 100 + id * ROUNDS + round;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *want = malloc(SLICE_BYTES);

	if (!want) {
		w->failed = "malloc";
		return NULL;
	}
	for (int round = 0; round < ROUNDS && !w->failed; round++) {
		unsigned char *map = umap(NULL, SLICE_BYTES,
					  PROT_READ | PROT_WRITE, UMAP_PRIVATE,
					  w->fd, (off_t)w->id * SLICE_BYTES);

		if (map == UMAP_FAILED) {
			w->failed = "umap";
			w->err = errno;
			break;
		}
		t_fill(want, SLICE_BYTES, seed_of(w->id, round));
		memcpy(map, want, SLICE_BYTES);
		if (memcmp(map, want, SLICE_BYTES))
			w->failed = "read back";
		if (uunmap(map, SLICE_BYTES)) {
			w->failed = "uunmap";
			w->err = errno;
		}
	}
	free(want);
	return NULL;
}

static void *flusher_main(void *arg)
{
	int *failures = arg;

	while (!__atomic_load_n(&stop_flushing, __ATOMIC_ACQUIRE))
		if (umap_flush())
			(*failures)++;
	return NULL;
}

int main(void)
{
	static unsigned char got[THREADS * SLICE_BYTES], want[SLICE_BYTES];
	struct worker w[THREADS];
	pthread_t flusher;
	int flush_failures = 0, fd;
	void *probe;

	CHECK_OK(setenv("UMAP_BUFSIZE", "32", 1));
	fd = t_umap_file(NULL, THREADS * SLICE_BYTES, NULL);

	/* Create the pager here, so a machine without one skips cleanly. */
	probe = t_umap(PAGE, PROT_READ, UMAP_PRIVATE, fd, 0);
	CHECK_EQ(uunmap(probe, PAGE), 0);

	CHECK_OK(pthread_create(&flusher, NULL, flusher_main, &flush_failures));
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .fd = fd, .id = i };
		CHECK_OK(pthread_create(&w[i].thread, NULL, worker_main, &w[i]));
	}
	for (int i = 0; i < THREADS; i++)
		CHECK_OK(pthread_join(w[i].thread, NULL));
	__atomic_store_n(&stop_flushing, 1, __ATOMIC_RELEASE);
	CHECK_OK(pthread_join(flusher, NULL));

	for (int i = 0; i < THREADS; i++)
		if (w[i].failed)
			FAIL("thread %d: %s: %s", i, w[i].failed,
			     strerror(w[i].err));
	CHECK_EQ(flush_failures, 0);
	CHECK_EQ(pread(fd, got, sizeof(got), 0), (ssize_t)sizeof(got));
	for (int i = 0; i < THREADS; i++) {
		t_fill(want, SLICE_BYTES, seed_of(i, ROUNDS - 1));
		if (memcmp(got + i * SLICE_BYTES, want, SLICE_BYTES))
			FAIL("thread %d's quarter of the file is not its last "
			     "pattern", i);
	}
	close(fd);
	return T_EXIT_PASS;
}
