/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RESP2 request parsing: see resp.h.  The one idea: the parser remembers
 * how far it got (arguments done, the bulk being read, bytes scanned), so
 * each byte is looked at once however the command is cut into reads, and
 * every number is bounded before it decides anything.
 *
 * The error lines are Redis' own (networking.c), so clients see what they
 * would see from redis-server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

/* "*<count>\r\n" and "$<len>\r\n": no valid count needs more characters. */
#define COUNT_MAX_CHARS 20

static const char err_inline[] = "-ERR Protocol error: too big inline request";
static const char err_quotes[] = "-ERR Protocol error: unbalanced quotes in request";
static const char err_mbulk_str[] = "-ERR Protocol error: too big mbulk count string";
static const char err_mbulk[] = "-ERR Protocol error: invalid multibulk length";
static const char err_bulk_str[] = "-ERR Protocol error: too big bulk count string";
static const char err_bulk[] = "-ERR Protocol error: invalid bulk length";

void resp_init(struct resp_parser *p, long long max_bulk)
{
	memset(p, 0, sizeof(*p));
	p->max_bulk = max_bulk > 0 ? max_bulk : RESP_MAX_BULK_DEFAULT;
	resp_reset(p);
}

void resp_free(struct resp_parser *p)
{
	free(p->args);
	p->args = NULL;
	p->cap = 0;
}

void resp_reset(struct resp_parser *p)
{
	p->argc = 0;
	p->consumed = 0;
	p->err = NULL;
	p->want = -1;
	p->bulk = -1;
	p->pos = 0;
	p->inline_cmd = 0;
}

static int push_arg(struct resp_parser *p, size_t off, size_t len)
{
	if (p->argc == p->cap) {
		int cap = p->cap ? p->cap * 2 : 8;
		struct resp_arg *v;

		if (p->want > 0 && cap > p->want)
			cap = (int)p->want;
		if (cap <= p->argc)
			cap = p->argc + 1;
		v = realloc(p->args, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->args = v;
		p->cap = cap;
	}
	p->args[p->argc].off = off;
	p->args[p->argc].len = len;
	p->argc++;
	return 0;
}

/*
 * A decimal count of buf[from..to) as Redis reads it (string2ll): an
 * optional '-', digits, no leading zero, no sign on zero.  -1 if invalid
 * (and for "-0"); *v the value.
 */
static int parse_count(const char *s, size_t n, long long *v)
{
	unsigned long long x = 0;
	size_t i = 0;
	int neg = 0;

	if (n == 0 || n > COUNT_MAX_CHARS)
		return -1;
	if (s[0] == '-') {
		neg = 1;
		i = 1;
		if (n == 1)
			return -1;
	}
	if (s[i] == '0' && n - i > 1)
		return -1;
	if (s[i] == '0' && neg)
		return -1;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (x > (unsigned long long)(1ULL << 62))
			return -1;	/* far beyond any limit: no overflow */
		x = x * 10 + (s[i] - '0');
	}
	*v = neg ? -(long long)x : (long long)x;
	return 0;
}

/*
 * The header line "<c><count>\r\n" starting at buf[at]: 1 with *v and
 * *next (past the "\n"), 0 if it is not all here yet, -1 too long (digits
 * and no '\r' within COUNT_MAX_CHARS + 1 characters), -2 not a count (as
 * soon as a character says so: Redis would say it at the '\r').
 */
static int header_line(const char *buf, size_t len, size_t at, long long *v, size_t *next)
{
	size_t end = at + 1 + COUNT_MAX_CHARS + 1, i;

	for (i = at + 1; i < len && i < end; i++) {
		if (buf[i] == '\r')
			break;
		if ((buf[i] < '0' || buf[i] > '9') && !(buf[i] == '-' && i == at + 1))
			return -2;
	}
	if (i == end)
		return -1;
	if (i + 1 >= len)	/* the '\r' or the '\n' after it is still to come */
		return 0;
	if (parse_count(buf + at + 1, i - at - 1, v))
		return -2;
	*next = i + 2;		/* Redis takes the byte after '\r' as '\n' */
	return 1;
}

static int finish(struct resp_parser *p, size_t consumed)
{
	p->consumed = consumed;
	p->want = -2;		/* done: the next call starts afresh */
	return RESP_DONE;
}

static int fail(struct resp_parser *p, const char *msg)
{
	p->err = msg;
	p->want = -2;
	return RESP_ERROR;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Split an inline line into arguments; quotes group, taken literally. */
static int split_inline(struct resp_parser *p, const char *buf, size_t n)
{
	size_t i = 0;
	int ret;

	while (i < n) {
		size_t start;

		while (i < n && is_space(buf[i]))
			i++;
		if (i == n)
			break;
		if (buf[i] == '"' || buf[i] == '\'') {
			char q = buf[i++];

			start = i;
			while (i < n && buf[i] != q)
				i++;
			/* The closing quote must end the argument. */
			if (i == n || (i + 1 < n && !is_space(buf[i + 1])))
				return fail(p, err_quotes);
			ret = push_arg(p, start, i - start);
			i++;
		} else {
			start = i;
			while (i < n && !is_space(buf[i]))
				i++;
			ret = push_arg(p, start, i - start);
		}
		if (ret)
			return ret;
	}
	return RESP_DONE;
}

static int parse_inline(struct resp_parser *p, const char *buf, size_t len)
{
	const char *nl;
	size_t n;
	int ret;

	nl = memchr(buf + p->pos, '\n', len - p->pos);
	if (!nl) {
		if (len > RESP_MAX_INLINE)
			return fail(p, err_inline);
		p->pos = len;
		return RESP_MORE;
	}
	n = nl - buf;
	if (n > RESP_MAX_INLINE)
		return fail(p, err_inline);
	ret = split_inline(p, buf, n && buf[n - 1] == '\r' ? n - 1 : n);
	if (ret != RESP_DONE)
		return ret;
	return finish(p, n + 1);
}

static int parse_multibulk(struct resp_parser *p, const char *buf, size_t len)
{
	long long v;
	size_t next;
	int ret;

	if (p->want < 0) {
		ret = header_line(buf, len, 0, &v, &next);
		if (ret == 0)
			return RESP_MORE;
		if (ret == -1)
			return fail(p, err_mbulk_str);
		if (ret == -2 || v > RESP_MAX_ARGS)
			return fail(p, err_mbulk);
		if (v <= 0)		/* "*0" and "*-1": nothing to do */
			return finish(p, next);
		p->want = v;
		p->pos = next;
	}
	while (p->argc < p->want) {
		if (p->bulk < 0) {
			if (p->pos >= len)
				return RESP_MORE;
			if (buf[p->pos] != '$') {
				static __thread char msg[64];

				snprintf(msg, sizeof(msg),
					 "-ERR Protocol error: expected '$', got '%c'",
					 buf[p->pos] >= 32 && buf[p->pos] < 127 ? buf[p->pos] : '?');
				return fail(p, msg);
			}
			ret = header_line(buf, len, p->pos, &v, &next);
			if (ret == 0)
				return RESP_MORE;
			if (ret == -1)
				return fail(p, err_bulk_str);
			if (ret == -2 || v < 0 || v > p->max_bulk)
				return fail(p, err_bulk);
			p->bulk = v;
			p->pos = next;
		}
		/* the data and its "\r\n" */
		if (len - p->pos < (size_t)p->bulk + 2)
			return RESP_MORE;
		ret = push_arg(p, p->pos, (size_t)p->bulk);
		if (ret)
			return ret;
		p->pos += (size_t)p->bulk + 2;
		p->bulk = -1;
	}
	return finish(p, p->pos);
}

int resp_parse(struct resp_parser *p, const char *buf, size_t len)
{
	if (p->want == -2)
		resp_reset(p);
	if (len == 0)
		return RESP_MORE;
	if (p->want == -1 && p->pos == 0 && !p->inline_cmd) {
		if (buf[0] != '*')
			p->inline_cmd = 1;
	}
	return p->inline_cmd ? parse_inline(p, buf, len) : parse_multibulk(p, buf, len);
}
