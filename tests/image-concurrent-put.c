/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Puts from many threads at once make one sound image: eight threads write
 * interleaved 64-page windows of a 16 MiB region in chunks of assorted
 * sizes while all of them race for the same 96 pages, page by page.  Each
 * contested page is won by exactly one put (the others get -EEXIST), and
 * afterwards every page reads back the data of the thread that wrote it,
 * the checksums verify and the counts add up.
 */
#include <uffd/image.h>

#include "lib/harness.h"
#include "lib/image-files.h"

#define NTHREADS 8
#define NPAGES 4096
#define CONTESTED 4000		/* pages [CONTESTED, NPAGES) are raced for */

static const struct uffd_image_region region = {
	.addr = 0x10000000, .len = NPAGES * PAGE, .page_size = PAGE, .flags = UFFD_IMAGE_ANON,
};

static struct uffd_image_writer *writer;
static int winner[NPAGES];		/* thread that wrote the page */
static int chunks_written[NTHREADS];

static unsigned seed(int thread, uint64_t page)
{
	return 1 + thread * 100000 + page;
}

/* Pages [first, first + count), written by thread t in one put. */
static void put_run(int t, uint64_t first, uint32_t count, uint8_t *buf)
{
	uint32_t i;

	for (i = 0; i < count; i++) {
		t_fill(buf + i * PAGE, PAGE, seed(t, first + i));
		winner[first + i] = t;
	}
	CHECK_OK(uffd_image_put(writer, 0, first, count, buf, 0));
	chunks_written[t]++;
}

static void *thread_main(void *arg)
{
	static const uint32_t sizes[] = { 64, 1, 7, 13, 31, 64 };
	int t = (int)(intptr_t)arg, w, i;
	uint8_t *buf = malloc(64 * PAGE), page[PAGE];
	uint64_t first, end;
	uint32_t n;

	CHECK(buf);
	for (w = t; w * 64 < CONTESTED; w += NTHREADS) {
		end = w * 64 + 64 < CONTESTED ? w * 64 + 64 : CONTESTED;
		for (first = w * 64, i = w; first < end; first += n, i++) {
			n = sizes[i % 6];
			if (n > end - first)
				n = end - first;
			put_run(t, first, n, buf);
		}
	}
	for (first = CONTESTED; first < NPAGES; first++) {
		int ret;

		t_fill(page, PAGE, seed(t, first));
		ret = uffd_image_put_page(writer, 0, first, page);
		if (ret == 0) {
			winner[first] = t;
			chunks_written[t]++;
		} else if (ret != -EEXIST) {
			FAIL("contested page %" PRIu64 ": %s", first, t_errname(ret));
		}
	}
	free(buf);
	return NULL;
}

int main(void)
{
	pthread_t threads[NTHREADS];
	struct uffd_image_info info;
	struct uffd_image *img;
	uint8_t buf[PAGE], want[PAGE];
	uint64_t page, chunks = 0, bad = 0;
	const char *path;
	int t;

	path = t_img_path(0, t_img_dir(), "image.img");
	writer = uffd_image_create(path, &region, 1, NULL, 0);
	CHECK(writer);
	for (t = 0; t < NPAGES; t++)
		winner[t] = -1;
	for (t = 0; t < NTHREADS; t++)
		CHECK_OK(pthread_create(&threads[t], NULL, thread_main, (void *)(intptr_t)t));
	for (t = 0; t < NTHREADS; t++) {
		pthread_join(threads[t], NULL);
		chunks += chunks_written[t];
	}
	CHECK_EQ(uffd_image_bytes(writer),
		 T_IMG_CHUNKS_START(1) + chunks * (T_IMG_CHUNK_HDR + 4) + NPAGES * PAGE);
	CHECK_OK(uffd_image_commit(writer));

	img = uffd_image_open(path, &bad);
	if (!img)
		FAIL("open: %s at %" PRIu64, strerror(errno), bad);
	CHECK_OK(uffd_image_verify(img, &bad));
	uffd_image_info(img, &info);
	CHECK_EQ(info.chunks, chunks);
	CHECK_EQ(info.pages, NPAGES);
	CHECK_EQ(info.zero_pages, 0);
	for (page = 0; page < NPAGES; page++) {
		CHECK(winner[page] >= 0);
		CHECK_EQ(uffd_image_read_page(img, 0, page, buf), 1);
		t_fill(want, PAGE, seed(winner[page], page));
		if (memcmp(buf, want, PAGE))
			FAIL("page %" PRIu64 " is not thread %d's", page, winner[page]);
	}
	uffd_image_close(img);
	return T_EXIT_PASS;
}
