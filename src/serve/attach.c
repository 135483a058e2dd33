/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client side of the page server: uffd_serve_attach() and the thread
 * that watches the server for the rest of the restore (and its helper,
 * the starter).
 *
 * The client keeps its own reference to the userfaultfd it handed over,
 * so the kernel keeps the faults of a dead server's client pending rather
 * than turning them into zero pages, and a pidfd of the server, which
 * becomes readable when it dies.  The watcher thread reads what the
 * server says - the changes of the memory map it saw (the client's own
 * mremap, munmap, madvise), the counters it is asked for, "done" - and
 * keeps a standby engine (engine.h) in step with those changes.  If the
 * server dies, or closes the connection, before saying "done", the
 * watcher starts that engine on the client's own userfaultfd: it wakes
 * every region (faults the server had read but not answered are raised
 * again), serves the faults and fills the rest from the source the server
 * named, opened read-only here, or poisons the missing pages when the
 * source cannot be opened (the program gets SIGBUS, never a hang).
 *
 * The watcher never waits for what a fork of this process may hold: once
 * the server is dead it is the one reader of our userfaultfd, and glibc's
 * fork() holds the allocator's locks until its FORK is read - by the
 * server before, by nobody else after.  It never allocates, and neither
 * does anyone while holding a lock it takes.  What a take-over must
 * allocate for (checking the image, starting the engine's threads) is
 * done by the starter, a thread started with the client, while the
 * watcher reads our messages (take_over()).
 *
 * A server with a shared page cache sends a read-only fd of it with its
 * LAYOUT; the regions are then private mappings of that file at their
 * source offsets, registered for MINOR faults too (the page is in the
 * cache, just not mapped here), unless this process declines it or its
 * kernel has no MINOR faults on shmem.  The fallback has no cache to put
 * pages in: it copies them, which makes them this process's own.
 *
 * Forked children: the server passes each child's userfaultfd on with the
 * FORK (protocol version 2), and the watcher keeps it, with the child's
 * memory map as the server reports its changes: a child's pages that are
 * still missing are, by construction, the source's (or zero where it
 * gave them back), so if the server dies the fallback serves and fills
 * the children too - first, since a child has nobody else - and the
 * kernel never hands a child a zero page for one it never got.  Nobody
 * lets go of a live child before it is complete: a detach waits for the
 * server (or the fallback) to finish the children.
 *
 * What a fallback cannot know: an event the server read but died before
 * reporting (the notes carry sequence numbers: one that never came makes
 * the fallback poison instead of serve), and a child forked after this
 * process exited - once the parent and the server are both gone, a
 * child's pages the server had not filled have nobody left to serve them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uffd/serve.h>

#include "engine.h"
#include "frame_io.h"
#include "proto.h"
#include "source.h"
#include "util/clock.h"
#include "util/mmalloc.h"
#include "util/opts.h"
#include "util/sock.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define DEFAULT_TIMEOUT_MS	5000
#define STATS_TIMEOUT_MS	1000
/* A detach waits this long for the server to finish the children (while
 * it lives; then the fallback does). */
#define BYE_TIMEOUT_MS		60000
#define RX_CAP			(SERVE_HDR + SERVE_MAX_PAYLOAD)
/* Children's fds received and not yet matched with their FORK frames. */
#define FDQ_MAX			64
#define PRUNE_MS		1000
/* Messages read at once by a take-over before its engine starts. */
#define UNSERVED_BATCH		64

/* The starter's steps (take_over()), each set by the thread named. */
enum {
	STARTER_IDLE,		/* it opened the source, or is opening it */
	STARTER_GO,		/* the watcher: the server is gone */
	STARTER_READY,		/* the starter: the engine's handler is made */
	STARTER_CHILDREN,	/* the watcher: the root is served */
	STARTER_DONE,		/* the starter: the kept children are served */
	STARTER_QUIT,		/* client_free(): the starter's end */
};

/* What the server requires of a client's userfaultfd, and what helps. */
#define REQUIRED_FEATURES (UFFD_F(UFFD_FEAT_EVENT_REMOVE) | UFFD_F(UFFD_FEAT_EVENT_REMAP) | \
			   UFFD_F(UFFD_FEAT_EVENT_UNMAP))
#define WANTED_FEATURES (UFFD_F(UFFD_FEAT_EVENT_FORK) | UFFD_F(UFFD_FEAT_POISON))

struct uffd_serve_client {
	struct uffd_serve_attach_opts o;
	char *fallback_path;
	int sock, pidfd, stop_efd;
	struct uffd u;
	uint64_t features;		/* of u, as negotiated */
	struct serve_layout layout;
	int nregions;
	struct serve_mapping *maps;	/* as the server was told, by address */
	uint64_t pages;
	bool shared;			/* mapped from the server's shared cache */
	struct serve_engine e;		/* standby, then the fallback */
	bool engine_ready;
	struct serve_source *src;	/* opened by the starter */
	int src_err;
	bool src_trusted;		/* serve_source_no_alloc() took */
	pthread_t watcher;
	bool watcher_started;
	pthread_t starter;		/* see take_over() */
	void *starter_stack;
	bool starter_started;
	int starter_efd;		/* readable: the starter moved on */
	struct uffd fallback_u;		/* for the starter to hand the engine */
	pthread_mutex_t lock;		/* the fields below, and sends */
	pthread_cond_t cond;
	pthread_cond_t starter_cond;	/* starter_state changed */
	int starter_state;		/* STARTER_* */
	int starter_ret;		/* serve_engine_prepare()'s */
	bool done, fallback, finish;	/* finish: detach asks to complete here */
	int error;
	bool stats_waiting;
	uint64_t stats_gen;
	struct serve_counts server;	/* as last reported */
	uint64_t t0, t_done;
	struct serve_rx rx;
	uint32_t version;		/* of the protocol, as the server chose */
	uint64_t seq;			/* of the last note */
	int fdq[FDQ_MAX], nfdq;		/* fds that came with FORK notes */
};

/* ---- the handshake --------------------------------------------------- */

static int connect_to(const char *path, uint64_t deadline)
{
	struct sockaddr_un addr;
	int fd, ret;

	ret = uffd__unix_addr(&addr, path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A full backlog says EAGAIN for a Unix socket: try again. */
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		ret = -errno;
		if ((ret != -EAGAIN && ret != -EINTR) || (deadline && mono_ns() > deadline)) {
			close(fd);
			return ret == -EAGAIN ? -ETIMEDOUT : ret;
		}
		usleep(1000);
	}
	return fd;
}

/*
 * The next frame from the server into f (valid until the next call):
 * 0, or -errno (-ECONNRESET: closed).  Without wait it does not wait:
 * -EAGAIN when no whole frame is there yet.
 */
static int read_frame(struct uffd_serve_client *c, struct serve_frame *f,
		      uint64_t deadline, bool wait)
{
	int ret, fd;

	for (;;) {
		ret = serve_rx_take(&c->rx, f);
		if (ret)
			return ret < 0 ? ret : 0;
		ret = serve_rx_more(&c->rx, c->sock, -1, deadline, wait, &fd);
		if (fd >= 0) {
			if (c->nfdq < FDQ_MAX)
				c->fdq[c->nfdq++] = fd;
			else
				close(fd);	/* its FORK will find none */
		}
		if (ret)
			return ret == -ETIMEDOUT && !wait ? -EAGAIN : ret;
	}
}

/* A refusal: its errno (and the reason, which the caller cannot get). */
static int answer_status(const struct serve_frame *f)
{
	struct serve_answer a;

	if (uffd__serve_answer_get(f, &a))
		return -EBADMSG;
	return a.status;
}

/* The regions: private anonymous memory, or private mappings of the
 * shared cache (cache_fd >= 0) at their source offsets. */
static int map_regions(struct uffd_serve_client *c, const struct serve_mapping *ext,
		       int cache_fd)
{
	uint32_t i;

	for (i = 0; i < c->layout.nextents; i++) {
		bool anywhere = (c->o.flags & UFFD_SERVE_ANYWHERE) || !ext[i].addr;
		void *want = anywhere ? NULL : (void *)(uintptr_t)ext[i].addr;
		int flags = MAP_PRIVATE | (anywhere ? 0 : MAP_FIXED_NOREPLACE) |
			    (cache_fd >= 0 ? 0 : MAP_ANONYMOUS);
		void *p = mmap(want, ext[i].len, PROT_READ | PROT_WRITE, flags, cache_fd,
			       cache_fd >= 0 ? (off_t)ext[i].offset : 0);

		if (p == MAP_FAILED)
			return -errno;
		c->maps[i] = ext[i];
		c->maps[i].addr = (uintptr_t)p;
		c->nregions = i + 1;
		if (want && p != want)
			return -EEXIST;		/* a kernel without NOREPLACE */
		c->pages += ext[i].len / SERVE_PAGE;
	}
	return 0;
}

static int handshake(struct uffd_serve_client *c, uint64_t deadline)
{
	struct serve_hello h = { SERVE_PROTO_MIN, UFFD_SERVE_PROTO_VERSION, SERVE_PAGE };
	uint8_t hello[SERVE_HELLO_SIZE], *map;
	struct serve_mapping *ext;
	struct serve_frame f;
	int cache_fd = -1;
	uint32_t i;
	int ret;

	uffd__serve_hello_put(hello, &h);
	ret = serve_frame_send(c->sock, SF_HELLO, hello, sizeof(hello), -1, deadline);
	/* A server that refuses at once (this uid) answers and closes
	 * before reading: the answer may be there even if the send failed. */
	i = read_frame(c, &f, deadline, !ret);
	if (i)
		return ret ? ret : (int)i;
	if (f.type == SF_ANSWER)
		return answer_status(&f) ?: -EBADMSG;
	ext = calloc(UFFD_SERVE_MAX_REGIONS, sizeof(*ext));
	c->maps = calloc(UFFD_SERVE_MAX_REGIONS, sizeof(*c->maps));
	if (!ext || !c->maps) {
		free(ext);
		return -ENOMEM;
	}
	ret = uffd__serve_layout_get(&f, &c->layout, ext, UFFD_SERVE_MAX_REGIONS);
	if (!ret && (c->layout.version < SERVE_PROTO_MIN ||
		     c->layout.version > UFFD_SERVE_PROTO_VERSION))
		ret = -EPROTONOSUPPORT;
	c->version = c->layout.version;
	for (i = 0; !ret && i < c->layout.nextents; i++)
		if (ext[i].page_size != SERVE_PAGE || !ext[i].len || ext[i].len % SERVE_PAGE)
			ret = -EBADMSG;
	/* A shared cache: its fd came with LAYOUT (and only then). */
	if (!ret && (c->layout.flags & SERVE_LAYOUT_SHARED)) {
		if (c->version < 2 || c->nfdq != 1)
			ret = -EBADMSG;
		else
			cache_fd = c->fdq[--c->nfdq];
	}
	if (!ret && c->nfdq)
		ret = -EBADMSG;
	if (cache_fd >= 0 && (c->o.flags & UFFD_SERVE_PRIVATE)) {
		close(cache_fd);
		cache_fd = -1;
	}
	if (!ret)
		ret = uffd_open(&c->u, REQUIRED_FEATURES, WANTED_FEATURES |
				(cache_fd >= 0 ? UFFD_F(UFFD_FEAT_MINOR_SHMEM) : 0),
				UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY);
	/* Served from the cache by MINOR faults: without them, by copy. */
	if (!ret && cache_fd >= 0 && !(c->u.features & UFFD_F(UFFD_FEAT_MINOR_SHMEM))) {
		close(cache_fd);
		cache_fd = -1;
	}
	c->shared = cache_fd >= 0;
	if (!ret)
		ret = map_regions(c, ext, cache_fd);
	if (cache_fd >= 0)
		close(cache_fd);	/* the mappings hold it */
	free(ext);
	if (ret)
		return ret;
	c->features = c->u.features;
	for (i = 0; i < (uint32_t)c->nregions; i++) {
		ret = uffd_register(&c->u, (void *)(uintptr_t)c->maps[i].addr, c->maps[i].len,
				    UFFD_REG_MISSING | (c->shared ? UFFD_REG_MINOR : 0), NULL);
		if (ret)
			return ret;
	}
	map = malloc(uffd__serve_map_size(c->nregions));
	if (!map)
		return -ENOMEM;
	uffd__serve_map_put(map, c->maps, c->nregions, c->shared ? SERVE_MAP_SHARED : 0);
	ret = serve_frame_send(c->sock, SF_MAP, map, uffd__serve_map_size(c->nregions),
			       c->u.fd, deadline);
	free(map);
	if (ret)
		return ret;
	/* Whatever follows (notes) stays in rx for the watcher. */
	ret = read_frame(c, &f, deadline, true);
	if (ret)
		return ret;
	if (f.type != SF_ANSWER)
		return -EBADMSG;
	return answer_status(&f);
}

static int server_pidfd(int sock)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof(int);
	int fd = -1;

	if (!getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) && fd >= 0)
		return fd;
	len = sizeof(cred);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid <= 0)
		return -1;
	return (int)syscall(SYS_pidfd_open, cred.pid, 0);
}

/* ---- the watcher ---------------------------------------------------- */

static void set_done(struct uffd_serve_client *c, int error)
{
	pthread_mutex_lock(&c->lock);
	if (!c->done && !c->error) {
		c->error = error;
		c->done = !error;
		c->t_done = mono_ns();
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void open_fallback_source(struct uffd_serve_client *c)
{
	const char *path = c->fallback_path ? c->fallback_path : c->layout.path;
	bool raw = c->layout.flags & SERVE_LAYOUT_RAW;

	c->src_err = -ENOENT;
	if ((c->o.flags & UFFD_SERVE_NO_FALLBACK) || !*path)
		return;
	c->src = serve_source_open(raw ? NULL : path, raw ? path : NULL);
	if (!c->src) {
		c->src_err = -errno;
		return;
	}
	if (c->src->id != c->layout.source_id || c->src->size != c->layout.source_size) {
		/* Not what the server served: poisoning beats wrong memory. */
		serve_source_close(c->src);
		c->src = NULL;
		c->src_err = -ESTALE;
		return;
	}
	c->src_err = 0;
}

/*
 * A note of the server: the standby engine follows it.  In version 2
 * every note has the next sequence number; one missing (the server could
 * not send it) or one that cannot be followed leaves the standby inexact.
 */
static void apply_note(struct uffd_serve_client *c, const struct serve_frame *f)
{
	struct serve_event ev;
	int fd = -1;

	if (uffd__serve_event_get(f, &ev)) {
		serve_engine_set_inexact(&c->e);
		return;
	}
	if (c->version >= 2 && ev.seq != ++c->seq) {
		serve_engine_set_inexact(&c->e);
		c->seq = ev.seq;
	}
	if (ev.type == SERVE_EV_FORK && c->nfdq) {
		fd = c->fdq[0];
		memmove(c->fdq, c->fdq + 1, --c->nfdq * sizeof(int));
	}
	serve_engine_apply(&c->e, &ev, fd);
	/* Children that exited hold nothing up: let their fds go. */
	if (ev.type == SERVE_EV_FORK)
		serve_engine_drop_children(&c->e, false);
}

/* Frames that arrived: 0, or -ECONNRESET once the server closed. */
static int read_notes(struct uffd_serve_client *c)
{
	struct serve_frame f;
	struct serve_counts k;
	int ret;

	for (;;) {
		ret = read_frame(c, &f, 0, false);
		if (ret == -EAGAIN)
			return 0;
		if (ret)
			return ret;
		switch (f.type) {
		case SF_EVENT:
			apply_note(c, &f);
			break;
		case SF_STATS:
		case SF_DONE:
			if (uffd__serve_counts_get(&f, &k))
				break;
			pthread_mutex_lock(&c->lock);
			c->server = k;
			c->stats_gen++;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			if (f.type == SF_DONE) {
				/* The children are complete too: nothing to keep. */
				serve_engine_drop_children(&c->e, true);
				set_done(c, 0);
			}
			break;
		default:
			break;		/* SF_BYE and anything newer */
		}
	}
}

static bool is_done(struct uffd_serve_client *c)
{
	bool done;

	pthread_mutex_lock(&c->lock);
	done = c->done;
	pthread_mutex_unlock(&c->lock);
	return done;
}

/* ---- the starter and the take-over --------------------------------------- */

/* The starter's state (and its engine's error); under the lock, so what
 * the starter wrote before is seen. */
static int starter_state(struct uffd_serve_client *c, int *ret)
{
	int state;

	pthread_mutex_lock(&c->lock);
	state = c->starter_state;
	if (ret)
		*ret = c->starter_ret;
	pthread_mutex_unlock(&c->lock);
	return state;
}

/* The watcher's (or client_free()'s) word to the starter.  QUIT stays. */
static void starter_set(struct uffd_serve_client *c, int state)
{
	pthread_mutex_lock(&c->lock);
	if (c->starter_state != STARTER_QUIT)
		c->starter_state = state;
	pthread_cond_broadcast(&c->starter_cond);
	pthread_mutex_unlock(&c->lock);
}

/* The starter's own: say state (unless told to quit) and wake the watcher. */
static void starter_say(struct uffd_serve_client *c, int state, int ret)
{
	uint64_t one = 1;

	pthread_mutex_lock(&c->lock);
	if (c->starter_state != STARTER_QUIT) {
		c->starter_state = state;
		c->starter_ret = ret;
	}
	pthread_mutex_unlock(&c->lock);
	/* An eventfd write of 1 cannot fail short of overflow. */
	if (write(c->starter_efd, &one, sizeof(one)) != sizeof(one)) {
	}
}

/* The starter waits while the state is this one: the state then. */
static int starter_wait(struct uffd_serve_client *c, int state)
{
	int now;

	pthread_mutex_lock(&c->lock);
	while (c->starter_state == state)
		pthread_cond_wait(&c->starter_cond, &c->lock);
	now = c->starter_state;
	pthread_mutex_unlock(&c->lock);
	return now;
}

/*
 * The starter: a thread of the client's, started with it, that does what
 * a take-over needs and may wait for a fork of this process - whatever
 * allocates.  It opens the source at once; when the server is gone, it
 * checks the source (an image is read whole) and makes the engine's
 * handler (starting its thread), then starts the handlers of the kept
 * children (a thread each).  Meanwhile the watcher reads the client's
 * userfaultfd, so a fork that holds the allocator goes on.
 */
static void *starter_main(void *arg)
{
	struct uffd_serve_client *c = arg;
	int ret;

	open_fallback_source(c);
	if (starter_wait(c, STARTER_IDLE) != STARTER_GO)
		return NULL;
	/* Reads without allocating from now on, of an image whose index is
	 * checked here; one that fails the check is not read at all. */
	c->src_trusted = c->src && !serve_source_no_alloc(c->src);
	ret = serve_engine_prepare(&c->e, &c->fallback_u);
	starter_say(c, STARTER_READY, ret);
	if (starter_wait(c, STARTER_READY) != STARTER_CHILDREN)
		return NULL;
	serve_engine_start_children(&c->e, true);
	starter_say(c, STARTER_DONE, 0);
	return NULL;
}

/* Messages of the root nobody will serve now, applied to the standby
 * (before its engine starts): 0, or -errno. */
static int read_unserved(struct uffd_serve_client *c, struct uffd *u)
{
	struct uffd_event ev[UNSERVED_BATCH];
	int i, n;

	while ((n = uffd_read_events(u, ev, UNSERVED_BATCH, 0)) > 0)
		for (i = 0; i < n; i++)
			serve_engine_apply_unread(&c->e, &ev[i]);
	return n;
}

/*
 * Wait until the starter is past state, reading the root's messages
 * meanwhile: with u, before the engine starts (read_unserved()), without,
 * served by the engine (the root's faults and events only).
 */
static void wait_for_starter(struct uffd_serve_client *c, int state, struct uffd *u)
{
	struct pollfd p[2] = {
		{ .fd = u ? u->fd : c->e.u.fd, .events = POLLIN },
		{ .fd = c->starter_efd, .events = POLLIN },
	};
	uint64_t n;

	while (starter_state(c, NULL) == state) {
		if (p[0].fd >= 0 && (u ? read_unserved(c, u) : serve_engine_dispatch(&c->e)) < 0)
			p[0].fd = -1;	/* cannot be read: only the starter's word */
		if (starter_state(c, NULL) != state)
			break;
		if (poll(p, 2, -1) > 0 && (p[1].revents & POLLIN) &&
		    read(c->starter_efd, &n, sizeof(n)) < 0) {
		}
	}
}

static void fatal_self(void *arg)
{
	(void)arg;
	/* A page of ours cannot be read and cannot be poisoned. */
	kill(getpid(), SIGBUS);
}

/*
 * The server is gone before the end: serve ourselves to the end.
 *
 * This thread is then the one that reads our userfaultfd, and glibc's
 * fork() holds the allocator's locks (and stdio's and atfork's) until its
 * FORK is read: a fork of ours may be waiting for that now - the server
 * died before reading it - or start at any moment.  So this thread waits
 * for nothing a fork may hold, and what does (checking the image, starting
 * threads) is the starter's, while this thread reads: first the messages
 * nobody will serve, applied to the standby as the server's notes would
 * have been (a FORK's child is kept, a fault is raised again later),
 * until the engine's handler is made; then, with the root's spans
 * registered and woken, the root's messages through the engine, until
 * the kept children have their threads; then everything.
 */
static void take_over(struct uffd_serve_client *c)
{
	struct pollfd stop = { .fd = c->stop_efd, .events = POLLIN };
	struct uffd u = c->u;
	int ret;

	pthread_mutex_lock(&c->lock);
	c->fallback = true;
	close(c->sock);
	c->sock = -1;
	pthread_mutex_unlock(&c->lock);
	c->e.o.fatal = fatal_self;
	c->fallback_u = c->u;
	c->u.fd = -1;			/* the engine owns it from here */
	starter_set(c, STARTER_GO);
	wait_for_starter(c, STARTER_GO, &u);
	if (starter_state(c, &ret) != STARTER_READY || ret) {
		set_done(c, ret ? ret : -ECANCELED);
		return;
	}
	/* A change we missed: what is left cannot be told from the source
	 * any more - poison it rather than guess.  The engine's thread (this
	 * one) allocates nothing (engine.h), and nor do its reads of the
	 * source: an image whose index could not be checked is not read. */
	c->e.o.src = serve_engine_inexact(&c->e) || !c->src_trusted ? NULL : c->src;
	ret = serve_engine_start_root(&c->e, true, NULL);
	if (ret) {
		set_done(c, ret);
		return;
	}
	starter_set(c, STARTER_CHILDREN);
	/* Poisoning only: the fill marks every missing page, so the memory
	 * left is whole in its way - each such page raises SIGBUS. */
	if (!c->e.o.src)
		set_done(c, -EIO);
	wait_for_starter(c, STARTER_CHILDREN, NULL);
	for (;;) {
		ret = serve_engine_run(&c->e, &stop, 1);
		if (ret == ENGINE_DONE) {
			set_done(c, 0);
			return;
		}
		if (ret < 0) {
			set_done(c, ret);
			return;
		}
		/* Asked to stop: a detach that unmaps leaves nothing of ours
		 * to serve, but a forked child's memory is finished first;
		 * one that keeps the memory waits for done. */
		if (stop.revents) {
			pthread_mutex_lock(&c->lock);
			ret = !c->finish;
			pthread_mutex_unlock(&c->lock);
			if (ret)
				serve_engine_finish(&c->e, false);
			stop.fd = -1;
		}
	}
}

/*
 * Tell the server to stop serving us, and wait until it has: after its
 * answer it reads nothing more from our fd.  It finishes our forked
 * children first (that takes as long as filling them); if it dies
 * meanwhile, or does not answer in BYE_TIMEOUT_MS, the fallback serves
 * what is left, the children's too.  true: the server answered.
 */
static bool say_bye(struct uffd_serve_client *c)
{
	uint64_t deadline = uffd__deadline_ms(BYE_TIMEOUT_MS);
	struct serve_frame f;

	if (serve_frame_send(c->sock, SF_BYE, NULL, 0, -1, deadline))
		return false;
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = c->pidfd, .events = POLLIN },
		};
		int ret = read_frame(c, &f, 0, false);

		if (ret == -EAGAIN) {
			if (mono_ns() >= deadline)
				return false;
			if (poll(p, c->pidfd >= 0 ? 2 : 1, 100) > 0 && p[1].revents &&
			    !(p[0].revents & POLLIN))
				return false;	/* dead, and nothing more to read */
			continue;
		}
		if (ret)
			return false;
		if (f.type == SF_EVENT) {
			apply_note(c, &f);
		} else if (f.type == SF_DONE) {
			serve_engine_drop_children(&c->e, true);
			set_done(c, 0);
		} else if (f.type == SF_BYE) {
			/* It finished the children before answering. */
			serve_engine_drop_children(&c->e, true);
			return true;
		}
	}
}

static void *watcher_main(void *arg)
{
	struct uffd_serve_client *c = arg;

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = c->stop_efd, .events = POLLIN },
			{ .fd = c->pidfd, .events = POLLIN },
		};
		bool finish;
		int ret;

		ret = read_notes(c);
		if (is_done(c))
			return NULL;
		if (ret) {		/* the server closed the connection */
			take_over(c);
			return NULL;
		}
		/* With children's fds kept, look now and then for exited ones. */
		ret = poll(p, c->pidfd >= 0 ? 3 : 2, serve_engine_children(&c->e) ? PRUNE_MS : -1);
		if (ret < 0 && errno != EINTR)
			continue;
		if (ret == 0)
			serve_engine_drop_children(&c->e, false);
		if (p[1].revents) {
			pthread_mutex_lock(&c->lock);
			finish = c->finish;
			pthread_mutex_unlock(&c->lock);
			if (!finish)
				return NULL;
			say_bye(c);
			if (!is_done(c))
				take_over(c);
			return NULL;
		}
		if (p[2].revents) {
			/* Dead: what it sent before dying is still to read. */
			read_notes(c);
			if (!is_done(c))
				take_over(c);
			return NULL;
		}
	}
}

/* ---- the API ------------------------------------------------------------ */

static void client_free(struct uffd_serve_client *c, bool unmap)
{
	int i;

	if (c->starter_started) {
		starter_set(c, STARTER_QUIT);
		/* A starter still opening the source may wait for a fork of
		 * ours whose FORK nobody reads any more (a dead server's):
		 * closing our userfaultfd lets that fork go on. */
		uffd_close(&c->u);
		mm_thread_join(c->starter, c->starter_stack);
	}
	if (c->engine_ready)
		serve_engine_release(&c->e);
	uffd_close(&c->u);
	if (c->sock >= 0)
		close(c->sock);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->stop_efd >= 0)
		close(c->stop_efd);
	for (i = 0; unmap && i < c->nregions; i++)
		munmap((void *)(uintptr_t)c->maps[i].addr, c->maps[i].len);
	for (i = 0; i < c->nfdq; i++)
		close(c->fdq[i]);
	serve_source_close(c->src);
	if (c->starter_efd >= 0)
		close(c->starter_efd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	pthread_cond_destroy(&c->starter_cond);
	free(c->maps);
	serve_rx_free(&c->rx);
	free(c->fallback_path);
	free(c);
}

struct uffd_serve_client *uffd_serve_attach(const struct uffd_serve_attach_opts *o)
{
	struct serve_engine_opts eo = { .fill = true };
	struct uffd_serve_client *c;
	pthread_condattr_t ca;
	uint64_t deadline;
	int ret;

	if (!o) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->sock = c->pidfd = c->stop_efd = c->starter_efd = -1;
	c->u.fd = c->fallback_u.fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->starter_cond, NULL);
	/* Deadlines below are CLOCK_MONOTONIC: immune to the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	c->t0 = mono_ns();
	ret = uffd__load_opts(&c->o, o, struct uffd_serve_attach_opts, fallback_path,
			      fallback_path);
	if (!ret && (!c->o.socket_path || c->o.timeout_ms < 0 ||
		     (c->o.flags & ~(UFFD_SERVE_ANYWHERE | UFFD_SERVE_NO_FALLBACK |
				     UFFD_SERVE_PRIVATE))))
		ret = -EINVAL;
	if (ret)
		goto fail;
	if (c->o.fallback_path && !(c->fallback_path = strdup(c->o.fallback_path))) {
		ret = -ENOMEM;
		goto fail;
	}
	c->o.fallback_path = NULL;
	ret = serve_rx_init(&c->rx, RX_CAP);
	c->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->starter_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ret || c->stop_efd < 0 || c->starter_efd < 0) {
		ret = -ENOMEM;
		goto fail;
	}
	deadline = uffd__deadline_ms(c->o.timeout_ms ? c->o.timeout_ms : DEFAULT_TIMEOUT_MS);
	c->sock = connect_to(c->o.socket_path, deadline);
	if (c->sock < 0) {
		ret = c->sock;
		goto fail;
	}
	c->o.socket_path = NULL;
	ret = handshake(c, deadline);
	if (ret)
		goto fail;
	c->pidfd = server_pidfd(c->sock);
	eo.shared = c->shared;
	ret = serve_engine_init(&c->e, c->maps, c->nregions, &eo);
	c->engine_ready = true;
	if (!ret)
		ret = mm_thread_create(&c->starter, &c->starter_stack, starter_main, c);
	if (ret)
		goto fail;
	c->starter_started = true;
	ret = -pthread_create(&c->watcher, NULL, watcher_main, c);
	if (ret)
		goto fail;
	c->watcher_started = true;
	return c;
fail:
	client_free(c, true);
	errno = -ret;
	return NULL;
}

int uffd_serve_client_regions(const struct uffd_serve_client *c)
{
	return c ? c->nregions : -EINVAL;
}

void *uffd_serve_client_addr(const struct uffd_serve_client *c, int region)
{
	if (!c || region < 0 || region >= c->nregions) {
		errno = EINVAL;
		return NULL;
	}
	return (void *)(uintptr_t)c->maps[region].addr;
}

size_t uffd_serve_client_len(const struct uffd_serve_client *c, int region)
{
	return c && region >= 0 && region < c->nregions ? c->maps[region].len : 0;
}

int uffd_serve_client_wait(struct uffd_serve_client *c, int timeout_ms)
{
	int ret;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (timeout_ms < 0) {
		while (!c->done && !c->error)
			pthread_cond_wait(&c->cond, &c->lock);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!c->done && !c->error)
			if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
				break;
	}
	ret = c->done ? 0 : c->error ? c->error : -ETIMEDOUT;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Ask the server for its counters and wait a moment for the answer. */
static void refresh_server_counts(struct uffd_serve_client *c)
{
	uint64_t gen;
	struct timespec ts;

	pthread_mutex_lock(&c->lock);
	if (c->done || c->fallback || c->sock < 0) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	gen = c->stats_gen;
	/* Only the watcher reads the socket; a send is one small frame. */
	serve_frame_send(c->sock, SF_STATS_REQ, NULL, 0, -1, uffd__deadline_ms(100));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += STATS_TIMEOUT_MS / 1000;
	while (c->stats_gen == gen && !c->done && !c->fallback)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&c->lock);
}

int uffd_serve_client_stats(struct uffd_serve_client *c, struct uffd_serve_client_stats *st)
{
	struct serve_engine_counts k = { 0 };

	if (!c || !st)
		return -EINVAL;
	refresh_server_counts(c);
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&c->lock);
	if (c->fallback)
		serve_engine_counts(&c->e, &k);
	st->pages = c->pages;
	st->faults = c->server.faults + k.faults;
	st->prefetched = c->server.prefetched + k.prefetched;
	st->filled = c->server.filled + k.filled;
	st->zero = c->server.zero + k.zero;
	st->errors = c->server.errors + k.errors;
	st->features = c->features;
	st->done = c->done;
	st->fallback = c->fallback;
	st->duration_ns = (c->done ? c->t_done : mono_ns()) - c->t0;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void uffd_serve_detach(struct uffd_serve_client *c, bool unmap)
{
	uint64_t one = 1;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->finish = !unmap;
	pthread_mutex_unlock(&c->lock);
	if (c->watcher_started) {
		/* An eventfd write of 1 cannot fail short of overflow. */
		if (write(c->stop_efd, &one, sizeof(one)) != sizeof(one)) {
		}
		pthread_join(c->watcher, NULL);
	}
	client_free(c, unmap);
}
