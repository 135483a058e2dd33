/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server: a listening socket, an acceptor thread, and a thread
 * per connection that does the handshake and then drives that client's
 * engine (engine.h) until the client is restored, goes away, or the
 * server stops.
 *
 * Nothing a client does reaches another client: a connection's thread is
 * the only one that reads its socket, its handshake has a deadline (and
 * ends at once when the server stops), its refusal closes only it, and
 * its faults are served from its own engine.  The acceptor checks the
 * peer's uid (SO_PEERCRED) before anything is read, and holds no lock
 * while it accepts; the server's lock guards only the list of connections
 * and the totals of those that ended, never a fault.
 *
 * The two handshakes share everything after parsing: the fd must be a
 * userfaultfd on which UFFDIO_API was done (its fdinfo says so, and which
 * features it has), the regions must pass uffd__serve_check_mappings()
 * and lie in mappings of the peer (its /proc/PID/maps, when this process
 * may read it), and registering them on the client's userfaultfd must
 * succeed (the kernel refuses a range with nothing mapped or registered
 * on another userfaultfd).  A Firecracker peer is never answered - it
 * reads nothing - so a refusal there just closes the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uffd/serve.h>

#include "cache.h"
#include "engine.h"
#include "frame_io.h"
#include "proto.h"
#include "source.h"
#include "util/clock.h"
#include "util/opts.h"
#include "util/sock.h"
#include "wset.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
/* Set in a userfaultfd's features once UFFDIO_API is done (fdinfo). */
#define UFFD_FEATURE_INITIALIZED_BIT (1ull << 31)

#define DEFAULT_MAX_CLIENTS	256
#define DEFAULT_HANDSHAKE_MS	5000
#define REAP_MS			1000
#define RX_CAP			(SERVE_HDR + SERVE_MAX_PAYLOAD + 1024)
#define MAPS_MAX		(16u << 20)
#define NOTE_MS			1000

struct serve_conn {
	struct uffd_serve *srv;
	unsigned id;
	int sock;
	int pidfd;
	pid_t pid;
	uid_t uid;
	pthread_t thread;
	bool firecracker, recording, engine_ready;
	bool serving, counted;		/* under the server's lock */
	bool bye;			/* the client asked to be let go */
	uint32_t version;		/* of the protocol (0: Firecracker's) */
	pthread_mutex_t send_lock;	/* notes come from several threads */
	uint64_t seq;			/* of the last note (send_lock) */
	int finished;			/* atomic: the thread is done */
	struct serve_rx rx;		/* the handshake's */
	int ufd;			/* the userfaultfd received */
	uint64_t features;
	int nmaps;
	struct serve_mapping *maps;
	uint32_t map_flags;		/* SERVE_MAP_* */
	bool cache_offered;		/* LAYOUT said SHARED, with its fd */
	struct serve_engine e;
	uint64_t notes_lost;
	struct serve_conn *next;
};

struct uffd_serve {
	struct uffd_serve_opts o;
	char *socket_path, *ws_path;
	uid_t *allow;
	int nallow;
	uid_t self;
	struct serve_source *src;
	struct serve_wset *ws;
	struct serve_cache *cache;	/* shared_cache: one for all clients */
	int lfd, stop_efd;
	pthread_t acceptor;
	bool acceptor_started;
	int stopping;			/* atomic */
	pthread_mutex_t lock;		/* conns, live, totals */
	struct serve_conn *conns;
	int live;
	unsigned next_id;
	int record_taken;		/* atomic */
	int ws_active;			/* atomic: clients still getting their
					   working set (engine.h) */
	uint64_t accepted, refused, recorded;	/* atomic */
	struct uffd_serve_stats totals;	/* connections that ended (lock) */
};

static void logf_(struct uffd_serve *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void logf_(struct uffd_serve *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!s->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_arg, line);
}

static void add_count(uint64_t *field, uint64_t n)
{
	__atomic_fetch_add(field, n, __ATOMIC_RELAXED);
}

/* ---- sending ---------------------------------------------------------- */

/* An answer, best effort (the peer may be gone, or never read it). */
static void send_answer(int sock, int status, uint64_t features, const char *reason)
{
	struct serve_answer a = { .status = status, .features = features };
	uint8_t p[SERVE_ANSWER_SIZE];

	snprintf(a.reason, sizeof(a.reason), "%s", reason ? reason : "");
	uffd__serve_answer_put(p, &a);
	serve_frame_send(sock, SF_ANSWER, p, sizeof(p), -1, uffd__deadline_ms(200));
}

/* ---- the handshake ---------------------------------------------------- */

/* Read more of the handshake (and the fd, if one comes). */
static int conn_read_more(struct serve_conn *c, uint64_t deadline)
{
	int fd, ret;

	ret = serve_rx_more(&c->rx, c->sock, c->srv->stop_efd, deadline, true, &fd);
	if (fd >= 0) {
		if (c->ufd < 0)
			c->ufd = fd;
		else
			close(fd);	/* one userfaultfd per client */
	}
	return ret;
}

/* The next frame of the handshake into f (whose payload stays valid
 * until the next call). */
static int conn_read_frame(struct serve_conn *c, uint64_t deadline, struct serve_frame *f)
{
	int ret;

	while (!(ret = serve_rx_take(&c->rx, f))) {
		ret = conn_read_more(c, deadline);
		if (ret)
			return ret;
	}
	return ret < 0 ? ret : 0;
}

static int refuse(struct serve_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct serve_conn *c, int err, const char *fmt, ...)
{
	char why[SERVE_REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Counted before the peer can see it: its next step may be to ask. */
	add_count(&c->srv->refused, 1);
	if (!c->firecracker)
		send_answer(c->sock, err, c->features, why);
	logf_(c->srv, "client %u (pid %d, uid %u%s): refused: %s (%s)", c->id, (int)c->pid,
	      (unsigned)c->uid, c->firecracker ? ", firecracker" : "", why, strerror(-err));
	return err;
}

static int handshake_firecracker(struct serve_conn *c, uint64_t deadline)
{
	char why[SERVE_REASON_MAX];
	size_t where;
	int n, ret;

	c->firecracker = true;
	for (;;) {
		n = uffd__serve_fc_parse((const char *)c->rx.buf, c->rx.len, c->maps,
					 UFFD_SERVE_MAX_REGIONS, &where, why, sizeof(why));
		if (n > 0)
			break;
		if (n < 0)
			return refuse(c, n, "JSON at byte %zu: %s", where, why);
		ret = conn_read_more(c, deadline);
		if (ret == -EINTR)
			return ret;
		if (ret)
			return refuse(c, ret == -ETIMEDOUT ? -ETIMEDOUT : -EBADMSG,
				      "JSON cut short at byte %zu", c->rx.len);
	}
	c->nmaps = n;
	return 0;
}

/* LAYOUT with a read-only fd of the shared cache attached. */
static int send_layout_with_cache(struct serve_conn *c, const uint8_t *payload, uint32_t len)
{
	int fd = serve_cache_ro_fd(c->srv->cache), ret;

	if (fd < 0)
		return fd;
	ret = serve_frame_send(c->sock, SF_LAYOUT, payload, len, fd, 0);
	close(fd);
	return ret;
}

static int handshake_own(struct serve_conn *c, uint64_t deadline)
{
	struct uffd_serve *s = c->srv;
	struct serve_layout l = { .version = UFFD_SERVE_PROTO_VERSION };
	struct serve_mapping *ext;
	struct serve_hello h;
	struct serve_frame f;
	size_t size;
	uint8_t *p;
	int i, ret;

	ret = conn_read_frame(c, deadline, &f);
	if (ret == -EINTR)
		return ret;
	if (ret)
		return refuse(c, ret, "bad hello frame");
	if (uffd__serve_hello_get(&f, &h))
		return refuse(c, -EBADMSG, "expected a hello frame");
	if (h.min_version > UFFD_SERVE_PROTO_VERSION || h.max_version < SERVE_PROTO_MIN ||
	    h.min_version > h.max_version)
		return refuse(c, -EPROTONOSUPPORT, "protocol versions %u..%u: this server speaks "
			      "%u..%u", h.min_version, h.max_version, SERVE_PROTO_MIN,
			      UFFD_SERVE_PROTO_VERSION);
	/* The newest both speak. */
	c->version = h.max_version < UFFD_SERVE_PROTO_VERSION ? h.max_version :
		     UFFD_SERVE_PROTO_VERSION;
	l.version = c->version;
	if (h.page_size != SERVE_PAGE)
		return refuse(c, -EOPNOTSUPP, "page size %u: only %u is served", h.page_size,
			      SERVE_PAGE);
	l.flags = (s->src->raw ? SERVE_LAYOUT_RAW : 0) |
		  (s->ws ? SERVE_LAYOUT_PREFETCH : 0) | (s->o.record ? SERVE_LAYOUT_RECORD : 0) |
		  (s->o.demand_only ? SERVE_LAYOUT_DEMAND : 0);
	/* Version 1 clients get no fd they would not know what to do with. */
	c->cache_offered = s->cache && c->version >= 2;
	if (c->cache_offered)
		l.flags |= SERVE_LAYOUT_SHARED;
	l.nextents = s->src->nextents;
	l.source_size = s->src->size;
	l.source_id = s->src->id;
	if (strlen(s->src->path) < SERVE_PATH_MAX)
		strcpy(l.path, s->src->path);
	size = uffd__serve_layout_size(l.nextents);
	p = malloc(size);
	ext = calloc(l.nextents, sizeof(*ext));
	if (!p || !ext) {
		free(p);
		free(ext);
		return refuse(c, -ENOMEM, "out of memory");
	}
	for (i = 0; i < s->src->nextents; i++)
		ext[i] = (struct serve_mapping){ s->src->ext[i].addr, s->src->ext[i].len,
						 s->src->ext[i].offset, SERVE_PAGE };
	uffd__serve_layout_put(p, &l, ext);
	ret = c->cache_offered ?
	      send_layout_with_cache(c, p, size) :
	      serve_frame_send(c->sock, SF_LAYOUT, p, size, -1, deadline);
	free(p);
	free(ext);
	if (ret)
		return refuse(c, ret, "could not send the layout");
	ret = conn_read_frame(c, deadline, &f);
	if (ret == -EINTR)
		return ret;
	if (ret)
		return refuse(c, ret, "bad map frame");
	ret = uffd__serve_map_get(&f, c->maps, UFFD_SERVE_MAX_REGIONS, &c->map_flags);
	if (ret < 0)
		return refuse(c, ret, ret == -E2BIG ? "no regions, or more than %d" :
				      "expected a map frame", UFFD_SERVE_MAX_REGIONS);
	if ((c->map_flags & SERVE_MAP_SHARED) && !c->cache_offered)
		return refuse(c, -EINVAL, "mapped from a shared cache that was not offered");
	c->nmaps = ret;
	return 0;
}

/* The fd is a userfaultfd with UFFDIO_API done: its features. */
static int check_uffd(struct serve_conn *c)
{
	char path[64], text[1024];
	ssize_t n;
	int fd, ret;

	if (c->ufd < 0)
		return refuse(c, -EBADF, "no userfaultfd attached");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", c->ufd);
	n = readlink(path, text, sizeof(text) - 1);
	if (n < 0 || (text[n] = 0, strcmp(text, "anon_inode:[userfaultfd]")))
		return refuse(c, -EBADF, "the fd attached is not a userfaultfd");
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", c->ufd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return refuse(c, -EBADF, "cannot read the userfaultfd's fdinfo");
	ret = uffd__serve_fdinfo_features(text, n, &c->features);
	if (ret)
		return refuse(c, -EBADF, "the fd attached is not a userfaultfd");
	if (!(c->features & UFFD_FEATURE_INITIALIZED_BIT))
		return refuse(c, -EINVAL, "UFFDIO_API was not done on the userfaultfd");
	c->features &= UFFD_F(UFFD_FEAT_KERNEL_BITS_END) - 1;
	return 0;
}

/* [addr, addr + len) lies in mappings of the peer (its maps, if we may
 * read them: 1 yes, 0 no, -errno could not look). */
static int peer_maps_cover(pid_t pid, const struct serve_mapping *m, int n, int *bad)
{
	char path[64], *text = NULL;
	size_t len = 0, cap = 0;
	int fd, i, ret = 1;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t got;

		if (len == cap) {
			char *t;

			if (cap >= MAPS_MAX) {
				ret = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			t = realloc(text, cap);
			if (!t) {
				ret = -ENOMEM;
				goto out;
			}
			text = t;
		}
		got = read(fd, text + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -errno;
			goto out;
		}
		if (got == 0)
			break;
		len += got;
	}
	for (i = 0; i < n; i++) {
		ret = uffd__serve_maps_cover(text, len, m[i].addr, m[i].len);
		if (ret <= 0) {
			*bad = i;
			break;
		}
	}
out:
	close(fd);
	free(text);
	return ret;
}

/*
 * One small frame (and an fd), whole or not at all: a Unix stream socket
 * takes a send this small in one piece or refuses it (EAGAIN), so the
 * stream never carries half a note.  0, or -errno.
 */
static int send_note(int sock, const uint8_t *buf, size_t len, int fd, uint64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		struct pollfd p = { .fd = sock, .events = POLLOUT };
		uint64_t now;

		if (n == (ssize_t)len)
			return 0;
		if (n >= 0)
			return -EPIPE;		/* cannot happen this small */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		now = mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
	}
}

/*
 * A change of the client's memory map, or a fork with the child's fd:
 * the client's fallback needs every one of them to be exact.  A client
 * that does not read within NOTE_MS loses the note - its serving thread
 * must go on - and the gap in the sequence numbers tells it so (version
 * 2; a version 1 client hears of its own address space only, as before).
 */
static void conn_note(void *arg, const struct serve_event *ev, int fd)
{
	struct serve_conn *c = arg;
	uint8_t buf[SERVE_HDR + SERVE_EVENT2_SIZE];
	struct serve_event e = *ev;
	size_t len;

	if (c->firecracker || (c->version < 2 && (ev->mm || ev->type == SERVE_EV_FORK)))
		return;
	pthread_mutex_lock(&c->send_lock);
	e.seq = ++c->seq;
	len = uffd__serve_event_put(buf + SERVE_HDR, &e, c->version);
	len = uffd__serve_frame_put(buf, SF_EVENT, buf + SERVE_HDR, len);
	if (c->sock >= 0 && send_note(c->sock, buf, len, fd, uffd__deadline_ms(NOTE_MS)) == -ETIMEDOUT)
		c->notes_lost++;	/* (a peer that closed has no use for it) */
	pthread_mutex_unlock(&c->send_lock);
}

/* A frame after the handshake (notes may be on their way from another
 * thread): best effort, whole or not at all. */
static void conn_send(struct serve_conn *c, uint16_t type, const void *payload, uint32_t len)
{
	uint8_t buf[SERVE_HDR + SERVE_COUNTS_SIZE];

	if (len > SERVE_COUNTS_SIZE)
		return;
	uffd__serve_frame_put(buf, type, payload, len);
	pthread_mutex_lock(&c->send_lock);
	if (c->sock >= 0)
		send_note(c->sock, buf, SERVE_HDR + len, -1, uffd__deadline_ms(100));
	pthread_mutex_unlock(&c->send_lock);
}

/* A page cannot be read and the client's fd cannot poison: SIGBUS it
 * rather than leave it blocked forever or give it wrong memory. */
static void conn_fatal(void *arg)
{
	struct serve_conn *c = arg;

	logf_(c->srv, "client %u (pid %d): a page cannot be read and its userfaultfd has no "
	      "POISON: sending it SIGBUS", c->id, (int)c->pid);
	if (c->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, c->pidfd, SIGBUS, NULL, 0);
}

static int conn_accept_maps(struct serve_conn *c)
{
	struct uffd_serve *s = c->srv;
	struct serve_engine_opts eo = {
		.src = s->src, .ws = s->ws, .fill = !s->o.demand_only,
		.note = conn_note, .note_arg = c, .fatal = conn_fatal, .fatal_arg = c,
		.ws_active = &s->ws_active,
	};
	bool shared = c->map_flags & SERVE_MAP_SHARED;
	char why[SERVE_REASON_MAX];
	struct uffd u;
	int ret, bad = 0;

	ret = check_uffd(c);
	if (ret)
		return ret;
	ret = uffd__serve_check_mappings(c->maps, c->nmaps, s->src->size, why, sizeof(why));
	if (ret)
		return refuse(c, ret, "%s", why);
	ret = peer_maps_cover(c->pid, c->maps, c->nmaps, &bad);
	if (ret == 0)
		return refuse(c, -EFAULT, "region at 0x%llx (%llu bytes) is not mapped in process %d",
			      (unsigned long long)c->maps[bad].addr,
			      (unsigned long long)c->maps[bad].len, (int)c->pid);
	if (s->o.record && !__atomic_exchange_n(&s->record_taken, 1, __ATOMIC_ACQ_REL)) {
		/* The working set is what a restore touches by itself. */
		c->recording = true;
		eo.record = true;
		eo.fill = false;
	}
	eo.shared = shared;
	eo.cache = shared ? s->cache : NULL;
	ret = serve_engine_init(&c->e, c->maps, c->nmaps, &eo);
	if (ret)
		return refuse(c, ret, "out of memory");
	c->engine_ready = true;
	uffd_adopt(&u, c->ufd, c->features);
	c->ufd = -1;			/* the engine owns it now */
	ret = serve_engine_start(&c->e, &u, false, &bad);
	if (ret && bad >= 0)
		return refuse(c, ret, "region at 0x%llx cannot be registered on the userfaultfd",
			      (unsigned long long)c->maps[bad].addr);
	if (ret)
		return refuse(c, ret, "its userfaultfd cannot be served here");
	pthread_mutex_lock(&s->lock);
	c->serving = true;
	pthread_mutex_unlock(&s->lock);
	if (!c->firecracker)
		send_answer(c->sock, 0, c->features, "");
	add_count(&s->accepted, 1);
	logf_(s, "client %u (pid %d, uid %u%s): accepted: %d region%s, features 0x%llx%s%s", c->id,
	      (int)c->pid, (unsigned)c->uid, c->firecracker ? ", firecracker" : "", c->nmaps,
	      c->nmaps == 1 ? "" : "s", (unsigned long long)c->features,
	      c->recording ? ", recording its working set" : "",
	      shared ? ", from the shared cache" : "");
	return 0;
}

static int handshake(struct serve_conn *c)
{
	uint64_t deadline = uffd__deadline_ms(c->srv->o.handshake_ms);
	int ret;

	ret = serve_rx_init(&c->rx, RX_CAP);
	c->maps = calloc(UFFD_SERVE_MAX_REGIONS, sizeof(*c->maps));
	if (ret || !c->maps)
		return refuse(c, -ENOMEM, "out of memory");
	ret = conn_read_more(c, deadline);
	/* A peer that closes without a word (a probe: is anyone there?) is
	 * neither a client nor refused. */
	if (ret == -EINTR || ret == -ECONNRESET)
		return ret;
	if (ret)
		return refuse(c, ret, "nothing received");
	/* Firecracker's JSON starts with '[' (serde writes no whitespace,
	 * but JSON allows it); libuffd's frames with their magic. */
	if (strchr("[ \t\r\n", c->rx.buf[0]) && c->rx.buf[0])
		ret = handshake_firecracker(c, deadline);
	else
		ret = handshake_own(c, deadline);
	serve_rx_free(&c->rx);
	if (ret)
		return ret;
	return conn_accept_maps(c);
}

/* ---- serving a connection ----------------------------------------------- */

static void counts_of(struct serve_conn *c, struct serve_counts *out)
{
	struct serve_engine_counts k;

	serve_engine_counts(&c->e, &k);
	*out = (struct serve_counts){ k.faults, k.prefetched, k.filled, k.zero, k.errors };
}

/* After the handshake: STATS_REQ and BYE frames, or the end of the
 * connection.  1 to go on, 0 the client is gone, 2 it said goodbye. */
static int conn_read_requests(struct serve_conn *c)
{
	uint8_t buf[256], out[SERVE_COUNTS_SIZE];
	struct serve_frame f;
	struct serve_counts k;
	size_t pos = 0;
	ssize_t n;
	int ret;

	n = recv(c->sock, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (n <= 0)
		return 0;
	if (c->firecracker)
		return 1;		/* Firecracker never says more: ignore */
	while (pos < (size_t)n) {
		ret = uffd__serve_frame_parse(buf + pos, n - pos, &f);
		if (ret <= 0)
			return 1;	/* not ours to judge after the handshake */
		pos += ret;
		if (f.type == SF_BYE)
			return 2;
		if (f.type != SF_STATS_REQ)
			continue;
		counts_of(c, &k);
		uffd__serve_counts_put(out, &k);
		conn_send(c, SF_STATS, out, sizeof(out));
	}
	return 1;
}

static void fold_conn(struct serve_conn *c, bool done)
{
	struct uffd_serve *s = c->srv;
	struct uffd_handler_stats hs;
	struct serve_engine_counts k;
	int i;

	serve_engine_counts(&c->e, &k);
	memset(&hs, 0, sizeof(hs));
	if (c->e.h)
		uffd_handler_stats(c->e.h, &hs);
	pthread_mutex_lock(&s->lock);
	s->totals.faults += k.faults;
	s->totals.prefetched += k.prefetched;
	s->totals.filled += k.filled;
	s->totals.zero += k.zero;
	s->totals.errors += k.errors;
	for (i = 0; i < 4; i++)
		s->totals.events[i] += hs.events[i];
	if (done)
		s->totals.done++;
	else
		s->totals.gone++;
	c->counted = true;
	pthread_mutex_unlock(&s->lock);
}

static void write_working_set(struct serve_conn *c)
{
	struct uffd_serve *s = c->srv;
	int ret;

	if (!c->recording || !c->e.nrec)
		return;
	ret = serve_wset_write(s->ws_path, s->src, c->e.rec, c->e.nrec);
	if (ret) {
		logf_(s, "working set of client %u: %s: %s", c->id, s->ws_path, strerror(-ret));
		return;
	}
	__atomic_store_n(&s->recorded, c->e.nrec, __ATOMIC_RELAXED);
	logf_(s, "working set of client %u: %llu pages written to %s", c->id,
	      (unsigned long long)c->e.nrec, s->ws_path);
}

/*
 * How a connection ends.  Restored: the engine said DONE (every page in,
 * the children's too).  Otherwise nobody lets go of memory that is not
 * whole, as the kernel would hand a never-filled page out as zeros:
 *  - the client's process is gone (its pidfd, or ESRCH): its forked
 *    children are finished (filled), then let go;
 *  - a libuffd client detached (BYE) or closed the connection: its
 *    children are finished, then it is let go - it serves its own
 *    memory from then on, as after a fallback;
 *  - the server stops: a libuffd client's children are finished and the
 *    client is let go (its fallback serves the rest); a Firecracker
 *    client, which has no fallback, is finished whole - every page it
 *    still misses is filled - before it is let go;
 *  - a Firecracker client closes its socket right after the handshake
 *    (Firecracker does): that says nothing, its pidfd says when it goes.
 */
static void conn_serve(struct serve_conn *c)
{
	struct uffd_serve *s = c->srv;
	enum { X_SOCK, X_STOP, X_PID };
	struct pollfd extra[3] = {
		[X_SOCK] = { .fd = c->sock, .events = POLLIN },
		[X_STOP] = { .fd = s->stop_efd, .events = POLLIN },
		[X_PID] = { .fd = c->pidfd, .events = POLLIN },
	};
	struct serve_counts k;
	uint8_t out[SERVE_COUNTS_SIZE];
	const char *how = NULL;
	bool done = false, finishing = false;
	int ret, i;

	for (;;) {
		ret = serve_engine_run(&c->e, extra, 3);
		if (ret == ENGINE_DONE) {
			done = !finishing || c->e.fill_root;
			if (!how || done)
				how = "restored";
			if (done && !c->firecracker) {
				counts_of(c, &k);
				uffd__serve_counts_put(out, &k);
				conn_send(c, SF_DONE, out, sizeof(out));
			}
			break;
		}
		if (ret < 0) {
			how = ret == -ESRCH ? "process gone" : "a page could not be served";
			break;
		}
		for (i = 0; i < 3; i++)
			if (extra[i].revents && extra[i].fd >= 0)
				break;
		if (i == 3)
			continue;
		extra[i].fd = -1;		/* each says its piece once */
		extra[i].revents = 0;
		if (i == X_SOCK) {
			ret = conn_read_requests(c);
			if (ret == 1) {
				extra[i].fd = c->sock;
				continue;
			}
			if (c->firecracker)
				continue;	/* its socket closing says nothing */
			c->bye = ret == 2;
			how = c->bye ? "detached" : "disconnected";
		} else if (i == X_PID) {
			serve_engine_root_gone(&c->e);
			how = "process gone";
			continue;		/* the engine finishes its children */
		} else {
			how = "server stopping";
		}
		if (!finishing) {
			/* A stop leaves no Firecracker page out (it has no
			 * fallback); libuffd clients serve their own root. */
			serve_engine_finish(&c->e, i == X_STOP && c->firecracker);
			finishing = true;
		}
	}
	write_working_set(c);
	counts_of(c, &k);
	logf_(s, "client %u (pid %d): %s: %llu faults, %llu prefetched, %llu filled, %llu zero, "
	      "%llu errors%s", c->id, (int)c->pid, how, (unsigned long long)k.faults,
	      (unsigned long long)k.prefetched, (unsigned long long)k.filled,
	      (unsigned long long)k.zero, (unsigned long long)k.errors,
	      c->notes_lost ? ", notes lost (the client did not read them)" : "");
	fold_conn(c, done);
}

static void *conn_main(void *arg)
{
	struct serve_conn *c = arg;

	if (!handshake(c))
		conn_serve(c);		/* folds the counts in when it ends */
	if (c->engine_ready)
		serve_engine_release(&c->e);
	/* Only now, with our fd closed, may the client serve itself. */
	if (c->bye)
		conn_send(c, SF_BYE, NULL, 0);
	/* The peer learns at once that we are done with it. */
	pthread_mutex_lock(&c->send_lock);
	close(c->sock);
	c->sock = -1;
	pthread_mutex_unlock(&c->send_lock);
	__atomic_store_n(&c->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void conn_free(struct serve_conn *c)
{
	if (c->ufd >= 0)
		close(c->ufd);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->sock >= 0)
		close(c->sock);
	pthread_mutex_destroy(&c->send_lock);
	serve_rx_free(&c->rx);
	free(c->maps);
	free(c);
}

/* Join and free the connections that ended (all of them when all). */
static void reap(struct uffd_serve *s, bool all)
{
	struct serve_conn **pp, *c;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->conns; (c = *pp);) {
		if (!all && !__atomic_load_n(&c->finished, __ATOMIC_ACQUIRE)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		s->live--;
		pthread_mutex_unlock(&s->lock);
		pthread_join(c->thread, NULL);
		conn_free(c);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- accepting ---------------------------------------------------------- */

static bool uid_allowed(const struct uffd_serve *s, uid_t uid)
{
	int i;

	if (uid == 0 || uid == s->self)
		return true;
	for (i = 0; i < s->nallow; i++)
		if (s->allow[i] == uid)
			return true;
	return false;
}

static int peer_pidfd(int sock, pid_t pid)
{
	socklen_t len = sizeof(int);
	int fd = -1;

	if (!getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) && fd >= 0)
		return fd;
	return pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
}

static void accept_one(struct uffd_serve *s)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof(cred);
	struct serve_conn *c;
	int sock, ret;

	sock = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (sock < 0)
		return;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		close(sock);
		return;
	}
	if (!uid_allowed(s, cred.uid)) {
		char why[64];

		snprintf(why, sizeof(why), "uid %u is not allowed", (unsigned)cred.uid);
		add_count(&s->refused, 1);
		send_answer(sock, -EACCES, 0, why);
		close(sock);
		logf_(s, "connection from pid %d: refused: %s", (int)cred.pid, why);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (s->live >= s->o.max_clients) {
		pthread_mutex_unlock(&s->lock);
		add_count(&s->refused, 1);
		send_answer(sock, -EBUSY, 0, "too many clients");
		close(sock);
		logf_(s, "connection from pid %d: refused: %d clients already", (int)cred.pid,
		      s->o.max_clients);
		return;
	}
	pthread_mutex_unlock(&s->lock);
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(sock);
		return;
	}
	c->srv = s;
	c->sock = sock;
	pthread_mutex_init(&c->send_lock, NULL);
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->ufd = -1;
	c->pidfd = peer_pidfd(sock, cred.pid);
	pthread_mutex_lock(&s->lock);
	c->id = ++s->next_id;
	ret = pthread_create(&c->thread, NULL, conn_main, c);
	if (ret) {
		pthread_mutex_unlock(&s->lock);
		conn_free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	s->live++;
	pthread_mutex_unlock(&s->lock);
}

static void *acceptor_main(void *arg)
{
	struct uffd_serve *s = arg;

	while (!__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE)) {
		struct pollfd p[2] = {
			{ .fd = s->lfd, .events = POLLIN },
			{ .fd = s->stop_efd, .events = POLLIN },
		};
		int n = poll(p, 2, REAP_MS);

		if (n < 0 && errno != EINTR)
			break;
		reap(s, false);
		if (n > 0 && p[1].revents)
			break;
		if (n > 0 && p[0].revents)
			accept_one(s);
	}
	return NULL;
}

/* ---- setup ---------------------------------------------------------------- */

/* Bind path; an old socket file nobody listens on is replaced. */
static int listen_on(const char *path, unsigned mode)
{
	struct sockaddr_un addr;
	int fd, probe, ret;

	ret = uffd__unix_addr(&addr, path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		struct stat st;

		ret = -errno;
		if (ret == -EADDRINUSE) {
			probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			ret = probe >= 0 && !connect(probe, (struct sockaddr *)&addr, sizeof(addr)) ?
			      -EADDRINUSE : 0;
			if (probe >= 0)
				close(probe);
			/* not a socket: not ours to remove */
			if (!ret && (lstat(path, &st) || !S_ISSOCK(st.st_mode)))
				ret = -EADDRINUSE;
			if (!ret && (unlink(path) ||
				     bind(fd, (struct sockaddr *)&addr, sizeof(addr))))
				ret = -errno;
		}
		if (ret) {
			close(fd);
			return ret;
		}
	}
	if (chmod(path, mode) || listen(fd, 64)) {
		ret = -errno;
		unlink(path);
		close(fd);
		return ret;
	}
	return fd;
}

static void serve_destroy(struct uffd_serve *s)
{
	if (s->lfd >= 0) {
		close(s->lfd);
		unlink(s->socket_path);
	}
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	serve_wset_free(s->ws);
	serve_cache_free(s->cache);
	serve_source_close(s->src);
	pthread_mutex_destroy(&s->lock);
	free(s->socket_path);
	free(s->ws_path);
	free(s->allow);
	free(s);
}

struct uffd_serve *uffd_serve_new(const struct uffd_serve_opts *o)
{
	struct uffd_serve_opts opts;
	struct uffd_serve *s;
	bool others = false;
	unsigned mode;
	int i, ret;

	if (!o) {
		errno = EINVAL;
		return NULL;
	}
	ret = uffd__load_opts(&opts, o, struct uffd_serve_opts, shared_cache, log_arg);
	if (!ret && (!opts.socket_path || !*opts.socket_path || !opts.image == !opts.mem_file ||
		     (opts.record && opts.prefetch) || opts.nallow_uids < 0 ||
		     (opts.nallow_uids && !opts.allow_uids) || opts.max_clients < 0 ||
		     opts.handshake_ms < 0 || opts.socket_mode > 0777))
		ret = -EINVAL;
	if (ret) {
		errno = -ret;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->lfd = s->stop_efd = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->o = opts;
	s->self = geteuid();
	if (!s->o.max_clients)
		s->o.max_clients = DEFAULT_MAX_CLIENTS;
	if (!s->o.handshake_ms)
		s->o.handshake_ms = DEFAULT_HANDSHAKE_MS;
	s->socket_path = strdup(opts.socket_path);
	s->allow = calloc(opts.nallow_uids + 1, sizeof(*s->allow));
	if (!s->socket_path || !s->allow) {
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < opts.nallow_uids; i++) {
		s->allow[i] = opts.allow_uids[i];
		others |= opts.allow_uids[i] != s->self && opts.allow_uids[i] != 0;
	}
	s->nallow = opts.nallow_uids;
	s->o.socket_path = s->o.image = s->o.mem_file = s->o.ws_path = NULL;
	s->o.allow_uids = NULL;
	s->src = serve_source_open(opts.image, opts.mem_file);
	if (!s->src) {
		ret = -errno;
		goto fail;
	}
	if (opts.ws_path)
		s->ws_path = strdup(opts.ws_path);
	else if (asprintf(&s->ws_path, "%s.ws", opts.image ? opts.image : opts.mem_file) < 0)
		s->ws_path = NULL;
	if (!s->ws_path) {
		ret = -ENOMEM;
		goto fail;
	}
	if (opts.prefetch) {
		s->ws = serve_wset_load(s->ws_path, s->src);
		if (!s->ws) {
			ret = -errno;
			goto fail;
		}
		s->totals.ws_pages = s->ws->count;
	}
	if (opts.shared_cache) {
		s->cache = serve_cache_new(s->src->size, s->ws ? (s->ws->count + WS_PIECE - 1) /
						       WS_PIECE : 0);
		if (!s->cache) {
			ret = -errno;
			goto fail;
		}
	}
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_efd < 0) {
		ret = -errno;
		goto fail;
	}
	mode = opts.socket_mode ? opts.socket_mode : others ? 0666 : 0600;
	s->lfd = listen_on(s->socket_path, mode);
	if (s->lfd < 0) {
		ret = s->lfd;
		goto fail;
	}
	ret = -pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (ret)
		goto fail;
	s->acceptor_started = true;
	return s;
fail:
	serve_destroy(s);
	errno = -ret;
	return NULL;
}

int uffd_serve_stats(struct uffd_serve *s, struct uffd_serve_stats *st)
{
	struct serve_conn *c;

	if (!s || !st)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	*st = s->totals;
	st->accepted = __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
	st->refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
	st->recorded = __atomic_load_n(&s->recorded, __ATOMIC_RELAXED);
	st->cached = s->cache ? __atomic_load_n(&s->cache->pages_in, __ATOMIC_RELAXED) : 0;
	st->clients = 0;
	for (c = s->conns; c; c = c->next) {
		struct uffd_handler_stats hs;
		struct serve_engine_counts k;
		int i;

		if (!__atomic_load_n(&c->finished, __ATOMIC_ACQUIRE))
			st->clients++;
		if (!c->serving || c->counted)
			continue;
		serve_engine_counts(&c->e, &k);
		st->faults += k.faults;
		st->prefetched += k.prefetched;
		st->filled += k.filled;
		st->zero += k.zero;
		st->errors += k.errors;
		if (!uffd_handler_stats(c->e.h, &hs))
			for (i = 0; i < 4; i++)
				st->events[i] += hs.events[i];
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void uffd_serve_free(struct uffd_serve *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	/* An eventfd write of 1 cannot fail short of overflow. */
	if (write(s->stop_efd, &one, sizeof(one)) != sizeof(one)) {
	}
	if (s->acceptor_started)
		pthread_join(s->acceptor, NULL);
	reap(s, true);
	serve_destroy(s);
}
