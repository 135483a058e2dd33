/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The test and bench client (see client.h): a buffer each way, and a
 * reply parser that needs the whole reply line (and bulk) in the buffer,
 * reading more until it is there or the deadline passes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int kvc_connect(struct kvc *c, const char *host, int port, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	if (inet_pton(AF_INET, host ? host : "127.0.0.1", &sa.sin_addr) != 1)
		return -EINVAL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int ret = -errno;

		close(c->fd);
		c->fd = -1;
		return ret;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

void kvc_close(struct kvc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->in_len = c->in_pos = c->in_cap = c->out_len = c->out_cap = 0;
}

static int out_reserve(struct kvc *c, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *b;

		while (cap < c->out_len + n)
			cap *= 2;
		b = realloc(c->out, cap);
		if (!b)
			return -ENOMEM;
		c->out = b;
		c->out_cap = cap;
	}
	return 0;
}

int kvc_append_raw(struct kvc *c, const void *buf, size_t len)
{
	if (out_reserve(c, len))
		return -ENOMEM;
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return 0;
}

int kvc_append(struct kvc *c, int argc, const char *const *argv, const size_t *lens)
{
	char h[32];
	int i, n;

	n = snprintf(h, sizeof(h), "*%d\r\n", argc);
	if (kvc_append_raw(c, h, n))
		return -ENOMEM;
	for (i = 0; i < argc; i++) {
		size_t len = lens ? lens[i] : strlen(argv[i]);

		n = snprintf(h, sizeof(h), "$%zu\r\n", len);
		if (kvc_append_raw(c, h, n) || kvc_append_raw(c, argv[i], len) ||
		    kvc_append_raw(c, "\r\n", 2))
			return -ENOMEM;
	}
	return 0;
}

/* Wait for fd to be ready for events until the deadline. */
static int wait_fd(struct kvc *c, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int64_t left = deadline - now_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&pfd, 1, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n ? 0 : -ETIMEDOUT;
}

int kvc_flush(struct kvc *c)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	size_t sent = 0;

	while (sent < c->out_len) {
		ssize_t n = send(c->fd, c->out + sent, c->out_len - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int ret;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return errno == EPIPE ? -ECONNRESET : -errno;
			/* the server may be writing replies we have not read:
			 * read them into the buffer meanwhile */
			ret = wait_fd(c, POLLOUT | POLLIN, deadline);
			if (ret)
				return ret;
			{
				struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

				if (poll(&pfd, 1, 0) == 1) {
					if (c->in_cap - c->in_len < 65536) {
						size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
						char *b = realloc(c->in, cap);

						if (!b)
							return -ENOMEM;
						c->in = b;
						c->in_cap = cap;
					}
					n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
						 MSG_DONTWAIT);
					if (n > 0)
						c->in_len += n;
				}
			}
			continue;
		}
		sent += n;
	}
	c->out_len = 0;
	return 0;
}

/* Make sure n bytes from in_pos are buffered. */
static int fill(struct kvc *c, size_t n, int64_t deadline)
{
	while (c->in_len - c->in_pos < n) {
		ssize_t got;
		int ret;

		if (c->in_pos && c->in_pos == c->in_len) {
			c->in_pos = c->in_len = 0;
		} else if (c->in_pos > c->in_cap / 2) {
			memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
			c->in_len -= c->in_pos;
			c->in_pos = 0;
		}
		if (c->in_cap - c->in_len < 65536 || c->in_cap < c->in_pos + n) {
			size_t cap = c->in_cap ? c->in_cap : 65536;
			char *b;

			while (cap - c->in_len < 65536 || cap < c->in_pos + n)
				cap *= 2;
			b = realloc(c->in, cap);
			if (!b)
				return -ENOMEM;
			c->in = b;
			c->in_cap = cap;
		}
		got = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (got > 0) {
			c->in_len += got;
			continue;
		}
		if (got == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		ret = wait_fd(c, POLLIN, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

/* A line ending in CRLF at in_pos: its length without the CRLF. */
static int read_line(struct kvc *c, size_t *len, int64_t deadline)
{
	size_t scanned = 0;
	int ret;

	for (;;) {
		char *p = c->in_len - c->in_pos > scanned ?
			  memchr(c->in + c->in_pos + scanned, '\n',
				 c->in_len - c->in_pos - scanned) : NULL;

		if (p) {
			*len = p - (c->in + c->in_pos);
			if (*len == 0 || p[-1] != '\r')
				return -EPROTO;
			(*len)--;
			return 0;
		}
		scanned = c->in_len - c->in_pos;
		ret = fill(c, scanned + 1, deadline);
		if (ret)
			return ret;
	}
}

int kvc_read(struct kvc *c, struct kvc_reply *r)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	size_t len;
	char *line, *end;
	int ret;

	ret = read_line(c, &len, deadline);
	if (ret)
		return ret;
	line = c->in + c->in_pos;
	memset(r, 0, sizeof(*r));
	r->type = (enum kvc_type)line[0];
	switch (line[0]) {
	case '+':
	case '-':
		r->str = line + 1;
		r->len = len - 1;
		c->in_pos += len + 2;
		return 0;
	case ':':
	case '*':
	case '$':
		errno = 0;
		r->integer = strtoll(line + 1, &end, 10);
		if (errno || end != line + len)
			return -EPROTO;
		c->in_pos += len + 2;
		if (line[0] == '$') {
			if (r->integer < 0) {
				r->type = KVC_NIL;
				return 0;
			}
			ret = fill(c, r->integer + 2, deadline);
			if (ret)
				return ret;
			r->str = c->in + c->in_pos;
			r->len = r->integer;
			c->in_pos += r->integer + 2;
		} else if (line[0] == '*' && r->integer < 0) {
			r->type = KVC_NIL;
		}
		return 0;
	default:
		return -EPROTO;
	}
}

int kvc_cmd(struct kvc *c, struct kvc_reply *r, int argc, const char *const *argv)
{
	int ret = kvc_append(c, argc, argv, NULL);

	if (!ret)
		ret = kvc_flush(c);
	return ret ? ret : kvc_read(c, r);
}

int kvc_cmdf(struct kvc *c, struct kvc_reply *r, const char *words)
{
	char buf[512], *argv[32], *save = NULL, *w;
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", words);
	for (w = strtok_r(buf, " ", &save); w && argc < 32; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	return kvc_cmd(c, r, argc, (const char *const *)argv);
}

int kvc_info_str(struct kvc *c, const char *section, const char *field, char *buf,
		 size_t cap)
{
	const char *argv[] = { "INFO", section ? section : "all" };
	struct kvc_reply r;
	size_t flen = strlen(field), i;
	int ret = kvc_cmd(c, &r, 2, argv);

	if (ret)
		return ret;
	if (r.type != KVC_BULK)
		return -EPROTO;
	for (i = 0; i + flen < r.len; i++) {
		if ((i == 0 || r.str[i - 1] == '\n') && !memcmp(r.str + i, field, flen) &&
		    r.str[i + flen] == ':') {
			size_t s = i + flen + 1, e = s;

			while (e < r.len && r.str[e] != '\r' && r.str[e] != '\n')
				e++;
			if (e - s >= cap)
				e = s + cap - 1;
			memcpy(buf, r.str + s, e - s);
			buf[e - s] = 0;
			return 0;
		}
	}
	return -ENOENT;
}

int kvc_info_ll(struct kvc *c, const char *section, const char *field, long long *v)
{
	char buf[64], *end;
	int ret = kvc_info_str(c, section, field, buf, sizeof(buf));

	if (ret)
		return ret;
	*v = strtoll(buf, &end, 10);
	return end == buf ? -EPROTO : 0;
}
