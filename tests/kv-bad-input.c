/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv keeps serving through bad input.  A client that disconnects in
 * the middle of a command (in its header, in a bulk, in a large bulk)
 * leaves nothing behind; a bulk length over --proto-max-bulk-len (and a
 * huge one) and binary garbage get a protocol error line and that
 * connection is closed, after the replies of the good commands pipelined
 * before it; a full arena (--maxmemory) answers SET with Redis' -OOM line
 * and keeps what it had, and frees room on DEL; 10000 pipelined commands
 * are answered in order; a value at the bulk limit comes back exactly.  After all of
 * it the server answers PING and exits 0 on SIGTERM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/kv-server.h"

#define S(x) x, sizeof(x) - 1

/* Send raw bytes on a new connection and hang up without reading. */
static void send_and_hang_up(int port, const char *raw, size_t n)
{
	struct kvc c;

	CHECK_OK(kvc_connect(&c, NULL, port, 10000));
	CHECK_OK(kvc_append_raw(&c, raw, n));
	CHECK_OK(kvc_flush(&c));
	kvc_close(&c);
}

/* Raw bytes on a new connection: the replies rendered, then it must close. */
static void expect_closed_after(int port, const char *raw, size_t n, const char *want)
{
	char got[512];
	size_t len = 0;
	struct kvc_reply r;
	struct kvc c;
	int ret;

	CHECK_OK(kvc_connect(&c, NULL, port, 10000));
	CHECK_OK(kvc_append_raw(&c, raw, n));
	CHECK_OK(kvc_flush(&c));
	got[0] = 0;
	while ((ret = kvc_read(&c, &r)) == 0)
		len += snprintf(got + len, sizeof(got) - len, "%c%.*s|", r.type,
				r.type == KVC_INT ? 0 : (int)r.len, r.str ? r.str : "");
	if (ret != -ECONNRESET)
		FAIL("the connection did not close: %s", strerror(-ret));
	if (strcmp(got, want))
		FAIL("got %s, want %s", got, want);
	kvc_close(&c);
}

int main(void)
{
	const char *const small_bulk[] = { "--proto-max-bulk-len", "1m", "--maxmemory", "96m",
					   NULL };
	static char value[1 << 20];
	char garbage[4096], words[64], *big;
	const char *argv[3];
	size_t lens[3];
	struct kvc_reply r;
	struct t_kv kv;
	int i, oom = 0, stored = 0;

	t_kv_start(&kv, NULL, small_bulk);

	/* hang-ups in the middle of a command */
	send_and_hang_up(kv.port, S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc"));
	send_and_hang_up(kv.port, S("*3\r\n$3\r\nSET\r\n$1\r\nk"));
	send_and_hang_up(kv.port, S("*3\r\n$3"));
	big = malloc(600000);
	CHECK(big);
	memcpy(big, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n", 31);
	memset(big + 31, 'x', 600000 - 31);
	send_and_hang_up(kv.port, big, 600000);
	free(big);
	t_kv_expect(&kv, "GET k", "(nil)");
	t_kv_expect(&kv, "DBSIZE", ":0");

	/* bounded lengths, garbage: an error line, then the close */
	expect_closed_after(kv.port, S("*1\r\n$1048577\r\n"),
			    "-ERR Protocol error: invalid bulk length|");
	expect_closed_after(kv.port, S("*1\r\n$99999999999999\r\n"),
			    "-ERR Protocol error: invalid bulk length|");
	expect_closed_after(kv.port, S("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n:1\r\n"),
			    "+PONG|-ERR Protocol error: expected '$', got ':'|");
	srand(7);
	for (i = 0; i < (int)sizeof(garbage); i++)
		garbage[i] = (char)(rand() % 256);
	garbage[0] = '*';	/* a multibulk header that is not a number */
	garbage[1] = '@';
	expect_closed_after(kv.port, garbage, sizeof(garbage),
			    "-ERR Protocol error: invalid multibulk length|");

	/* 10000 pipelined commands, answered in order */
	for (i = 0; i < 10000; i++) {
		snprintf(words, sizeof(words), "%d", i);
		argv[0] = "ECHO";
		argv[1] = words;
		CHECK_OK(kvc_append(&kv.c, 2, argv, NULL));
	}
	CHECK_OK(kvc_flush(&kv.c));
	for (i = 0; i < 10000; i++) {
		CHECK_OK(kvc_read(&kv.c, &r));
		snprintf(words, sizeof(words), "%d", i);
		CHECK(r.type == KVC_BULK && r.len == strlen(words) && !memcmp(r.str, words, r.len));
	}

	/* a value at the bulk limit comes back whole */
	for (i = 0; i < (1 << 20); i++)
		value[i] = (char)(i * 7 + 3);
	argv[0] = "SET";
	argv[1] = "whole";
	argv[2] = value;
	lens[0] = 3;
	lens[1] = 5;
	lens[2] = 1 << 20;
	CHECK_OK(kvc_append(&kv.c, 3, argv, lens));
	CHECK_OK(kvc_flush(&kv.c));
	CHECK_OK(kvc_read(&kv.c, &r));
	CHECK(r.type == KVC_STATUS);
	argv[0] = "GET";
	CHECK_OK(kvc_append(&kv.c, 2, argv, lens));
	CHECK_OK(kvc_flush(&kv.c));
	CHECK_OK(kvc_read(&kv.c, &r));
	CHECK(r.type == KVC_BULK && r.len == (1 << 20) && !memcmp(r.str, value, r.len));

	/* the arena fills up: -OOM, and what was stored stays */
	lens[2] = 512 << 10;
	for (i = 0; i < 400 && !oom; i++) {
		snprintf(words, sizeof(words), "fill:%d", i);
		argv[0] = "SET";
		argv[1] = words;
		lens[1] = strlen(words);
		CHECK_OK(kvc_append(&kv.c, 3, argv, lens));
		CHECK_OK(kvc_flush(&kv.c));
		CHECK_OK(kvc_read(&kv.c, &r));
		if (r.type == KVC_ERROR) {
			if (r.len < 4 || memcmp(r.str, "OOM ", 4))
				FAIL("SET %s: -%.*s, want -OOM", words, (int)r.len, r.str);
			oom = 1;
		} else {
			stored++;
		}
	}
	CHECK(oom);
	CHECK(stored >= 100);	/* 96 MiB: most of it for values */
	t_kv_expect(&kv, "STRLEN fill:0", ":524288");
	snprintf(words, sizeof(words), "STRLEN fill:%d", stored - 1);
	t_kv_expect(&kv, words, ":524288");
	t_kv_expect(&kv, "DEL fill:0 fill:1", ":2");
	argv[1] = "again";
	lens[1] = 5;
	CHECK_OK(kvc_append(&kv.c, 3, argv, lens));
	CHECK_OK(kvc_flush(&kv.c));
	CHECK_OK(kvc_read(&kv.c, &r));
	CHECK(r.type == KVC_STATUS);

	t_kv_expect(&kv, "PING", "+PONG");
	CHECK_EQ(t_kv_stop(&kv), 0);
	return T_EXIT_PASS;
}
