/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Redis protocol (RESP2), request side: a pure, bounded, incremental
 * parser of client commands.
 *
 * A client sends either a multibulk ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or
 * an inline line ("GET k\r\n").  resp_parse() is handed the bytes received
 * so far (the start of the buffer is the start of a command) and either
 * finds one whole command in them, asks for more, or fails with the error
 * line Redis itself sends.  It keeps its place between calls, so a 512 MiB
 * value arriving in pieces is scanned once, not once per piece.  Arguments
 * are offsets into the buffer, not copies: the caller may move the buffer
 * (realloc) between calls as long as the bytes keep their offsets.
 *
 * Every length is checked against a stated maximum before use: a bulk
 * length, an argument count, an inline line.  The parser does no I/O and
 * allocates only its argument array, which grows with the arguments that
 * really arrived (a header claiming a million arguments costs nothing until
 * they come).
 */
#ifndef UFFD_KV_RESP_H
#define UFFD_KV_RESP_H

#include <stddef.h>
#include <stdint.h>

/* Redis' defaults: proto-max-bulk-len, its multibulk and inline limits. */
#define RESP_MAX_BULK_DEFAULT	(512LL << 20)
#define RESP_MAX_ARGS		(1024 * 1024)
#define RESP_MAX_INLINE		(64 * 1024)

struct resp_arg {
	size_t off;		/* from the start of the command */
	size_t len;
};

enum resp_status {
	RESP_MORE = 0,		/* no whole command yet: call again with more */
	RESP_DONE,		/* a command: argc/args, consumed bytes */
	RESP_ERROR,		/* a protocol error: err is the reply line */
};

struct resp_parser {
	long long max_bulk;	/* set by resp_init() (0: the default) */
	/* the command found (valid after RESP_DONE until the next call) */
	int argc;
	struct resp_arg *args;
	size_t consumed;	/* bytes of the buffer the command took */
	const char *err;	/* after RESP_ERROR: "-ERR Protocol error: ..." */
	/* where it stands in the command being parsed */
	int cap;
	long long want;		/* arguments announced by '*' (-1: not yet) */
	long long bulk;		/* length of the bulk being read (-1: its header) */
	size_t pos;		/* scanned up to here */
	int inline_cmd;		/* 1: the command is an inline line */
};

void resp_init(struct resp_parser *p, long long max_bulk);
void resp_free(struct resp_parser *p);
/* Forget the command (RESP_DONE or not): the next call starts afresh. */
void resp_reset(struct resp_parser *p);

/*
 * Parse buf[0..len): the start of a command (and maybe others after it).
 * RESP_DONE: p->argc arguments (argc may be 0 for an empty inline line:
 * skip it), p->consumed bytes used; then drop them from the buffer and call
 * again for the next one (which resets p).  RESP_ERROR: p->err; the
 * connection should be answered and closed, as Redis does.  -ENOMEM is
 * returned if the argument array cannot grow.
 */
int resp_parse(struct resp_parser *p, const char *buf, size_t len);

#endif
