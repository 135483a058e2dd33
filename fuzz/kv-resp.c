/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: uffd-kv's RESP2 request parser (apps/kv/resp.c).  The
 * input is what a client sends.  It is parsed twice: whole, command after
 * command, and again arriving in pieces whose sizes the input's first
 * bytes choose (as reads would cut it).  Both must find the same commands
 * with the same arguments and the same error at the same place, every
 * argument must lie inside what was consumed, and nothing may be read
 * past the bytes given (ASan).  A small bulk limit makes the limit's
 * error reachable.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../apps/kv/resp.c"

#define MAX_BULK 4096
#define MAX_EVENTS 4096

struct event {
	int status;			/* RESP_DONE or RESP_ERROR */
	size_t at, consumed;		/* where the command began, its bytes */
	uint64_t hash;			/* of its arguments, or of the error line */
	int argc;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

static struct event record(struct resp_parser *p, int st, const uint8_t *cmd, size_t at,
			   size_t avail)
{
	struct event e = { st, at, 0, 0xcbf29ce484222325ULL, 0 };
	int i;

	if (st == RESP_ERROR) {
		e.hash = mix(e.hash, p->err, strlen(p->err));
		return e;
	}
	e.consumed = p->consumed;
	e.argc = p->argc;
	if (p->consumed == 0 || p->consumed > avail)
		abort();
	for (i = 0; i < p->argc; i++) {
		if (p->args[i].off > p->consumed || p->args[i].len > p->consumed - p->args[i].off)
			abort();
		e.hash = mix(e.hash, &p->args[i].len, sizeof(p->args[i].len));
		e.hash = mix(e.hash, cmd + p->args[i].off, p->args[i].len);
	}
	return e;
}

/* Parse data as it arrives in pieces (step(): the next piece's size). */
static int parse(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts,
		 struct event *ev)
{
	struct resp_parser p;
	size_t start = 0, have = 0, k = 0;
	int n = 0;

	resp_init(&p, MAX_BULK);
	while (start < size && n < MAX_EVENTS) {
		int st;

		if (have < size) {	/* one more piece arrives */
			size_t piece = ncuts ? (size_t)cuts[k++ % ncuts] + 1 : size;

			have = have + piece > size ? size : have + piece;
		}
		/* a copy of exactly what arrived: ASan sees any over-read */
		{
			uint8_t *buf = malloc(have - start ? have - start : 1);

			if (!buf)
				abort();
			memcpy(buf, data + start, have - start);
			st = resp_parse(&p, (const char *)buf, have - start);
			if (st == RESP_DONE || st == RESP_ERROR)
				ev[n++] = record(&p, st, buf, start, have - start);
			free(buf);
		}
		if (st == RESP_ERROR)
			break;
		if (st == RESP_DONE)
			start += p.consumed;
		else if (have == size)
			break;		/* the rest never completes */
		if (st < 0)
			abort();
	}
	resp_free(&p);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event whole[MAX_EVENTS], pieces[MAX_EVENTS];
	size_t ncuts;
	int n1, n2, i;

	if (size < 1)
		return 0;
	ncuts = data[0] % 8;
	if (size < 1 + ncuts)
		return 0;
	n1 = parse(data + 1 + ncuts, size - 1 - ncuts, NULL, 0, whole);
	n2 = parse(data + 1 + ncuts, size - 1 - ncuts, data + 1, ncuts, pieces);
	if (n1 != n2)
		abort();
	for (i = 0; i < n1; i++)
		if (memcmp(&whole[i], &pieces[i], sizeof(whole[i])))
			abort();
	return 0;
}
