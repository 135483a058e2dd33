/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_snap_begin() in two steps: uffd_snap_new() protects nothing,
 * uffd_snap_start() takes the instant; writes announced from the moment
 * the handle exists - through the precopy too - leave the image exactly
 * the instant.
 *
 * Steps: after new, the program writes freely (the image, whose instant is
 * later, holds that write), prepare_write does nothing, wait and cancel
 * answer -EINVAL and the stats say nothing ran; start returns 0 after the
 * instant and -EALREADY the second time; the image is committed.
 *
 * Announced writes: a thread stamps random pages of 32 MiB with a
 * version, announcing each write first, from before start until after
 * the image is durable; the pause callback parks it at a write boundary
 * and records every page's version.  The image must hold exactly those
 * versions, for every page (three rounds).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"

#define BYTES		(32UL << 20)
#define NPAGES		(BYTES / PAGE)

struct stamp {
	uint64_t page, version;
};

struct writer {
	char *area;
	struct uffd_snap *snap;		/* atomic: announce through it */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool park, parked, stop;
	uint64_t version;
	uint64_t *at_instant;		/* each page's version at the instant */
	uint64_t writes_before_instant, writes;
};

static void write_page(char *area, uint64_t page, uint64_t version)
{
	struct stamp st = { page, version };

	memset(area + page * PAGE, (int)(version & 0xff), PAGE);
	memcpy(area + page * PAGE, &st, sizeof(st));
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t rnd = 88172645463325252ULL;

	for (;;) {
		struct uffd_snap *s;
		uint64_t page;

		pthread_mutex_lock(&w->lock);
		if (w->park) {
			w->parked = true;
			pthread_cond_broadcast(&w->cond);
			while (w->park)
				pthread_cond_wait(&w->cond, &w->lock);
			w->parked = false;
		}
		pthread_mutex_unlock(&w->lock);
		if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
			return NULL;
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		page = rnd % NPAGES;
		s = __atomic_load_n(&w->snap, __ATOMIC_ACQUIRE);
		if (s)
			CHECK_OK(uffd_snap_prepare_write(s, w->area + page * PAGE, PAGE));
		write_page(w->area, page, ++w->version);
		__atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
	}
}

static void pause_cb(void *arg)
{
	struct writer *w = arg;
	uint64_t p;

	pthread_mutex_lock(&w->lock);
	w->park = true;
	while (!w->parked)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	for (p = 0; p < NPAGES; p++) {
		struct stamp st;

		memcpy(&st, w->area + p * PAGE, sizeof(st));
		w->at_instant[p] = st.version;
	}
	w->writes_before_instant = __atomic_load_n(&w->writes, __ATOMIC_RELAXED);
}

static void resume_cb(void *arg)
{
	struct writer *w = arg;

	pthread_mutex_lock(&w->lock);
	w->park = false;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void check_image(const char *path, const uint64_t *version)
{
	struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);
	static char buf[PAGE], want[PAGE];
	uint64_t p;

	CHECK(chain);
	for (p = 0; p < NPAGES; p++) {
		CHECK_EQ(uffd_image_chain_read_page(chain, 0, p, buf), 1);
		memset(want, (int)(version[p] & 0xff), PAGE);
		memcpy(want, &(struct stamp){ p, version[p] }, sizeof(struct stamp));
		if (memcmp(buf, want, PAGE))
			FAIL("page %llu of the image is not version %llu",
			     (unsigned long long)p, (unsigned long long)version[p]);
	}
	uffd_image_chain_close(chain);
}

static void steps(const char *path)
{
	char *area = t_map_anon(BYTES);
	struct uffd_image_region reg = { (uintptr_t)area, BYTES, 4096, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, o, .path = path, .regions = &reg, .nregions = 1);
	uint64_t *version = calloc(NPAGES, sizeof(*version));
	struct uffd_snap_stats st;
	struct uffd_snap *s;
	uint64_t p;

	CHECK(version);
	for (p = 0; p < NPAGES; p++)
		write_page(area, p, 1);
	s = uffd_snap_new(&o);
	if (!s)
		FAIL("uffd_snap_new: %s", strerror(errno));
	CHECK_OK(uffd_snap_prepare_write(s, area, PAGE));
	write_page(area, 0, 2);		/* nothing is protected yet */
	CHECK_EQ(uffd_snap_wait(s, 0), -EINVAL);
	CHECK_EQ(uffd_snap_cancel(s), -EINVAL);
	CHECK_OK(uffd_snap_stats(s, &st));
	CHECK(!st.done);
	CHECK_EQ(st.duration_ns, 0);
	CHECK_EQ(st.copied_before_write + st.written_background + st.sync_writes, 0);
	CHECK_OK(uffd_snap_start(s));
	CHECK_EQ(uffd_snap_start(s), -EALREADY);
	write_page(area, 1, 3);		/* after the instant */
	CHECK_OK(uffd_snap_wait(s, 60000));
	uffd_snap_free(s);
	for (p = 0; p < NPAGES; p++)
		version[p] = p == 0 ? 2 : 1;
	check_image(path, version);
	unlink(path);
	free(version);
	munmap(area, BYTES);
}

static void announced(const char *path, int round)
{
	struct writer w = { .area = t_map_anon(BYTES) };
	struct uffd_image_region reg = { (uintptr_t)w.area, BYTES, 4096, UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_snap_opts, o, .path = path, .regions = &reg, .nregions = 1,
		  .pause = pause_cb, .resume = resume_cb, .arg = &w);
	struct uffd_snap *s;
	pthread_t t;
	uint64_t p, before;

	w.at_instant = calloc(NPAGES, sizeof(*w.at_instant));
	CHECK(w.at_instant);
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	for (p = 0; p < NPAGES; p++)
		write_page(w.area, p, 0);
	s = uffd_snap_new(&o);
	if (!s)
		FAIL("uffd_snap_new: %s", strerror(errno));
	__atomic_store_n(&w.snap, s, __ATOMIC_RELEASE);
	CHECK_OK(pthread_create(&t, NULL, writer_main, &w));
	while (__atomic_load_n(&w.writes, __ATOMIC_RELAXED) < 1000)	/* announcing */
		usleep(100);
	CHECK_OK(uffd_snap_start(s));
	CHECK_OK(uffd_snap_wait(s, 60000));
	before = __atomic_load_n(&w.writes, __ATOMIC_RELAXED);
	while (__atomic_load_n(&w.writes, __ATOMIC_RELAXED) < before + 1000)
		usleep(100);
	__atomic_store_n(&w.stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "round %d: %llu writes before the instant, %llu in all\n", round,
			(unsigned long long)w.writes_before_instant,
			(unsigned long long)w.writes);
	CHECK(w.writes_before_instant >= 1000);
	CHECK(w.writes > w.writes_before_instant);
	uffd_snap_free(s);
	check_image(path, w.at_instant);
	unlink(path);
	free(w.at_instant);
	munmap(w.area, BYTES);
}

static char dir[] = "/tmp/libuffd-new-start-XXXXXX";
static char path[96];

static void remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	int round;

	t_require(UFFD_FEAT_WP_UNPOPULATED);
	CHECK(mkdtemp(dir));
	atexit(remove_dir);
	snprintf(path, sizeof(path), "%s/snap", dir);
	steps(path);
	for (round = 0; round < 3; round++)
		announced(path, round);
	return T_EXIT_PASS;
}
