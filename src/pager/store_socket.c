/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The socket store: memory another process exports over a Unix stream
 * socket (uffd_store_serve), read and written by a pager in this one
 * (uffd_store_socket).
 *
 * The wire protocol, version 1.  Every message is a fixed header of
 * naturally aligned fields in the machine's own byte order (a Unix socket
 * never leaves the machine), some followed by data:
 *
 *   hello     client -> server   8 bytes
 *             u32 magic (SOCK_MAGIC), u16 version, u16 flags (0)
 *   welcome   server -> client   24 bytes
 *             u32 magic, u16 version (the server's), u16 flags (0),
 *             i32 status (0, or -EPROTONOSUPPORT for a version it does not
 *             speak: it then closes), u32 max_io, u64 size
 *   request   client -> server   24 bytes
 *             u32 op, u32 len, u64 off, u64 tag;  WRITE: len bytes follow
 *   response  server -> client   16 bytes
 *             i32 status (0 or -errno), u32 len, u64 tag (the request's);
 *             READ: len bytes follow
 *
 * READ answers len bytes from off, fewer at the end of the memory and none
 * at or past it, as pread does.  WRITE stores its data when the whole range
 * lies inside the memory and answers len, or -EINVAL and stores nothing.
 * FLUSH (off and len 0) msyncs the memory, which makes it durable when it
 * is a shared file mapping.  A request's len is at most the welcome's
 * max_io (the client splits larger I/Os); a larger one or an unknown op is
 * answered -EMSGSIZE or -EOPNOTSUPP and the connection closed, since the
 * server can not tell where the next request starts.
 *
 * One request is outstanding per connection.  The client keeps a small
 * pool of connections, one per thread that is doing I/O at the moment, so
 * the pager's threads do not queue behind each other.  A server that dies
 * gives -EIO at once (MSG_NOSIGNAL: no SIGPIPE); one that hangs gives -EIO
 * within the store's time-out of when the request was issued, however
 * many requests queue: each has one deadline for all it waits on (a pooled
 * connection, connect, handshake, send, every receive), and once one of
 * them has timed out the server is taken for silent - the requests that
 * start during the next time-out fail at once, rather than each waiting a
 * time-out of its own behind the others (a pager serving faults one after
 * another would otherwise add them up).  Every request is idempotent, so
 * one that fails because the server closed a connection that sat idle in
 * the pool is sent again once on a new connection (the server may have
 * been restarted).  The server runs a thread per client, and gives a
 * client that stalls mid-message SOCK_TIMEOUT_MS to finish it.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uffd/pager.h>

#include "store_internal.h"
#include "util/clock.h"
#include "util/opts.h"
#include "util/sock.h"

#define SOCK_MAGIC	0x50534655u	/* "UFSP" in a little-endian word */
#define SOCK_VERSION	1

enum sock_op {
	SOCK_READ = 1,
	SOCK_WRITE = 2,
	SOCK_FLUSH = 3,
};

struct sock_hello {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
};

struct sock_welcome {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	int32_t status;
	uint32_t max_io;
	uint64_t size;
};

struct sock_request {
	uint32_t op;
	uint32_t len;
	uint64_t off;
	uint64_t tag;
};

struct sock_response {
	int32_t status;
	uint32_t len;
	uint64_t tag;
};

_Static_assert(sizeof(struct sock_hello) == 8, "hello layout");
_Static_assert(sizeof(struct sock_welcome) == 24, "welcome layout");
_Static_assert(sizeof(struct sock_request) == 24, "request layout");
_Static_assert(sizeof(struct sock_response) == 16, "response layout");

/* Largest request: a pager's biggest read-ahead window, with room. */
#define SOCK_MAX_IO	(4u << 20)
/* A peer that does not answer for this long is taken for dead (default). */
#define SOCK_TIMEOUT_MS	5000
/* Connections a client keeps at most: as many I/Os run at once. */
#define SOCK_MAX_CONNS	8
/* How often the server looks at *stop (the header promises 100 ms). */
#define SERVE_POLL_MS	100
#define SERVE_BACKLOG	64

/*
 * Before connect(2), which waits while the server's backlog is full: give
 * it what is left until deadline (SO_SNDTIMEO; the rest of the I/O polls
 * against the deadline itself).
 */
static int set_connect_timeout(int fd, uint64_t deadline)
{
	uint64_t now = mono_ns(), left = deadline > now ? deadline - now : 1000;
	struct timeval tv = { .tv_sec = left / 1000000000ULL,
			      .tv_usec = left % 1000000000ULL / 1000 };

	if (!tv.tv_sec && !tv.tv_usec)
		tv.tv_usec = 1;		/* 0 would mean "no time-out" */
	return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ? -errno : 0;
}

/* The client. */

struct socket_store {
	struct uffd_store store;
	struct sockaddr_un addr;	/* sun_family 0: no new connections */
	uint64_t size;
	uint32_t max_io;
	int timeout_ms;
	uint64_t silent_until;		/* atomic, mono ns: fail at once before */
	pthread_mutex_t lock;
	pthread_cond_t conn_freed;	/* on CLOCK_MONOTONIC */
	int idle[SOCK_MAX_CONNS];	/* connected, not in use */
	int nidle;
	int nconns;			/* idle and in use */
	uint64_t next_tag;		/* atomic */
};

/* The server missed a deadline lately: requests fail without waiting. */
static bool server_silent(struct socket_store *ss)
{
	return mono_ns() < __atomic_load_n(&ss->silent_until, __ATOMIC_RELAXED);
}

static void mark_silent(struct socket_store *ss)
{
	__atomic_store_n(&ss->silent_until,
			 mono_ns() + (uint64_t)ss->timeout_ms * 1000000ULL, __ATOMIC_RELAXED);
}

/* Shake hands on a connected fd: 0 or -errno; the server's size, max_io. */
static int handshake(int fd, uint64_t deadline, uint64_t *size, uint32_t *max_io)
{
	struct sock_hello hello = { .magic = SOCK_MAGIC, .version = SOCK_VERSION };
	struct sock_welcome w;
	int err;

	err = uffd__send_all(fd, &hello, sizeof(hello), deadline);
	if (!err)
		err = uffd__recv_all(fd, &w, sizeof(w), deadline);
	if (!err && (w.magic != SOCK_MAGIC ||
		     (!w.status && (!w.max_io || !w.size || w.size > INT64_MAX))))
		err = -EPROTO;
	if (!err && w.status)
		err = w.status == -EPROTONOSUPPORT ? -EPROTONOSUPPORT : -EPROTO;
	if (!err && w.version != SOCK_VERSION)
		err = -EPROTONOSUPPORT;
	if (err)
		return err;
	*size = w.size;
	*max_io = w.max_io;
	return 0;
}

/*
 * Connect and shake hands by deadline: the fd, or -errno.  The server's
 * size and max_io go to *size and *max_io.
 */
static int sock_connect(const struct sockaddr_un *addr, uint64_t deadline,
			uint64_t *size, uint32_t *max_io)
{
	int fd, err;

	if (addr->sun_family != AF_UNIX)
		return -ENOTCONN;	/* a store made over one fd */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = set_connect_timeout(fd, deadline);
	if (!err && connect(fd, (const struct sockaddr *)addr, sizeof(*addr)))
		err = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
	if (!err)
		err = handshake(fd, deadline, size, max_io);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static void timespec_of(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000ULL;
	ts->tv_nsec = ns % 1000000000ULL;
}

/*
 * A connection of the pool, idle or new (then *fresh): fd, -EIO, or
 * -ETIMEDOUT (deadline passed, or the server taken for silent).  Waits
 * while SOCK_MAX_CONNS are in use.
 */
static int conn_get(struct socket_store *ss, uint64_t deadline, bool *fresh)
{
	struct timespec until;
	uint32_t max_io;
	uint64_t size;
	int fd;

	timespec_of(deadline, &until);
	pthread_mutex_lock(&ss->lock);
	while (!ss->nidle && ss->nconns >= SOCK_MAX_CONNS) {
		if (pthread_cond_timedwait(&ss->conn_freed, &ss->lock, &until) == ETIMEDOUT ||
		    server_silent(ss)) {
			pthread_mutex_unlock(&ss->lock);
			return -ETIMEDOUT;
		}
	}
	if (ss->nidle) {
		fd = ss->idle[--ss->nidle];
		pthread_mutex_unlock(&ss->lock);
		*fresh = false;
		return fd;
	}
	ss->nconns++;
	pthread_mutex_unlock(&ss->lock);

	*fresh = true;
	fd = sock_connect(&ss->addr, deadline, &size, &max_io);
	if (fd >= 0 && (size != ss->size || max_io != ss->max_io)) {
		close(fd);		/* another server, other memory */
		fd = -EIO;
	}
	if (fd < 0) {
		pthread_mutex_lock(&ss->lock);
		ss->nconns--;
		pthread_cond_signal(&ss->conn_freed);
		pthread_mutex_unlock(&ss->lock);
		return fd == -ETIMEDOUT ? fd : -EIO;
	}
	return fd;
}

/*
 * Back to the pool; a connection that failed is closed instead, and when
 * the server hung up on it, so are the idle ones: they were to the same
 * server, which is gone.
 */
static void conn_put(struct socket_store *ss, int fd, int transport)
{
	pthread_mutex_lock(&ss->lock);
	if (transport) {
		close(fd);
		ss->nconns--;
	} else {
		ss->idle[ss->nidle++] = fd;
	}
	if (transport == -EPIPE || transport == -ECONNRESET) {
		while (ss->nidle) {
			close(ss->idle[--ss->nidle]);
			ss->nconns--;
		}
	}
	pthread_cond_broadcast(&ss->conn_freed);
	pthread_mutex_unlock(&ss->lock);
}

/*
 * One request and its response on fd.  Bytes done (status >= 0) or
 * -errno from the server; *transport receives a transport failure instead
 * (then the connection is unusable).
 */
static ssize_t exchange(struct socket_store *ss, int fd, enum sock_op op,
			void *buf, uint32_t len, uint64_t off, uint64_t deadline,
			int *transport)
{
	struct sock_request req = {
		.op = op, .len = op == SOCK_FLUSH ? 0 : len, .off = off,
		.tag = __atomic_add_fetch(&ss->next_tag, 1, __ATOMIC_RELAXED),
	};
	struct iovec iov[2] = {
		{ .iov_base = &req, .iov_len = sizeof(req) },
		{ .iov_base = buf, .iov_len = req.len },
	};
	struct sock_response resp;
	int err;

	err = uffd__sendv_all(fd, iov, op == SOCK_WRITE ? 2 : 1, deadline);
	if (!err)
		err = uffd__recv_all(fd, &resp, sizeof(resp), deadline);
	if (!err && (resp.tag != req.tag || resp.status > 0 ||
		     (resp.status < 0 && resp.len) || resp.len > req.len ||
		     (op != SOCK_READ && resp.status >= 0 && resp.len != req.len)))
		err = -EPROTO;
	if (!err && op == SOCK_READ && resp.len)
		err = uffd__recv_all(fd, buf, resp.len, deadline);
	if (err) {
		*transport = err;
		return -EIO;
	}
	*transport = 0;
	return resp.status < 0 ? resp.status : (ssize_t)resp.len;
}

/*
 * A request on a pooled connection, all of it by one deadline from now.
 * When the server has closed a reused connection (EPIPE, ECONNRESET), the
 * request is sent again once, on a new one.  A request that times out
 * marks the server silent.
 */
static ssize_t sock_request(struct socket_store *ss, enum sock_op op, void *buf,
			    uint32_t len, uint64_t off)
{
	uint64_t deadline = uffd__deadline_ms(ss->timeout_ms);
	int attempt, fd, transport;
	bool fresh;
	ssize_t n = -EIO;

	if (server_silent(ss))
		return -EIO;
	for (attempt = 0; attempt < 2; attempt++) {
		fd = conn_get(ss, deadline, &fresh);
		if (fd < 0) {
			if (fd == -ETIMEDOUT)
				mark_silent(ss);
			return -EIO;
		}
		n = exchange(ss, fd, op, buf, len, off, deadline, &transport);
		conn_put(ss, fd, transport);
		if (transport == -ETIMEDOUT)
			mark_silent(ss);
		if (!transport || fresh ||
		    (transport != -EPIPE && transport != -ECONNRESET))
			return n;
	}
	return n;
}

/* Read or write in requests of at most max_io. */
static ssize_t sock_io(struct socket_store *ss, enum sock_op op, void *buf,
		       size_t len, uint64_t off)
{
	size_t done = 0;
	uint32_t chunk;
	ssize_t n;

	if (len > SSIZE_MAX || off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	while (done < len) {
		chunk = len - done < ss->max_io ? len - done : ss->max_io;
		n = sock_request(ss, op, (char *)buf + done, chunk, off + done);
		if (n < 0)
			return n;
		done += n;
		if (n < chunk) {
			if (op == SOCK_WRITE)
				return -EIO;	/* the server never writes short */
			break;			/* the end of the memory */
		}
	}
	return done;
}

static ssize_t sock_read(void *store, void *buf, size_t len, uint64_t off)
{
	return sock_io(store, SOCK_READ, buf, len, off);
}

static ssize_t sock_write(void *store, const void *buf, size_t len, uint64_t off)
{
	return sock_io(store, SOCK_WRITE, (void *)buf, len, off);
}

static int64_t sock_size(void *store)
{
	struct socket_store *ss = store;

	return ss->size;
}

static int sock_flush(void *store)
{
	return sock_request(store, SOCK_FLUSH, NULL, 0, 0);
}

static void sock_close(void *store)
{
	struct socket_store *ss = store;

	while (ss->nidle)
		close(ss->idle[--ss->nidle]);
	pthread_cond_destroy(&ss->conn_freed);
	pthread_mutex_destroy(&ss->lock);
	free(ss);
}

static const struct uffd_store_ops socket_ops = {
	.read = sock_read,
	.write = sock_write,
	.size = sock_size,
	.flush = sock_flush,
	.close = sock_close,
};

/* A store whose first connection is fd (shaken hands with), or NULL. */
static struct uffd_store *store_new(struct socket_store *ss, int fd)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ss->conn_freed, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&ss->lock, NULL);
	ss->idle[ss->nidle++] = fd;
	ss->nconns = 1;
	ss->store.ops = &socket_ops;
	ss->store.data = ss;
	ss->store.kind = "socket";
	return &ss->store;
}

struct uffd_store *uffd_store_socket_open(const char *socket_path,
					  const struct uffd_store_socket_opts *opts)
{
	struct uffd_store_socket_opts o;
	struct socket_store *ss;
	int fd, err;

	err = uffd__load_opts(&o, opts, struct uffd_store_socket_opts, timeout_ms, timeout_ms);
	if (!err && (o.timeout_ms < 0 || o.timeout_ms > UFFD_STORE_SOCKET_MAX_TIMEOUT_MS))
		err = -EINVAL;
	if (err) {
		errno = -err;
		return NULL;
	}
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		return NULL;
	ss->timeout_ms = o.timeout_ms ? o.timeout_ms : SOCK_TIMEOUT_MS;
	err = uffd__unix_addr(&ss->addr, socket_path);
	if (err)
		goto out_free;
	/* The first connection learns the size; it stays in the pool. */
	fd = sock_connect(&ss->addr, uffd__deadline_ms(ss->timeout_ms), &ss->size,
			  &ss->max_io);
	if (fd < 0) {
		err = fd;
		goto out_free;
	}
	return store_new(ss, fd);

out_free:
	free(ss);
	errno = -err;
	return NULL;
}

struct uffd_store *uffd_store_socket(const char *socket_path)
{
	return uffd_store_socket_open(socket_path, NULL);
}

struct uffd_store *uffd__store_socket_over(int fd, int timeout_ms)
{
	struct socket_store *ss = calloc(1, sizeof(*ss));
	int err;

	if (!ss)
		return NULL;
	ss->timeout_ms = timeout_ms > 0 ? timeout_ms : SOCK_TIMEOUT_MS;
	err = handshake(fd, uffd__deadline_ms(ss->timeout_ms), &ss->size, &ss->max_io);
	if (err) {
		free(ss);
		errno = -err;
		return NULL;
	}
	return store_new(ss, fd);
}

/* The server. */

struct server {
	char *buf;
	size_t len;
	volatile bool *stop;
	bool quit;			/* atomic: client threads end */
	struct client *clients;
};

struct client {
	struct server *srv;
	int fd;
	pthread_t thread;
	bool done;			/* atomic: the thread has ended */
	struct client *next;
};

static bool serve_stopping(struct server *srv)
{
	return srv->stop && __atomic_load_n(srv->stop, __ATOMIC_ACQUIRE);
}

/*
 * The server side of one request is bounded by a deadline set when its
 * first bytes arrive: a client that stalls mid-message is dropped.
 */
static int respond(int fd, const struct sock_request *req, int status,
		   const void *data, uint32_t len, uint64_t deadline)
{
	struct sock_response resp = {
		.status = status, .len = status < 0 ? 0 : len, .tag = req->tag,
	};
	struct iovec iov[2] = {
		{ .iov_base = &resp, .iov_len = sizeof(resp) },
		{ .iov_base = (void *)data, .iov_len = data ? resp.len : 0 },
	};

	return uffd__sendv_all(fd, iov, 2, deadline);
}

/* Read and drop len bytes (a write refused): 0 or -errno. */
static int discard(int fd, uint32_t len, uint64_t deadline)
{
	char scratch[4096];
	uint32_t n;
	int err;

	while (len) {
		n = len < sizeof(scratch) ? len : sizeof(scratch);
		err = uffd__recv_all(fd, scratch, n, deadline);
		if (err)
			return err;
		len -= n;
	}
	return 0;
}

static int serve_flush(struct server *srv)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)srv->buf & ~(uintptr_t)(page - 1);

	if (msync((void *)start, (uintptr_t)srv->buf + srv->len - start, MS_SYNC))
		return -errno;
	return 0;
}

/* One request: 0 to go on, -errno to close the connection. */
static int serve_request(struct server *srv, int fd, const struct sock_request *req,
			 uint64_t deadline)
{
	uint64_t n;
	int err;

	if (req->op != SOCK_READ && req->op != SOCK_WRITE && req->op != SOCK_FLUSH) {
		respond(fd, req, -EOPNOTSUPP, NULL, 0, deadline);
		return -EOPNOTSUPP;
	}
	if (req->len > SOCK_MAX_IO) {
		respond(fd, req, -EMSGSIZE, NULL, 0, deadline);
		return -EMSGSIZE;
	}
	switch (req->op) {
	case SOCK_READ:
		n = req->off < srv->len ? srv->len - req->off : 0;
		if (n > req->len)
			n = req->len;
		return respond(fd, req, 0, n ? srv->buf + req->off : NULL, n, deadline);
	case SOCK_WRITE:
		if (req->off > srv->len || req->len > srv->len - req->off) {
			err = discard(fd, req->len, deadline);
			return err ? err : respond(fd, req, -EINVAL, NULL, 0, deadline);
		}
		err = uffd__recv_all(fd, srv->buf + req->off, req->len, deadline);
		return err ? err : respond(fd, req, 0, NULL, req->len, deadline);
	default:
		return respond(fd, req, serve_flush(srv), NULL, 0, deadline);
	}
}

/* Wait, with no deadline, until fd has a request or the server quits. */
static bool wait_request(struct server *srv, int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	while (!__atomic_load_n(&srv->quit, __ATOMIC_ACQUIRE)) {
		if (poll(&pfd, 1, SERVE_POLL_MS) > 0)
			return true;
	}
	return false;
}

/* One client's connection, from its hello until it closes or errs. */
static void serve_conn(struct server *srv, int fd)
{
	struct sock_welcome w = {
		.magic = SOCK_MAGIC, .version = SOCK_VERSION,
		.max_io = SOCK_MAX_IO, .size = srv->len,
	};
	uint64_t deadline = uffd__deadline_ms(SOCK_TIMEOUT_MS);
	struct sock_request req;
	struct sock_hello hello;

	if (uffd__recv_all(fd, &hello, sizeof(hello), deadline) || hello.magic != SOCK_MAGIC)
		return;
	if (hello.version != SOCK_VERSION) {
		w.status = -EPROTONOSUPPORT;
		uffd__send_all(fd, &w, sizeof(w), deadline);
		return;
	}
	if (uffd__send_all(fd, &w, sizeof(w), deadline))
		return;
	while (wait_request(srv, fd)) {
		deadline = uffd__deadline_ms(SOCK_TIMEOUT_MS);
		if (uffd__recv_all(fd, &req, sizeof(req), deadline))
			break;		/* closed, or stalled mid-request */
		if (serve_request(srv, fd, &req, deadline))
			break;
	}
}

static void *serve_client(void *arg)
{
	struct client *c = arg;

	serve_conn(c->srv, c->fd);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

int uffd__store_serve_conn(int fd, void *buf, size_t len)
{
	struct server srv = { .buf = buf, .len = len };

	if (!buf || !len || len > INT64_MAX)
		return -EINVAL;
	serve_conn(&srv, fd);
	return 0;
}

/* Join the clients whose thread ended (all of them, when all). */
static void reap_clients(struct server *srv, bool all)
{
	struct client **pp = &srv->clients, *c;

	while ((c = *pp)) {
		if (!all && !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		pthread_join(c->thread, NULL);
		close(c->fd);
		free(c);
	}
}

static void add_client(struct server *srv, int fd)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	if (pthread_create(&c->thread, NULL, serve_client, c)) {
		close(fd);
		free(c);
		return;
	}
	c->next = srv->clients;
	srv->clients = c;
}

/*
 * A socket file nobody listens on (a server that died) is removed, so a
 * new server can bind; anything else at path is left alone.
 */
static bool remove_stale_socket(const struct sockaddr_un *addr)
{
	struct stat st;
	bool stale;
	int fd;

	if (lstat(addr->sun_path, &st) || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	stale = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) &&
		errno == ECONNREFUSED;
	close(fd);
	return stale && !unlink(addr->sun_path);
}

static int listen_on(const struct sockaddr_un *addr)
{
	int fd, err;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) ? -errno : 0;
	if (err == -EADDRINUSE && remove_stale_socket(addr))
		err = bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) ? -errno : 0;
	if (!err && listen(fd, SERVE_BACKLOG)) {
		err = -errno;
		unlink(addr->sun_path);
	}
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int uffd_store_serve(const char *socket_path, void *buf, size_t len,
		     volatile bool *stop)
{
	struct server srv = { .buf = buf, .len = len, .stop = stop };
	struct pollfd pfd = { .events = POLLIN };
	struct sockaddr_un addr;
	struct client *c;
	int err, fd;

	if (!buf || !len || len > INT64_MAX)
		return -EINVAL;
	err = uffd__unix_addr(&addr, socket_path);
	if (err)
		return err;
	pfd.fd = listen_on(&addr);
	if (pfd.fd < 0)
		return pfd.fd;

	while (!serve_stopping(&srv)) {
		reap_clients(&srv, false);
		if (poll(&pfd, 1, SERVE_POLL_MS) <= 0)
			continue;
		fd = accept4(pfd.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			add_client(&srv, fd);
		} else if (errno == EMFILE || errno == ENFILE ||
			   errno == ENOBUFS || errno == ENOMEM) {
			/* out of descriptors or memory: give clients time to leave */
			struct timespec ts = { .tv_nsec = SERVE_POLL_MS * 1000000L };

			nanosleep(&ts, NULL);
		}
	}

	/* Wake every client thread out of its wait and its receives. */
	__atomic_store_n(&srv.quit, true, __ATOMIC_RELEASE);
	for (c = srv.clients; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	reap_clients(&srv, true);
	close(pfd.fd);
	unlink(addr.sun_path);
	return 0;
}
