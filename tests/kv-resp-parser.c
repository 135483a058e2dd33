/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv's RESP2 request parser finds exactly the commands a client sent,
 * however the bytes are cut: each test input is parsed whole, then fed one
 * byte more at a time (RESP_MORE until the last byte), with the same
 * arguments either way; inline commands split on spaces and quotes; "*0"
 * and an empty line are no command; and every bound gives Redis' own error
 * line: a multibulk count that is not a number or over 1M, a bulk length
 * over the limit (also a huge one whose data never comes), a count string
 * that never ends, '$' missing, an inline line over 64 KiB, unbalanced
 * quotes.  A header announcing a million arguments allocates nothing until
 * they arrive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/harness.h"
#include "../apps/kv/resp.h"

/* Parse s whole: the status, and the arguments joined by '|'. */
static int parse_all(struct resp_parser *p, const char *s, size_t n, char *out, size_t cap)
{
	int ret = resp_parse(p, s, n), i;
	size_t len = 0;

	out[0] = 0;
	if (ret != RESP_DONE)
		return ret;
	for (i = 0; i < p->argc; i++)
		len += snprintf(out + len, cap - len, "%s%.*s", i ? "|" : "",
				(int)p->args[i].len, s + p->args[i].off);
	return ret;
}

static void expect_cmd(const char *in, size_t n, const char *want, size_t consumed)
{
	struct resp_parser p;
	char got[512];
	size_t k;
	int ret;

	resp_init(&p, 0);
	ret = parse_all(&p, in, n, got, sizeof(got));
	if (ret != RESP_DONE || strcmp(got, want) || p.consumed != consumed)
		FAIL("%.*s: status %d, args '%s' (want '%s'), consumed %zu (want %zu)", (int)n,
		     in, ret, got, want, p.consumed, consumed);
	/* byte by byte: the same parser, growing input */
	resp_reset(&p);
	for (k = 0; k < consumed; k++) {
		ret = parse_all(&p, in, k, got, sizeof(got));
		if (ret != RESP_MORE)
			FAIL("%.*s: %zu of %zu bytes gave %d, want RESP_MORE", (int)n, in, k,
			     consumed, ret);
	}
	ret = parse_all(&p, in, consumed, got, sizeof(got));
	if (ret != RESP_DONE || strcmp(got, want))
		FAIL("%.*s fed byte by byte: status %d, args '%s' (want '%s')", (int)n, in, ret,
		     got, want);
	resp_free(&p);
}

static void expect_error(const char *in, size_t n, long long max_bulk, const char *err)
{
	struct resp_parser p;
	int ret;

	resp_init(&p, max_bulk);
	ret = resp_parse(&p, in, n);
	if (ret != RESP_ERROR || strcmp(p.err, err))
		FAIL("%.*s: status %d, error '%s', want '%s'", n > 80 ? 80 : (int)n, in, ret,
		     ret == RESP_ERROR ? p.err : "", err);
	resp_free(&p);
}

static void expect_more(const char *in, size_t n)
{
	struct resp_parser p;
	int ret;

	resp_init(&p, 0);
	ret = resp_parse(&p, in, n);
	if (ret != RESP_MORE)
		FAIL("%.*s: status %d, want RESP_MORE", (int)n, in, ret);
	resp_free(&p);
}

#define S(x) x, sizeof(x) - 1

int main(void)
{
	static char big[RESP_MAX_INLINE + 10];
	struct resp_parser p;
	const char *two = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
	char got[64];

	expect_cmd(S("*1\r\n$4\r\nPING\r\n"), "PING", 14);
	expect_cmd(S("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"), "SET|key|va\r\nl", 33);
	expect_cmd(S("*2\r\n$3\r\nGET\r\n$0\r\n\r\n"), "GET|", 19);
	expect_cmd(S("PING\r\n"), "PING", 6);
	expect_cmd(S("set  k\t v\n"), "set|k|v", 10);
	expect_cmd(S("SET \"a b\" 'c d'\r\n"), "SET|a b|c d", 17);
	expect_cmd(S("*0\r\n"), "", 4);
	expect_cmd(S("*-1\r\n"), "", 5);
	expect_cmd(S("\r\n"), "", 2);
	/* binary bulk data: anything, including a NUL */
	expect_cmd("*1\r\n$3\r\na\0b\r\n", 13, "a", 13);

	/* a pipeline: the first command, then the rest from where it ended */
	resp_init(&p, 0);
	CHECK_EQ(parse_all(&p, two, strlen(two), got, sizeof(got)), RESP_DONE);
	CHECK(!strcmp(got, "PING"));
	CHECK_EQ(p.consumed, 14);
	CHECK_EQ(parse_all(&p, two + 14, strlen(two) - 14, got, sizeof(got)), RESP_DONE);
	CHECK(!strcmp(got, "GET|k"));
	CHECK_EQ(p.consumed, strlen(two) - 14);
	resp_free(&p);

	/* bounds and Redis' error lines */
	expect_error(S("*x\r\n"), 0, "-ERR Protocol error: invalid multibulk length");
	expect_error(S("*1048577\r\n"), 0, "-ERR Protocol error: invalid multibulk length");
	expect_error(S("*01\r\n"), 0, "-ERR Protocol error: invalid multibulk length");
	expect_error(S("*11111111111111111111111111\r\n"), 0,
		     "-ERR Protocol error: too big mbulk count string");
	expect_error(S("*1\r\nPING\r\n"), 0, "-ERR Protocol error: expected '$', got 'P'");
	expect_error(S("*1\r\n$-1\r\n"), 0, "-ERR Protocol error: invalid bulk length");
	expect_error(S("*1\r\n$1000000000000\r\n"), 0, "-ERR Protocol error: invalid bulk length");
	expect_error(S("*1\r\n$1025\r\n"), 1024, "-ERR Protocol error: invalid bulk length");
	expect_error(S("*1\r\n$1111111111111111111111111111\r\n"), 0,
		     "-ERR Protocol error: too big bulk count string");
	expect_error(S("SET \"a b\r\n"), 0, "-ERR Protocol error: unbalanced quotes in request");
	expect_error(S("SET \"a\"b\r\n"), 0, "-ERR Protocol error: unbalanced quotes in request");
	memset(big, 'a', sizeof(big));
	expect_error(big, sizeof(big), 0, "-ERR Protocol error: too big inline request");
	/* within the limits, not all there yet */
	expect_more(S("*1\r\n$536870912\r\n"));		/* 512 MiB announced */
	expect_more(big, RESP_MAX_INLINE);
	expect_more(S("*2\r\n$3\r\nGET\r\n$1\r\n"));

	/* a million arguments announced, one sent: one small array */
	resp_init(&p, 0);
	CHECK_EQ(resp_parse(&p, S("*1048576\r\n$1\r\na\r\n")), RESP_MORE);
	CHECK_EQ(p.argc, 1);
	CHECK(p.cap <= 8);
	resp_free(&p);
	return T_EXIT_PASS;
}
