/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Persistence: SAVE and BGSAVE as libuffd snapshots of the arena, and the
 * lazy restore of the last image at start.
 *
 * BGSAVE runs uffd_snap_begin() in a saver thread, so the event loop keeps
 * serving while every page is write-protected (precopy).  For the instant
 * the library calls our pause callback from that thread: it asks the loop
 * to stop at its next command boundary and waits until it has; the
 * library re-protects what the loop wrote meanwhile and resumes it.  From
 * then on the loop's first write to a page waits for libuffd to copy the
 * page's group (its handler thread; nothing here), and a writer thread of
 * the library streams the image.  The saver thread only waits for the
 * result and wakes the loop, which publishes it (INFO, LASTSAVE).
 *
 * The image covers [base, base + mapped) as the saver saw it.  Growing the
 * arena between then and the instant would leave data outside the image,
 * so the loop makes room first (a headroom that precopy rarely uses up),
 * and the pause callback - which runs while the loop is stopped - checks
 * that it did not grow anyway; if it did, the image is cancelled and the
 * save started again.
 *
 * The image is written under a temporary name and renamed when complete
 * (libuffd does it), so a failed save - a full disk - leaves the previous
 * image as it was.
 *
 * At start, an image in --dir is mapped at its recorded address with
 * UFFD_RESTORE_LAZY: the first GET faults in the pages it reads, served
 * from the file, while libuffd's prefetch thread streams the rest.  The
 * arena's pointers are valid as they are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uffd/snapshot.h>

#include "dict.h"
#include "kv.h"

#define HEADROOM_MIN	(64ULL << 20)	/* room made before a save begins */
#define SAVE_RETRIES	3		/* the arena grew before the instant */
#define WAIT_SLICE_MS	100		/* the saver checks for a cancel */

struct persist {
	struct server *s;
	char path[PATH_MAX];

	/* the lazy restore at start */
	struct uffd_restore *restore;
	uint64_t restore_ns;		/* how long it took, once done */
	uint64_t restore_faulted, restore_prefetched;

	/* the background save (the loop's side) */
	pthread_t thread;
	bool active, scheduled;
	int retries;
	uint64_t t_start;
	time_t start_time;
	/* shared with the saver thread */
	int done, cancel;		/* atomic */
	struct uffd_image_region region;
	uint64_t grows_at_start;
	bool grew;			/* set in the pause (loop stopped) */
	uint64_t changes_at_instant;
	time_t instant_time;
	int result;
	struct uffd_snap_stats st;
	uint64_t pause_wait_ns;		/* asking the loop to stop until it did */

	/* what INFO and LASTSAVE tell */
	time_t lastsave;
	int last_status;
	int64_t last_time_sec;
	uint64_t saves;
	uint64_t last_pause_us, last_pause_wait_us, last_duration_us, last_bytes;
	uint64_t last_buffer_peak;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- the pause: the saver thread stops the loop ------------------------------ */

static void loop_pause(void *arg)
{
	struct persist *p = arg;
	struct server *s = p->s;
	uint64_t t0 = mono_ns();

	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->pause_req, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	server_wake(s);
	pthread_mutex_lock(&s->lock);
	while (!s->paused)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	p->pause_wait_ns = mono_ns() - t0;
	/* The loop is stopped: its state can be read. */
	p->grew = s->arena.grows != p->grows_at_start;
	p->changes_at_instant = s->changes;
	p->instant_time = time(NULL);
}

static void loop_resume(void *arg)
{
	struct server *s = ((struct persist *)arg)->s;

	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->pause_req, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *saver_main(void *arg)
{
	struct persist *p = arg;
	UFFD_OPTS(uffd_snap_opts, o, .path = p->path, .regions = &p->region, .nregions = 1,
		  .buffer_bytes = p->s->cfg.snapshot_buffer, .pause = loop_pause,
		  .resume = loop_resume, .arg = p);
	struct uffd_snap *snap = uffd_snap_begin(&o);
	int ret;

	if (!snap) {
		p->result = -errno;
	} else {
		if (p->grew)
			__atomic_store_n(&p->cancel, 1, __ATOMIC_RELAXED);
		while ((ret = uffd_snap_wait(snap, WAIT_SLICE_MS)) == -ETIMEDOUT)
			if (__atomic_load_n(&p->cancel, __ATOMIC_RELAXED))
				uffd_snap_cancel(snap);
		if (p->grew && (ret == 0 || ret == -ECANCELED))
			ret = -EAGAIN;		/* the image cannot be used: again */
		p->result = ret;
		uffd_snap_stats(snap, &p->st);
		uffd_snap_free(snap);
	}
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	server_wake(p->s);
	return NULL;
}

/* ---- starting and finishing saves (the loop) -------------------------------------- */

static void set_region(struct persist *p)
{
	struct arena *a = &p->s->arena;

	p->region = (struct uffd_image_region){ arena_base(a), arena_mapped(a), 4096,
						UFFD_IMAGE_ANON };
}

static int start_bgsave(struct persist *p)
{
	struct server *s = p->s;
	struct arena *a = &s->arena;
	uint64_t headroom = arena_mapped(a) / 16;
	int ret;

	if (headroom < HEADROOM_MIN)
		headroom = HEADROOM_MIN;
	arena_reserve(a, headroom);	/* if it cannot, the retry catches a growth */
	set_region(p);
	p->grows_at_start = a->grows;
	p->grew = false;
	p->done = p->cancel = 0;
	p->result = 0;
	memset(&p->st, 0, sizeof(p->st));
	if (!p->retries) {
		p->t_start = mono_ns();
		p->start_time = time(NULL);
	}
	ret = -pthread_create(&p->thread, NULL, saver_main, p);
	if (ret)
		return ret;
	p->active = true;
	p->scheduled = false;
	if (!p->retries)
		kv_log(s, "background save started: %llu MiB of arena to %s",
		       (unsigned long long)(p->region.len >> 20), p->path);
	return 0;
}

static void record_result(struct persist *p, int ret, time_t instant, uint64_t changes)
{
	struct server *s = p->s;

	p->last_status = ret;
	p->last_time_sec = time(NULL) - p->start_time;
	p->last_duration_us = (mono_ns() - p->t_start) / 1000;
	p->last_pause_us = p->st.pause_ns / 1000;
	p->last_pause_wait_us = p->pause_wait_ns / 1000;
	p->last_bytes = p->st.bytes;
	p->last_buffer_peak = p->st.buffer_peak_bytes;
	if (!ret) {
		p->lastsave = instant;
		p->saves++;
		s->changes -= changes < s->changes ? changes : s->changes;
		kv_log(s, "saved %s: %.1f MiB in %.1f ms, the loop paused %.3f ms "
		       "(+%.3f ms to reach a command boundary)", p->path, p->last_bytes / 1048576.0,
		       p->last_duration_us / 1e3, p->last_pause_us / 1e3,
		       p->last_pause_wait_us / 1e3);
	} else {
		kv_log(s, "save to %s failed: %s (the previous image is untouched)", p->path,
		       strerror(-ret));
	}
}

static void finish_bgsave(struct persist *p)
{
	pthread_join(p->thread, NULL);
	p->active = false;
	if (p->result == -EAGAIN && p->retries < SAVE_RETRIES && !p->cancel) {
		kv_log(p->s, "the arena grew before the instant: saving again");
		p->retries++;
		if (!start_bgsave(p))
			return;
	}
	p->retries = 0;
	record_result(p, p->result, p->instant_time, p->changes_at_instant);
}

static void finish_restore(struct persist *p)
{
	struct uffd_restore_stats st;
	int ret = uffd_restore_wait(p->restore, 0);

	if (ret == -ETIMEDOUT)
		return;
	uffd_restore_stats(p->restore, &st);
	p->restore_ns = st.duration_ns;
	p->restore_faulted = st.faulted;
	p->restore_prefetched = st.prefetched;
	uffd_restore_close(p->restore, false);
	p->restore = NULL;
	if (ret) {
		/* pages that could not be read would raise SIGBUS: stop now */
		kv_log(p->s, "restore of %s failed: %s", p->path, strerror(-ret));
		p->s->shutdown = true;
		p->s->exit_code = 1;
		return;
	}
	kv_log(p->s, "restore of %s done in %.1f ms: %llu pages on first touch, %llu "
	       "prefetched", p->path, p->restore_ns / 1e6, (unsigned long long)st.faulted,
	       (unsigned long long)st.prefetched);
}

void persist_cron(struct server *s)
{
	struct persist *p = s->persist;

	if (!p)
		return;
	if (p->restore)
		finish_restore(p);
	if (p->active && __atomic_load_n(&p->done, __ATOMIC_ACQUIRE))
		finish_bgsave(p);
	if (p->scheduled && !p->active && !p->restore && start_bgsave(p))
		p->scheduled = false;
}

void persist_bgsave(struct server *s, struct client *c)
{
	struct persist *p = s->persist;
	int ret;

	if (!p->path[0]) {
		reply_str(c, "-ERR no --dir was given: uffd-kv has nowhere to save");
		return;
	}
	if (p->active) {
		reply_str(c, "-ERR Background save already in progress");
		return;
	}
	if (p->restore) {
		/* the restore holds the arena's pages: save when it is done */
		p->scheduled = true;
		reply_str(c, "+Background saving scheduled");
		return;
	}
	ret = start_bgsave(p);
	if (ret)
		reply_error(c, "-ERR cannot start a background save: %s", strerror(-ret));
	else
		reply_str(c, "+Background saving started");
}

void persist_save(struct server *s, struct client *c)
{
	struct persist *p = s->persist;
	struct uffd_snap *snap;
	UFFD_OPTS(uffd_snap_opts, o, .path = p->path, .regions = &p->region, .nregions = 1,
		  .buffer_bytes = s->cfg.snapshot_buffer);
	int ret;

	if (!p->path[0]) {
		reply_str(c, "-ERR no --dir was given: uffd-kv has nowhere to save");
		return;
	}
	if (p->active) {
		reply_str(c, "-ERR Background save already in progress");
		return;
	}
	if (p->restore) {
		uffd_restore_wait(p->restore, -1);
		finish_restore(p);
		if (s->shutdown) {
			reply_str(c, "-ERR the restore failed");
			return;
		}
	}
	/* The loop is the caller: nothing writes until the image is done. */
	set_region(p);
	p->t_start = mono_ns();
	p->start_time = time(NULL);
	p->pause_wait_ns = 0;
	memset(&p->st, 0, sizeof(p->st));
	snap = uffd_snap_begin(&o);
	if (!snap) {
		ret = -errno;
	} else {
		ret = uffd_snap_wait(snap, -1);
		uffd_snap_stats(snap, &p->st);
		uffd_snap_free(snap);
	}
	record_result(p, ret, p->start_time, s->changes);
	if (ret)
		reply_error(c, "-ERR save failed: %s", strerror(-ret));
	else
		reply_str(c, "+OK");
}

time_t persist_lastsave(struct server *s)
{
	return s->persist->lastsave;
}

bool persist_loading(struct server *s)
{
	return s->persist && s->persist->restore;
}

bool persist_busy(struct server *s)
{
	return s->persist && (s->persist->restore || s->persist->active);
}

void persist_info(struct server *s, char *buf, size_t cap, size_t *len)
{
	struct persist *p = s->persist;
	struct uffd_restore_stats rst = { 0 };
	int n;

	if (p->restore)
		uffd_restore_stats(p->restore, &rst);
	n = snprintf(buf + *len, cap - *len,
		     "loading:%d\r\n"
		     "async_loading:0\r\n"
		     "rdb_changes_since_last_save:%llu\r\n"
		     "rdb_bgsave_in_progress:%d\r\n"
		     "rdb_last_save_time:%lld\r\n"
		     "rdb_last_bgsave_status:%s\r\n"
		     "rdb_last_bgsave_time_sec:%lld\r\n"
		     "rdb_current_bgsave_time_sec:%lld\r\n"
		     "rdb_saves:%llu\r\n"
		     "aof_enabled:0\r\n"
		     "uffd_last_bgsave_pause_usec:%llu\r\n"
		     "uffd_last_bgsave_pause_wait_usec:%llu\r\n"
		     "uffd_last_bgsave_duration_usec:%llu\r\n"
		     "uffd_last_bgsave_bytes:%llu\r\n"
		     "uffd_last_bgsave_buffer_peak:%llu\r\n"
		     "uffd_last_bgsave_error:%s\r\n"
		     "uffd_bgsave_scheduled:%d\r\n"
		     "uffd_restore_in_progress:%d\r\n"
		     "uffd_restore_usec:%llu\r\n"
		     "uffd_restore_pages_faulted:%llu\r\n"
		     "uffd_restore_pages_prefetched:%llu\r\n",
		     p->restore ? 1 : 0,
		     (unsigned long long)s->changes,
		     p->active ? 1 : 0,
		     (long long)p->lastsave,
		     p->last_status ? "err" : "ok",
		     (long long)(p->saves || p->last_status ? p->last_time_sec : -1),
		     (long long)(p->active ? time(NULL) - p->start_time : -1),
		     (unsigned long long)p->saves,
		     (unsigned long long)p->last_pause_us,
		     (unsigned long long)p->last_pause_wait_us,
		     (unsigned long long)p->last_duration_us,
		     (unsigned long long)p->last_bytes,
		     (unsigned long long)p->last_buffer_peak,
		     p->last_status ? strerror(-p->last_status) : "",
		     p->scheduled ? 1 : 0,
		     p->restore ? 1 : 0,
		     (unsigned long long)((p->restore ? rst.duration_ns : p->restore_ns) / 1000),
		     (unsigned long long)(p->restore ? rst.faulted : p->restore_faulted),
		     (unsigned long long)(p->restore ? rst.prefetched : p->restore_prefetched));
	if (n > 0)
		*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* ---- start and stop ---------------------------------------------------------- */

static int restore_image(struct persist *p)
{
	struct server *s = p->s;
	uint64_t t0 = mono_ns(), len;
	unsigned char in;
	char *base;
	int ret;

	p->restore = uffd_restore_open(p->path, UFFD_RESTORE_LAZY);
	if (!p->restore) {
		ret = -errno;
		kv_log(s, "cannot restore %s: %s%s", p->path, strerror(-ret),
		       ret == -EEXIST ? " (something is mapped at the image's address)" : "");
		return ret;
	}
	if (uffd_restore_regions(p->restore) != 1) {
		kv_log(s, "%s is not a uffd-kv image (%d regions)", p->path,
		       uffd_restore_regions(p->restore));
		ret = -EBADMSG;
		goto out_close;
	}
	base = uffd_restore_addr(p->restore, 0);
	/* The root's page faults in here, from the image.  The region must be
	 * as long as the root says: its last page mapped, the next not (mincore
	 * answers from the page tables, without touching the pages). */
	len = ((struct arena_root *)base)->mapped;
	if (len < 2 * ARENA_PAGE || len % ARENA_PAGE ||
	    mincore(base + len - ARENA_PAGE, ARENA_PAGE, &in) ||
	    !mincore(base + len, ARENA_PAGE, &in))
		len = 0;
	ret = arena_adopt(&s->arena, base, len, s->cfg.maxmemory);
	if (ret) {
		kv_log(s, "%s is not a uffd-kv image", p->path);
		goto out_close;
	}
	kv_log(s, "restoring %s lazily at %p: %llu keys, %llu MiB, serving after %.3f ms",
	       p->path, base, (unsigned long long)dict_size(&s->arena),
	       (unsigned long long)(arena_mapped(&s->arena) >> 20), (mono_ns() - t0) / 1e6);
	return 0;
out_close:
	uffd_restore_close(p->restore, true);
	p->restore = NULL;
	return ret;
}

int persist_init(struct server *s)
{
	struct persist *p = calloc(1, sizeof(*p));
	struct stat sb;
	int ret;

	if (!p)
		return -ENOMEM;
	p->s = s;
	s->persist = p;
	p->lastsave = time(NULL);
	if (s->cfg.dir) {
		if (snprintf(p->path, sizeof(p->path), "%s/%s", s->cfg.dir, KV_DUMP_NAME) >=
		    (int)sizeof(p->path))
			return -ENAMETOOLONG;
		if (!s->cfg.no_restore && stat(p->path, &sb) == 0)
			return restore_image(p);
	}
	ret = arena_create(&s->arena, s->cfg.arena_base, 0, s->cfg.maxmemory);
	if (ret) {
		kv_log(s, "cannot map the arena at %#llx: %s", (unsigned long long)s->cfg.arena_base,
		       strerror(-ret));
		return ret;
	}
	dict_init(&s->arena);
	return 0;
}

void persist_stop(struct server *s)
{
	struct persist *p = s->persist;

	if (!p)
		return;
	__atomic_store_n(&p->cancel, 1, __ATOMIC_RELAXED);
	/* The saver may be about to ask for the pause: keep answering. */
	while (p->active && !__atomic_load_n(&p->done, __ATOMIC_ACQUIRE)) {
		server_pause_point(s);
		usleep(1000);
	}
	if (p->active) {
		pthread_join(p->thread, NULL);
		p->active = false;
		if (p->result != -ECANCELED)
			record_result(p, p->result, p->instant_time, p->changes_at_instant);
	}
	if (p->restore) {
		uffd_restore_close(p->restore, false);
		p->restore = NULL;
	}
}

void persist_free(struct server *s)
{
	free(s->persist);
	s->persist = NULL;
}
