/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event loop: one thread, epoll, as Redis does it.  A readable client
 * gets one read; every whole command in its buffer runs (pipelines run in
 * one go); the replies pile up in the client's output buffer and are
 * written once, after the loop has served every ready socket and before it
 * sleeps again - so a request costs a read and a write, never more.
 *
 * Saves stop the loop for their instant through server_pause_point(),
 * which the loop passes after every client it served and before it
 * sleeps: a command boundary, so the image never holds half a command.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dict.h"
#include "kv.h"

#define READ_CHUNK	(16 * 1024)	/* Redis' PROTO_IOBUF_LEN */
#define MAX_EVENTS	256
#define CRON_MS		100
#define REHASH_NS	1000000		/* the cron's rehash budget: 1 ms */
#define OBUF_KEEP	(64 * 1024)	/* a bigger idle buffer is freed */
#define QBUF_LIMIT	(1ULL << 30)	/* Redis' client-query-buffer-limit */

static volatile sig_atomic_t got_signal;
static int signal_wake_fd = -1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

void kv_log(struct server *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (s->cfg.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uffd-kv[%d]: %s\n", (int)getpid(), msg);
}

void server_wake(struct server *s)
{
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kv_log(s, "wake: %s", strerror(errno));
}

void server_pause_point(struct server *s)
{
	if (!__atomic_load_n(&s->pause_req, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&s->lock);
	s->paused = true;
	pthread_cond_broadcast(&s->cond);
	while (s->pause_req)
		pthread_cond_wait(&s->cond, &s->lock);
	s->paused = false;
	pthread_mutex_unlock(&s->lock);
}

/* ---- replies -------------------------------------------------------------- */

static void obuf_reserve(struct client *c, size_t n)
{
	size_t cap;
	char *b;

	if (c->olen + n <= c->ocap)
		return;
	cap = c->ocap ? c->ocap : 16 * 1024;
	while (cap < c->olen + n)
		cap *= 2;
	b = realloc(c->obuf, cap);
	if (!b) {
		/* out of memory for replies: drop the client */
		c->close_after_reply = true;
		c->olen = c->osent = 0;
		return;
	}
	c->obuf = b;
	c->ocap = cap;
}

void reply_raw(struct client *c, const char *s, size_t n)
{
	obuf_reserve(c, n);
	if (c->olen + n > c->ocap)
		return;
	memcpy(c->obuf + c->olen, s, n);
	c->olen += n;
}

void reply_str(struct client *c, const char *s)
{
	size_t n = strlen(s);

	obuf_reserve(c, n + 2);
	if (c->olen + n + 2 > c->ocap)
		return;
	memcpy(c->obuf + c->olen, s, n);
	memcpy(c->obuf + c->olen + n, "\r\n", 2);
	c->olen += n + 2;
}

void reply_error(struct client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t i, n;

	va_start(ap, fmt);
	n = (size_t)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= sizeof(msg))
		n = sizeof(msg) - 1;
	/* an error is one line: no CR or LF from what a client sent */
	for (i = 0; i < n; i++)
		if (msg[i] == '\r' || msg[i] == '\n')
			msg[i] = ' ';
	reply_str(c, msg);
}

static void reply_prefixed(struct client *c, char type, long long v)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%c%lld\r\n", type, v);

	reply_raw(c, b, n);
}

void reply_int(struct client *c, long long v)
{
	reply_prefixed(c, ':', v);
}

void reply_array(struct client *c, long long n)
{
	reply_prefixed(c, '*', n);
}

void reply_nil(struct client *c)
{
	reply_raw(c, "$-1\r\n", 5);
}

void reply_bulk(struct client *c, const char *s, size_t n)
{
	char b[32];
	int h = snprintf(b, sizeof(b), "$%zu\r\n", n);

	obuf_reserve(c, h + n + 2);
	if (c->olen + h + n + 2 > c->ocap)
		return;
	memcpy(c->obuf + c->olen, b, h);
	memcpy(c->obuf + c->olen + h, s, n);
	memcpy(c->obuf + c->olen + h + n, "\r\n", 2);
	c->olen += h + n + 2;
}

/* ---- clients -------------------------------------------------------------- */

static void client_free(struct server *s, struct client *c)
{
	struct client **pp;

	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->pending)
		for (pp = &s->pending; *pp; pp = &(*pp)->next_pending)
			if (*pp == c) {
				*pp = c->next_pending;
				break;
			}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nclients--;
	resp_free(&c->parser);
	free(c->qbuf);
	free(c->obuf);
	free(c);
}

static void accept_clients(struct server *s)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct client *c;
		int fd, one = 1;

		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				kv_log(s, "accept: %s", strerror(errno));
			return;
		}
		s->connections++;
		if (s->nclients >= KV_MAX_CLIENTS) {
			static const char msg[] = "-ERR max number of clients reached\r\n";

			if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				(void)0;
			close(fd);
			s->rejected++;
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->id = ++s->next_client_id;
		resp_init(&c->parser, s->cfg.max_bulk);
		ev.data.ptr = c;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			resp_free(&c->parser);
			free(c);
			close(fd);
			continue;
		}
		c->next = s->clients;
		if (s->clients)
			s->clients->prev = c;
		s->clients = c;
		s->nclients++;
	}
}

static void mark_pending(struct server *s, struct client *c)
{
	if (c->pending || c->olen == c->osent)
		return;
	c->pending = true;
	c->next_pending = s->pending;
	s->pending = c;
}

/* Run every whole command in the client's buffer. */
static void process_input(struct server *s, struct client *c)
{
	const char *argv[64];
	size_t lens[64];
	size_t at = 0;

	while (at < c->qlen && !c->close_after_reply && !s->shutdown) {
		int ret = resp_parse(&c->parser, c->qbuf + at, c->qlen - at);

		if (ret == RESP_MORE)
			break;
		if (ret == RESP_ERROR || ret < 0) {
			reply_str(c, ret < 0 ? "-ERR out of memory" : c->parser.err);
			c->close_after_reply = true;
			break;
		}
		if (c->parser.argc > 0) {
			const char **av = argv;
			size_t *lv = lens;
			int i, n = c->parser.argc;

			if (n > 64) {
				av = malloc(n * sizeof(*av));
				lv = malloc(n * sizeof(*lv));
				if (!av || !lv) {
					free(av);
					free(lv);
					reply_str(c, "-ERR out of memory");
					c->close_after_reply = true;
					break;
				}
			}
			for (i = 0; i < n; i++) {
				av[i] = c->qbuf + at + c->parser.args[i].off;
				lv[i] = c->parser.args[i].len;
			}
			command_run(s, c, n, av, lv);
			s->commands++;
			if (av != argv) {
				free(av);
				free(lv);
			}
		}
		at += c->parser.consumed;
	}
	if (at) {
		memmove(c->qbuf, c->qbuf + at, c->qlen - at);
		c->qlen -= at;
	}
}

/* One read; false if the client is gone. */
static bool read_client(struct server *s, struct client *c)
{
	size_t want = READ_CHUNK;
	ssize_t n;

	/* A big bulk being read: ask for the rest of it at once. */
	if (c->parser.bulk > 0 && (size_t)c->parser.bulk + 2 > want + (c->qlen - c->parser.pos))
		want = (size_t)c->parser.bulk + 2 - (c->qlen - c->parser.pos);
	if (c->qlen + want > QBUF_LIMIT + (uint64_t)s->cfg.max_bulk) {
		kv_log(s, "client %llu: query buffer over its limit: closed",
		       (unsigned long long)c->id);
		return false;
	}
	if (c->qcap - c->qlen < want) {
		size_t cap = c->qcap ? c->qcap : READ_CHUNK;
		char *b;

		while (cap - c->qlen < want)
			cap *= 2;
		b = realloc(c->qbuf, cap);
		if (!b)
			return false;
		c->qbuf = b;
		c->qcap = cap;
	}
	n = read(c->fd, c->qbuf + c->qlen, c->qcap - c->qlen);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;	/* gone, maybe in the middle of a command */
	c->qlen += n;
	s->net_in += n;
	process_input(s, c);
	mark_pending(s, c);
	if (c->close_after_reply && c->olen == c->osent)
		return false;
	/* an idle client keeps a small buffer */
	if (c->qlen == 0 && c->qcap > 4 * READ_CHUNK) {
		free(c->qbuf);
		c->qbuf = NULL;
		c->qcap = 0;
	}
	return true;
}

/* Write what is pending; false if the client is gone. */
static bool write_client(struct server *s, struct client *c)
{
	while (c->osent < c->olen) {
		ssize_t n = send(c->fd, c->obuf + c->osent, c->olen - c->osent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return false;
			if (!c->epollout) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
							  .data.ptr = c };

				epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
				c->epollout = true;
			}
			return true;
		}
		c->osent += n;
		s->net_out += n;
	}
	c->olen = c->osent = 0;
	if (c->ocap > OBUF_KEEP) {
		free(c->obuf);
		c->obuf = NULL;
		c->ocap = 0;
	}
	if (c->epollout) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
		c->epollout = false;
	}
	return !c->close_after_reply;
}

static void flush_pending(struct server *s)
{
	while (s->pending) {
		struct client *c = s->pending;

		s->pending = c->next_pending;
		c->pending = false;
		if (!write_client(s, c))
			client_free(s, c);
	}
}

/* ---- the loop --------------------------------------------------------------- */

static void on_signal(int sig)
{
	uint64_t one = 1;

	got_signal = sig;
	if (signal_wake_fd >= 0 && write(signal_wake_fd, &one, sizeof(one)) < 0)
		(void)0;
}

static int listen_on(struct server *s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(s->cfg.port) };
	socklen_t len = sizeof(sa);
	int one = 1;

	if (inet_pton(AF_INET, s->cfg.bind, &sa.sin_addr) != 1) {
		kv_log(s, "bad --bind address %s", s->cfg.bind);
		return -EINVAL;
	}
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return -errno;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(s->lfd, 511))
		return -errno;
	if (getsockname(s->lfd, (struct sockaddr *)&sa, &len))
		return -errno;
	s->port = ntohs(sa.sin_port);
	return 0;
}

/* The port for whoever started us, written whole (a rename). */
static int write_port_file(struct server *s)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (!s->cfg.port_file)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", s->cfg.port_file, (int)getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", s->port);
	if (fclose(f) || rename(tmp, s->cfg.port_file)) {
		unlink(tmp);
		return -errno;
	}
	return 0;
}

static void cron(struct server *s)
{
	uint64_t t0 = now_ns();

	persist_cron(s);
	/* Finish a rehash while idle (a millisecond at a time). */
	while (!s->arena.no_resize && dict_rehash(&s->arena, 100) && now_ns() - t0 < REHASH_NS)
		;
}

int server_run(struct server *s)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[MAX_EVENTS];
	struct sigaction sa = { .sa_handler = on_signal };
	int ret, i, n;

	s->lfd = s->epfd = s->wake_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->start_time = time(NULL);
	signal(SIGPIPE, SIG_IGN);
	ret = listen_on(s);
	if (ret) {
		kv_log(s, "listen on %s:%d: %s", s->cfg.bind, s->cfg.port, strerror(-ret));
		return 1;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->epfd < 0 || s->wake_fd < 0)
		return 1;
	ev.data.ptr = &s->lfd;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev);
	ev.data.ptr = &s->wake_fd;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev);
	signal_wake_fd = s->wake_fd;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	ret = persist_init(s);
	if (ret) {
		kv_log(s, "cannot start: %s", strerror(-ret));
		return 1;
	}
	ret = write_port_file(s);
	if (ret) {
		kv_log(s, "--port-file %s: %s", s->cfg.port_file, strerror(-ret));
		persist_free(s);
		return 1;
	}
	kv_log(s, "ready on %s:%d, arena at %#llx (%llu MiB mapped, %llu keys)", s->cfg.bind,
	       s->port, (unsigned long long)arena_base(&s->arena),
	       (unsigned long long)(arena_mapped(&s->arena) >> 20),
	       (unsigned long long)dict_size(&s->arena));
	s->cron_ns = now_ns();

	while (!s->shutdown) {
		uint64_t t = now_ns();
		int timeout = 0;

		if (t - s->cron_ns >= CRON_MS * 1000000ULL) {
			cron(s);
			s->cron_ns = t;
		}
		server_pause_point(s);
		if (!s->pending)
			timeout = CRON_MS - (int)((now_ns() - s->cron_ns) / 1000000);
		if (timeout < 0)
			timeout = 0;
		n = epoll_wait(s->epfd, evs, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			kv_log(s, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &s->lfd) {
				accept_clients(s);
			} else if (p == &s->wake_fd) {
				uint64_t v;

				if (read(s->wake_fd, &v, sizeof(v)) < 0)
					(void)0;
				persist_cron(s);	/* a save may have finished */
			} else {
				struct client *c = p;
				bool alive = true;

				if (evs[i].events & EPOLLOUT)
					alive = write_client(s, c);
				if (alive && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					alive = read_client(s, c);
				if (!alive)
					client_free(s, c);
			}
			server_pause_point(s);
		}
		flush_pending(s);
		if (got_signal) {
			kv_log(s, "signal %d: shutting down", (int)got_signal);
			s->shutdown = true;
		}
	}
	flush_pending(s);
	persist_stop(s);
	while (s->clients)
		client_free(s, s->clients);
	persist_free(s);
	close(s->lfd);
	close(s->epfd);
	signal_wake_fd = -1;
	close(s->wake_fd);
	kv_log(s, "bye");
	return s->exit_code;
}
