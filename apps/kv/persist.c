/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Persistence: SAVE and BGSAVE as libuffd snapshots of the arena, and the
 * lazy restore of the last image at start.
 *
 * BGSAVE runs uffd_snap_begin() in a saver thread, so the event loop keeps
 * serving while every page is write-protected (precopy).  For the instant
 * the library calls our pause callback from that thread: it asks the loop
 * to stop at its next command boundary and waits until it has; the
 * library re-protects what the loop wrote meanwhile and resumes it.  The
 * loop announces each write of the table (uffd_snap_prepare_write), from
 * the moment the snapshot exists (uffd_snap_new, before the precopy):
 * before the instant that un-protects the page, after it it saves the
 * page first, in the loop's thread, instead of a fault that waits for
 * libuffd's thread.  A writer thread of the library streams the image.
 * The saver thread only waits for the result and wakes the loop, which
 * publishes it (INFO, LASTSAVE).
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
 * With --checkpoint-every, persistence is a chain of incremental
 * checkpoints instead (uffd/checkpoint.h, live: the loop is stopped for
 * the instant only, and the delta is written with copy-before-write):
 * ckpt-GEN-SEQ.uffd, a base then deltas of what changed, every interval
 * when something did; BGSAVE and SAVE take the next one at once.  The
 * checkpointer keeps the arena registered, so it replaces the snapshot.
 * After --checkpoint-chain deltas, or when the arena grew (its new pages
 * are not tracked), a new generation starts with a base, and the older
 * generations' files go once it is durable.
 *
 * At start, the newest image in --dir (dump.uffd or the newest checkpoint,
 * by time) is mapped at its recorded address with UFFD_RESTORE_LAZY: the
 * first GET faults in the pages it reads, served from the file, while
 * libuffd's prefetch thread streams the rest.  The arena's pointers are
 * valid as they are.  Saves wait until the restore is done (it holds the
 * arena's pages).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uffd/checkpoint.h>
#include <uffd/snapshot.h>

#include "dict.h"
#include "kv.h"

#define HEADROOM_MIN	(64ULL << 20)	/* room made before a save begins */
#define SAVE_RETRIES	3		/* the arena grew before the instant */
#define WAIT_SLICE_MS	100		/* the saver checks for a cancel */

enum save_kind { SAVE_SNAPSHOT, SAVE_CHECKPOINT };

struct persist {
	struct server *s;
	char path[PATH_MAX];		/* dump.uffd */
	char restored[PATH_MAX];	/* the image restored at start */
	pthread_t loop;			/* the event loop's thread */

	/* the lazy restore at start */
	struct uffd_restore *restore;
	uint64_t restore_ns;		/* how long it took, once done */
	uint64_t restore_faulted, restore_prefetched;

	/* the background save (the loop's side) */
	bool active, scheduled;
	int retries;
	uint64_t t_start;
	time_t start_time;
	/*
	 * The saver thread, made once (persist_init) and told what to do
	 * under work_lock: run a save (go), free what the loop let go of
	 * (freeing unmaps), or end (quit).  The loop makes no thread and
	 * unmaps nothing when a save starts or ends: each of those takes the
	 * process's mmap_lock for writing, and a reader of it (a monitor
	 * walking /proc/PID/smaps, a snapshot's protect) held the loop for
	 * 17 ms at a BGSAVE.
	 */
	pthread_t thread;
	bool thread_made;
	pthread_mutex_t work_lock;
	pthread_cond_t work_cond;
	bool go, quit, freeing;
	struct uffd_snap *free_snap;
	struct uffd_ckpt *free_ckpt;
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

	/* the snapshot being written, for announcing writes (set by the saver
	 * once begun; cleared and freed by the loop) */
	struct uffd_snap *snap;

	/* periodic checkpoints */
	int kind;			/* of the save in progress */
	struct uffd_ckpt *ckpt;		/* NULL: a new generation starts (set
					   by the saver, freed by the loop) */
	bool drop_ckpt;			/* the saver gave up on it: free it */
	uint64_t ckpt_len;		/* the arena it tracks */
	unsigned gen, seq;		/* next: ckpt-GEN-SEQ.uffd */
	char ckpt_path[PATH_MAX];
	uint64_t ckpt_last_ns;
	struct uffd_ckpt_stats cst;	/* the saver's, read once it is done */
	uint64_t checkpoints;

	/* what INFO and LASTSAVE tell */
	time_t lastsave;
	int last_status;
	int64_t last_time_sec;
	uint64_t saves;
	uint64_t last_pause_us, last_pause_wait_us, last_duration_us, last_bytes;
	uint64_t last_buffer_peak;
	uint64_t last_ckpt_pages, last_ckpt_copied;
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

	/* SAVE runs in the loop: it is stopped already, by construction */
	if (pthread_equal(pthread_self(), p->loop)) {
		p->pause_wait_ns = 0;
		p->grew = s->arena.grows != p->grows_at_start;
		p->changes_at_instant = s->changes;
		p->instant_time = time(NULL);
		return;
	}
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
	struct persist *p = arg;
	struct server *s = p->s;

	if (pthread_equal(pthread_self(), p->loop))
		return;
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->pause_req, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void save_snapshot(struct persist *p)
{
	UFFD_OPTS(uffd_snap_opts, o, .path = p->path, .regions = &p->region, .nregions = 1,
		  .buffer_bytes = p->s->cfg.snapshot_buffer, .pause = loop_pause,
		  .resume = loop_resume, .arg = p);
	struct uffd_snap *snap = uffd_snap_new(&o);
	int ret;

	if (!snap) {
		p->result = -errno;
		return;
	}
	/* The loop announces its writes from now on, the precopy's too:
	 * each un-protects its page itself instead of a fault waiting for
	 * libuffd's thread. */
	__atomic_store_n(&p->snap, snap, __ATOMIC_RELEASE);
	ret = uffd_snap_start(snap);
	if (ret) {
		p->result = ret;
		uffd_snap_stats(snap, &p->st);
		return;		/* freed by the loop */
	}
	if (p->grew)
		__atomic_store_n(&p->cancel, 1, __ATOMIC_RELAXED);
	while ((ret = uffd_snap_wait(snap, WAIT_SLICE_MS)) == -ETIMEDOUT)
		if (__atomic_load_n(&p->cancel, __ATOMIC_RELAXED))
			uffd_snap_cancel(snap);
	if (p->grew && (ret == 0 || ret == -ECANCELED))
		ret = -EAGAIN;		/* the image cannot be used: again */
	p->result = ret;
	uffd_snap_stats(snap, &p->st);
	/* freed by the loop, which may still be announcing a write */
}

/*
 * The next checkpoint; a new generation (a checkpointer over the arena as
 * it is now, and a base) when there is no checkpointer.  Freeing the
 * checkpointer abandons an image being written (no file is left).
 */
static void save_checkpoint(struct persist *p)
{
	UFFD_OPTS(uffd_ckpt_opts, o, .pause = loop_pause, .resume = loop_resume, .arg = p,
		  .buffer_bytes = p->s->cfg.snapshot_buffer);
	int ret;

	struct uffd_ckpt *ck;

	memset(&p->cst, 0, sizeof(p->cst));
	p->drop_ckpt = false;
	if (!p->ckpt) {
		ck = uffd_ckpt_new(&p->region, 1, &o);
		if (!ck) {
			p->result = -errno;
			return;
		}
		p->ckpt_len = p->region.len;
		__atomic_store_n(&p->ckpt, ck, __ATOMIC_RELEASE);	/* the loop announces */
	}
	ret = uffd_ckpt_begin(p->ckpt, p->ckpt_path);
	if (!ret) {
		if (p->grew)
			__atomic_store_n(&p->cancel, 1, __ATOMIC_RELAXED);
		while ((ret = uffd_ckpt_wait(p->ckpt, WAIT_SLICE_MS, &p->cst)) == -ETIMEDOUT)
			if (__atomic_load_n(&p->cancel, __ATOMIC_RELAXED))
				break;
	}
	if (ret == -ETIMEDOUT || p->grew) {
		p->drop_ckpt = true;	/* the loop frees it: no file is left */
		ret = p->grew ? -EAGAIN : -ECANCELED;
	}
	p->result = ret;
	p->st.pause_ns = p->cst.pause_ns;
	p->st.bytes = p->cst.bytes;
	p->st.buffer_peak_bytes = 0;
}

/* Free what the loop let go of (the saver's thread, or the loop's once
 * the saver has ended). */
static void free_released(struct uffd_snap *snap, struct uffd_ckpt *ck)
{
	uffd_snap_free(snap);
	uffd_ckpt_free(ck);
}

static void *saver_main(void *arg)
{
	struct persist *p = arg;

	pthread_mutex_lock(&p->work_lock);
	for (;;) {
		struct uffd_snap *snap = p->free_snap;
		struct uffd_ckpt *ck = p->free_ckpt;
		bool go = p->go;

		if (snap || ck) {
			/* First: a save starting may need the memory (a new
			 * checkpointer registers the arena the old one had). */
			p->free_snap = NULL;
			p->free_ckpt = NULL;
			p->freeing = true;
			pthread_mutex_unlock(&p->work_lock);
			free_released(snap, ck);
			pthread_mutex_lock(&p->work_lock);
			p->freeing = false;
			pthread_cond_broadcast(&p->work_cond);
			continue;
		}
		if (p->quit)
			break;
		if (!go) {
			pthread_cond_wait(&p->work_cond, &p->work_lock);
			continue;
		}
		p->go = false;
		pthread_mutex_unlock(&p->work_lock);
		if (p->kind == SAVE_CHECKPOINT)
			save_checkpoint(p);
		else
			save_snapshot(p);
		__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
		server_wake(p->s);
		pthread_mutex_lock(&p->work_lock);
	}
	pthread_mutex_unlock(&p->work_lock);
	return NULL;
}

/* Hand the saver a save to run, or what to free (a slot already taken:
 * freed here, which a save's end and start never do). */
static void saver_post(struct persist *p, bool go, struct uffd_snap *snap, struct uffd_ckpt *ck)
{
	if (!p->thread_made) {
		free_released(snap, ck);
		return;
	}
	pthread_mutex_lock(&p->work_lock);
	p->go |= go;
	if (snap && !p->free_snap) {
		p->free_snap = snap;
		snap = NULL;
	}
	if (ck && !p->free_ckpt) {
		p->free_ckpt = ck;
		ck = NULL;
	}
	pthread_cond_broadcast(&p->work_cond);
	pthread_mutex_unlock(&p->work_lock);
	free_released(snap, ck);
}

/* The saver ends, once it has freed what it was given (no save runs). */
static void saver_end(struct persist *p)
{
	if (!p->thread_made)
		return;
	pthread_mutex_lock(&p->work_lock);
	p->quit = true;
	pthread_cond_broadcast(&p->work_cond);
	pthread_mutex_unlock(&p->work_lock);
	pthread_join(p->thread, NULL);
	p->thread_made = false;
}

/* Until the saver has freed what it was given (a SAVE in the loop's own
 * thread registers the arena again). */
static void saver_drain(struct persist *p)
{
	if (!p->thread_made)
		return;
	pthread_mutex_lock(&p->work_lock);
	while (p->free_snap || p->free_ckpt || p->freeing)
		pthread_cond_wait(&p->work_cond, &p->work_lock);
	pthread_mutex_unlock(&p->work_lock);
}

/* ---- starting and finishing saves (the loop) -------------------------------------- */

static void set_region(struct persist *p)
{
	struct arena *a = &p->s->arena;

	p->region = (struct uffd_image_region){ arena_base(a), arena_mapped(a), 4096,
						UFFD_IMAGE_ANON };
}

/* arena.touch: a write the table is about to make, announced to libuffd */
static void announce_write(void *arg, void *addr, size_t len)
{
	struct persist *p = arg;
	struct uffd_snap *snap = __atomic_load_n(&p->snap, __ATOMIC_ACQUIRE);
	struct uffd_ckpt *ck;

	if (snap) {
		uffd_snap_prepare_write(snap, addr, len);
		return;
	}
	ck = __atomic_load_n(&p->ckpt, __ATOMIC_ACQUIRE);
	if (ck)
		uffd_ckpt_prepare_write(ck, addr, len);
}

/* What the saver left for the loop: the snapshot to free, a checkpointer
 * given up on (freeing it abandons its image). */
static void reap_saver(struct persist *p)
{
	struct uffd_snap *snap = p->snap;
	struct uffd_ckpt *ck = NULL;

	__atomic_store_n(&p->snap, NULL, __ATOMIC_RELEASE);
	if (p->drop_ckpt) {
		ck = p->ckpt;
		__atomic_store_n(&p->ckpt, NULL, __ATOMIC_RELEASE);
		p->drop_ckpt = false;
	}
	/* No announcement can use them now: the saver frees them. */
	saver_post(p, false, snap, ck);
	p->s->arena.no_resize = false;
}

static void ckpt_name(struct persist *p, char *buf, size_t len, unsigned gen, unsigned seq)
{
	snprintf(buf, len, "%s/ckpt-%08u-%04u.uffd", p->s->cfg.dir, gen, seq);
}

/* "ckpt-GEN-SEQ.uffd": 1 with gen and seq, else 0. */
static int parse_ckpt_name(const char *name, unsigned *gen, unsigned *seq)
{
	char tail[8];

	return sscanf(name, "ckpt-%8u-%4u%7s", gen, seq, tail) == 3 && !strcmp(tail, ".uffd");
}

/* Which checkpoint comes next: a new generation when the chain is long,
 * or the arena is not the one the checkpointer tracks. */
static void prepare_checkpoint(struct persist *p)
{
	if (p->ckpt && (p->seq >= (unsigned)p->s->cfg.checkpoint_chain + 1 ||
			p->region.len != p->ckpt_len)) {
		struct uffd_ckpt *ck = p->ckpt;

		__atomic_store_n(&p->ckpt, NULL, __ATOMIC_RELEASE);
		saver_post(p, false, NULL, ck);	/* freed before the next save */
	}
	if (!p->ckpt) {
		p->gen++;
		p->seq = 0;
	}
	ckpt_name(p, p->ckpt_path, sizeof(p->ckpt_path), p->gen, p->seq);
}

/* A base is durable: the older generations can go. */
static void remove_old_generations(struct persist *p)
{
	char path[PATH_MAX + 300];
	struct dirent *e;
	unsigned gen, seq;
	DIR *d = opendir(p->s->cfg.dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (parse_ckpt_name(e->d_name, &gen, &seq) && gen < p->gen) {
			snprintf(path, sizeof(path), "%s/%s", p->s->cfg.dir, e->d_name);
			unlink(path);
		}
	closedir(d);
}

/*
 * Room for the writes of a save's precopy, made between saves (an mmap)
 * so that a save starting finds it there: 1/16 of the arena, 64 MiB at
 * least.  If it cannot, the save's retry catches a growth.
 */
static void keep_headroom(struct persist *p)
{
	struct arena *a = &p->s->arena;
	uint64_t headroom = arena_mapped(a) / 16;

	if (headroom < HEADROOM_MIN)
		headroom = HEADROOM_MIN;
	arena_reserve(a, headroom);
}

static int start_bgsave(struct persist *p)
{
	struct server *s = p->s;
	struct arena *a = &s->arena;

	keep_headroom(p);		/* made already, unless it just grew */
	set_region(p);
	p->kind = s->cfg.checkpoint_ms ? SAVE_CHECKPOINT : SAVE_SNAPSHOT;
	if (p->kind == SAVE_CHECKPOINT)
		prepare_checkpoint(p);
	else
		a->no_resize = true;	/* rehashing would write every entry */
	p->grows_at_start = a->grows;
	p->grew = false;
	p->done = p->cancel = 0;
	p->result = 0;
	memset(&p->st, 0, sizeof(p->st));
	if (!p->retries) {
		p->t_start = mono_ns();
		p->start_time = time(NULL);
	}
	if (!p->thread_made) {
		a->no_resize = false;
		return -EAGAIN;		/* persist_init could not make it */
	}
	saver_post(p, true, NULL, NULL);
	p->active = true;
	p->scheduled = false;
	if (!p->retries && p->kind == SAVE_SNAPSHOT)
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
	if (p->kind == SAVE_CHECKPOINT) {
		p->last_ckpt_pages = p->cst.pages_written;
		p->last_ckpt_copied = p->cst.copied_before_write + p->cst.sync_writes;
	}
	if (!ret) {
		p->lastsave = instant;
		p->saves++;
		s->changes -= changes < s->changes ? changes : s->changes;
		if (p->kind == SAVE_CHECKPOINT) {
			p->checkpoints++;
			if (p->seq++ == 0)
				remove_old_generations(p);
		}
		kv_log(s, "saved %s: %.1f MiB in %.1f ms, the loop paused %.3f ms "
		       "(+%.3f ms to reach a command boundary)",
		       p->kind == SAVE_CHECKPOINT ? p->ckpt_path : p->path,
		       p->last_bytes / 1048576.0, p->last_duration_us / 1e3,
		       p->last_pause_us / 1e3, p->last_pause_wait_us / 1e3);
	} else {
		kv_log(s, "save to %s failed: %s (the previous image is untouched)",
		       p->kind == SAVE_CHECKPOINT ? p->ckpt_path : p->path, strerror(-ret));
	}
}

static void finish_bgsave(struct persist *p)
{
	reap_saver(p);
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
	if (s->cfg.checkpoint_ms && !p->active && !p->restore && s->changes &&
	    mono_ns() - p->ckpt_last_ns >= s->cfg.checkpoint_ms * 1000000ULL)
		p->scheduled = true;
	if (p->scheduled && !p->active && !p->restore) {
		p->ckpt_last_ns = mono_ns();
		if (start_bgsave(p))
			p->scheduled = false;
	}
	if (!p->active && !p->restore)
		keep_headroom(p);
}

/* SAVE and BGSAVE: somewhere to save, and no save already running (else
 * the client has its error). */
static bool may_save(struct persist *p, struct client *c)
{
	if (!p->path[0]) {
		reply_str(c, "-ERR no --dir was given: uffd-kv has nowhere to save");
		return false;
	}
	if (p->active) {
		reply_str(c, "-ERR Background save already in progress");
		return false;
	}
	return true;
}

void persist_bgsave(struct server *s, struct client *c)
{
	struct persist *p = s->persist;
	int ret;

	if (!may_save(p, c))
		return;
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

	if (!may_save(p, c))
		return;
	if (p->restore) {
		uffd_restore_wait(p->restore, -1);
		finish_restore(p);
		if (s->shutdown) {
			reply_str(c, "-ERR the restore failed");
			return;
		}
	}
	/* The loop is the caller: nothing writes until the image is done. */
	saver_drain(p);		/* the last save's checkpointer is gone */
	p->cancel = 0;
	set_region(p);
	p->t_start = mono_ns();
	p->start_time = time(NULL);
	p->pause_wait_ns = 0;
	memset(&p->st, 0, sizeof(p->st));
	p->kind = s->cfg.checkpoint_ms ? SAVE_CHECKPOINT : SAVE_SNAPSHOT;
	if (p->kind == SAVE_CHECKPOINT) {
		p->grows_at_start = s->arena.grows;
		prepare_checkpoint(p);
		saver_drain(p);
		save_checkpoint(p);	/* its pause callback is a no-op here */
		reap_saver(p);
		ret = p->result;
		p->ckpt_last_ns = mono_ns();
	} else {
		snap = uffd_snap_begin(&o);
		if (!snap) {
			ret = -errno;
		} else {
			ret = uffd_snap_wait(snap, -1);
			uffd_snap_stats(snap, &p->st);
			uffd_snap_free(snap);
		}
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
	return s->persist && (s->persist->restore || s->persist->active || s->persist->ckpt);
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
		     "uffd_restore_pages_prefetched:%llu\r\n"
		     "uffd_restored_from:%s\r\n"
		     "uffd_checkpoint_every_ms:%d\r\n"
		     "uffd_checkpoints:%llu\r\n"
		     "uffd_checkpoint_generation:%u\r\n"
		     "uffd_checkpoint_chain:%u\r\n"
		     "uffd_last_checkpoint_pages:%llu\r\n"
		     "uffd_last_checkpoint_copied_before_write:%llu\r\n",
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
		     (unsigned long long)(p->restore ? rst.prefetched : p->restore_prefetched),
		     p->restored,
		     s->cfg.checkpoint_ms,
		     (unsigned long long)p->checkpoints,
		     p->gen, p->seq,
		     (unsigned long long)p->last_ckpt_pages,
		     (unsigned long long)p->last_ckpt_copied);
	if (n > 0)
		*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* ---- start and stop ---------------------------------------------------------- */

static int restore_image(struct persist *p, const char *path)
{
	struct server *s = p->s;
	uint64_t t0 = mono_ns(), len;
	unsigned char in;
	char *base;
	int ret;

	snprintf(p->restored, sizeof(p->restored), "%s", path);
	p->restore = uffd_restore_open(path, UFFD_RESTORE_LAZY);
	if (!p->restore) {
		ret = -errno;
		kv_log(s, "cannot restore %s: %s%s", path, strerror(-ret),
		       ret == -EEXIST ? " (something is mapped at the image's address)" : "");
		return ret;
	}
	if (uffd_restore_regions(p->restore) != 1) {
		kv_log(s, "%s is not a uffd-kv image (%d regions)", path,
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
		kv_log(s, "%s is not a uffd-kv image", path);
		goto out_close;
	}
	kv_log(s, "restoring %s lazily at %p: %llu keys, %llu MiB, serving after %.3f ms",
	       path, base, (unsigned long long)dict_size(&s->arena),
	       (unsigned long long)(arena_mapped(&s->arena) >> 20), (mono_ns() - t0) / 1e6);
	return 0;
out_close:
	uffd_restore_close(p->restore, true);
	p->restore = NULL;
	return ret;
}

/*
 * The newest image in the directory: dump.uffd or the newest checkpoint
 * (by generation and sequence), whichever was committed last.  Also sets
 * the next checkpoint generation past every one there.  0 and path, or
 * -ENOENT.
 */
static int newest_image(struct persist *p, char *path, size_t len)
{
	struct stat dump, ck;
	unsigned gen, seq, best_gen = 0, best_seq = 0;
	bool have_dump = stat(p->path, &dump) == 0, have_ck = false;
	struct dirent *e;
	DIR *d = opendir(p->s->cfg.dir);

	while (d && (e = readdir(d))) {
		if (!parse_ckpt_name(e->d_name, &gen, &seq))
			continue;
		if (!have_ck || gen > best_gen || (gen == best_gen && seq > best_seq)) {
			best_gen = gen;
			best_seq = seq;
			have_ck = true;
		}
	}
	if (d)
		closedir(d);
	p->gen = best_gen;	/* the next generation is past it */
	if (have_ck) {
		ckpt_name(p, path, len, best_gen, best_seq);
		if (stat(path, &ck))
			have_ck = false;
	}
	if (have_ck && (!have_dump || ck.st_mtim.tv_sec > dump.st_mtim.tv_sec ||
			(ck.st_mtim.tv_sec == dump.st_mtim.tv_sec &&
			 ck.st_mtim.tv_nsec >= dump.st_mtim.tv_nsec)))
		return 0;
	if (!have_dump)
		return -ENOENT;
	snprintf(path, len, "%s", p->path);
	return 0;
}

int persist_init(struct server *s)
{
	struct persist *p = calloc(1, sizeof(*p));
	char image[PATH_MAX];
	int ret;

	if (!p)
		return -ENOMEM;
	p->s = s;
	p->loop = pthread_self();
	s->persist = p;
	pthread_mutex_init(&p->work_lock, NULL);
	pthread_cond_init(&p->work_cond, NULL);
	ret = -pthread_create(&p->thread, NULL, saver_main, p);
	if (ret) {
		kv_log(s, "cannot start the saver thread: %s", strerror(-ret));
		return ret;
	}
	p->thread_made = true;
	p->lastsave = time(NULL);
	p->ckpt_last_ns = mono_ns();
	if (s->cfg.dir) {
		if (snprintf(p->path, sizeof(p->path), "%s/%s", s->cfg.dir, KV_DUMP_NAME) >=
		    (int)sizeof(p->path))
			return -ENAMETOOLONG;
		if (newest_image(p, image, sizeof(image)) == 0 && !s->cfg.no_restore) {
			ret = restore_image(p, image);
			goto out;
		}
	}
	ret = arena_create(&s->arena, s->cfg.arena_base, 0, s->cfg.maxmemory);
	if (ret) {
		kv_log(s, "cannot map the arena at %#llx: %s", (unsigned long long)s->cfg.arena_base,
		       strerror(-ret));
		return ret;
	}
	dict_init(&s->arena);
out:
	s->arena.touch = announce_write;
	s->arena.touch_arg = p;
	return ret;
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
		reap_saver(p);
		p->active = false;
		if (p->result != -ECANCELED)
			record_result(p, p->result, p->instant_time, p->changes_at_instant);
	}
	saver_end(p);
	if (p->restore) {
		uffd_restore_close(p->restore, false);
		p->restore = NULL;
	}
	s->arena.touch = NULL;
	uffd_ckpt_free(p->ckpt);	/* un-protects the arena */
	p->ckpt = NULL;
}

void persist_free(struct server *s)
{
	struct persist *p = s->persist;

	if (!p)
		return;
	saver_end(p);
	pthread_mutex_destroy(&p->work_lock);
	pthread_cond_destroy(&p->work_cond);
	free(p);
	s->persist = NULL;
}
