/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pager over a real file (O_DIRECT, io_uring batches when built with
 * liburing) under races: two threads rewrite words of random pages of a
 * file 16x larger than the buffer while a third flushes and evicts ranges
 * at random, so write faults, deactivation,
 * eviction, write-back and flush all meet on the same pages.  No write is
 * lost or torn: after unmap, pread of the file matches a model of every
 * write byte for byte.  A flush in a quiet moment is exact too: what was
 * written before it is in the file when it returns.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/image-files.h"
#include "lib/test-store.h"

#define DATA	(16UL << 20)
#define NPAGES	(DATA / PAGE)
#define BUFFER	(DATA / 16)
#define WRITES	15000

struct writer {
	char *map;
	uint64_t *model;	/* this writer's words: one per page it owns */
	unsigned seed, parity;
};

static int stop_flusher;	/* atomic */

/* Writer w owns the pages of its parity and writes word 0 of them. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned r = w->seed;
	int i;

	for (i = 0; i < WRITES; i++) {
		size_t page = (rand_r(&r) % (NPAGES / 2)) * 2 + w->parity;
		uint64_t *word = (uint64_t *)(w->map + page * PAGE + (page % 500) * 8);

		if (*word != w->model[page])
			FAIL("page %zu: read %#lx, wrote %#lx", page,
			     (unsigned long)*word, (unsigned long)w->model[page]);
		*word = w->model[page] = (uint64_t)rand_r(&r) << 32 | i;
	}
	return NULL;
}

static void *flusher_main(void *arg)
{
	struct uffd_pager *p = ((void **)arg)[0];
	char *map = ((void **)arg)[1];
	unsigned r = 5;

	while (!__atomic_load_n(&stop_flusher, __ATOMIC_RELAXED)) {
		size_t at = rand_r(&r) % NPAGES, n = 1 + rand_r(&r) % 64;

		if (at + n > NPAGES)
			n = NPAGES - at;
		CHECK_OK(rand_r(&r) % 2 ? uffd_pager_flush(p, map + at * PAGE, n * PAGE)
					: uffd_pager_evict(p, map + at * PAGE, n * PAGE));
	}
	return NULL;
}

static void check_file(int fd, const uint64_t *model)
{
	static char page[PAGE];
	size_t i;

	for (i = 0; i < NPAGES; i++) {
		uint64_t want = model[i] ? model[i] : t_word(i * PAGE + (i % 500) * 8, 1);

		CHECK_EQ(pread(fd, page, PAGE, i * PAGE), PAGE);
		if (memcmp(page + (i % 500) * 8, &want, 8))
			FAIL("page %zu: the file does not hold the last write", i);
	}
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER, .fillers = 2);
	const char *dir = getenv("TMPDIR") ? t_img_dir() : (setenv("TMPDIR", "/var/tmp", 1), t_img_dir());
	const char *path = t_img_path(0, dir, "data");
	struct uffd_pager_stats st;
	struct uffd_store *s;
	struct uffd_pager *p;
	struct writer w[2];
	pthread_t th[3];
	void *flusher_args[2];
	uint64_t *model;
	size_t i;
	char *map, *buf;
	int fd;

	/* the file: t_word(offset, 1) everywhere */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	buf = malloc(1 << 20);
	CHECK(buf);
	for (i = 0; i < DATA; i += 1 << 20) {
		for (size_t k = 0; k < (1 << 20); k += 8)
			*(uint64_t *)(buf + k) = t_word(i + k, 1);
		CHECK_EQ(pwrite(fd, buf, 1 << 20, i), 1 << 20);
	}
	free(buf);
	model = calloc(NPAGES, sizeof(*model));
	CHECK(model);
	for (i = 0; i < NPAGES; i++)
		model[i] = t_word(i * PAGE + (i % 500) * 8, 1);

	p = t_pager_new(&o);
	/* (With liburing, read-ahead and write-back go in batches.) */
	s = uffd_store_file(path, O_RDWR, UFFD_STORE_DIRECT | UFFD_STORE_URING);
	CHECK(s);
	map = uffd_pager_map(p, s, 0, DATA, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	CHECK(map);

	/* a quiet flush is exact */
	for (i = 0; i < NPAGES; i += 97)
		*(uint64_t *)(map + i * PAGE + (i % 500) * 8) = model[i] = i + 1;
	CHECK_OK(uffd_pager_flush(p, map, 0));
	check_file(fd, model);

	/* then everything at once */
	flusher_args[0] = p;
	flusher_args[1] = map;
	for (i = 0; i < 2; i++) {
		w[i] = (struct writer){ .map = map, .model = model, .seed = 17 + i, .parity = i };
		CHECK_EQ(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	CHECK_EQ(pthread_create(&th[2], NULL, flusher_main, flusher_args), 0);
	for (i = 0; i < 2; i++)
		CHECK_EQ(pthread_join(th[i], NULL), 0);
	__atomic_store_n(&stop_flusher, 1, __ATOMIC_RELAXED);
	CHECK_EQ(pthread_join(th[2], NULL), 0);
	CHECK_OK(uffd_pager_stats(p, &st));
	CHECK(st.resident_peak_bytes <= BUFFER);
	CHECK(st.evictions > 0 && st.writebacks > 0 && st.wp_faults > 0);
	CHECK_OK(uffd_pager_unmap(p, map));
	check_file(fd, model);
	printf("faults %lu wp %lu hits %lu fills %lu evictions %lu writebacks %lu\n",
	       (unsigned long)st.faults, (unsigned long)st.wp_faults, (unsigned long)st.hits,
	       (unsigned long)st.fills, (unsigned long)st.evictions,
	       (unsigned long)st.writebacks);
	CHECK_OK(uffd_pager_free(p));
	close(fd);
	free(model);
	return 0;
}
