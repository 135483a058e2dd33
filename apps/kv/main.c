/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv's command line (see man/uffd-kv.1).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"usage: uffd-kv [--port N] [--bind ADDR] [--dir DIR] [--port-file FILE]\n"
		"               [--maxmemory BYTES] [--arena-addr ADDR] [--snapshot-buffer BYTES]\n"
		"               [--checkpoint-every MS] [--checkpoint-chain N]\n"
		"               [--proto-max-bulk-len BYTES] [--no-restore] [--quiet]\n\n"
		"A Redis-protocol (RESP2) key-value server whose data lives in one arena at a\n"
		"fixed address: BGSAVE is a libuffd live snapshot (no fork), and at start the\n"
		"last image in DIR is restored lazily (served at once, streamed in behind).\n"
		"Port 6379 by default; 0 picks a free one (--port-file tells which).\n");
	return status;
}

/* A size with an optional k/m/g suffix (powers of 1024). */
static int parse_size(const char *s, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': *v <<= 10; end++; break;
	case 'm': case 'M': *v <<= 20; end++; break;
	case 'g': case 'G': *v <<= 30; end++; break;
	}
	if ((*end == 'b' || *end == 'B') && end[1] == 0)
		end++;
	return *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "dir", required_argument, NULL, 'd' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "maxmemory", required_argument, NULL, 'm' },
		{ "arena-addr", required_argument, NULL, 'a' },
		{ "snapshot-buffer", required_argument, NULL, 'B' },
		{ "checkpoint-every", required_argument, NULL, 'c' },
		{ "checkpoint-chain", required_argument, NULL, 'C' },
		{ "proto-max-bulk-len", required_argument, NULL, 'L' },
		{ "no-restore", no_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct server s;
	unsigned long long v;
	int c;

	/*
	 * The event loop's heap never gives memory back to the kernel or
	 * takes it in small steps: brk() and munmap() take the process's
	 * mmap_lock for writing, which waits behind any reader of it - a
	 * snapshot reading /proc/self/pagemap, a monitor reading smaps - and
	 * held the loop 8-14 ms at a time during a BGSAVE.  (The data is in
	 * the arena; the heap holds clients' buffers, a few MiB.)
	 */
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_TOP_PAD, 16 << 20);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);

	s.cfg.bind = "127.0.0.1";
	s.cfg.port = 6379;
	s.cfg.max_bulk = RESP_MAX_BULK_DEFAULT;
	s.cfg.checkpoint_chain = 16;
	while ((c = getopt_long(argc, argv, "p:b:d:P:m:a:B:c:C:L:nqh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_size(optarg, &v) || v > 65535)
				return usage(stderr, 2);
			s.cfg.port = (int)v;
			break;
		case 'b': s.cfg.bind = optarg; break;
		case 'd': s.cfg.dir = optarg; break;
		case 'P': s.cfg.port_file = optarg; break;
		case 'm':
			if (parse_size(optarg, &v))
				return usage(stderr, 2);
			s.cfg.maxmemory = v;
			break;
		case 'a':
			if (parse_size(optarg, &v) || v % 4096)
				return usage(stderr, 2);
			s.cfg.arena_base = v;
			break;
		case 'B':
			if (parse_size(optarg, &v))
				return usage(stderr, 2);
			s.cfg.snapshot_buffer = v;
			break;
		case 'c':
			if (parse_size(optarg, &v) || v > 86400000)
				return usage(stderr, 2);
			s.cfg.checkpoint_ms = (int)v;
			break;
		case 'C':
			if (parse_size(optarg, &v) || v < 1 || v > 1000)
				return usage(stderr, 2);
			s.cfg.checkpoint_chain = (int)v;
			break;
		case 'L':
			if (parse_size(optarg, &v) || v < 1 || v > 0xffffffffULL)
				return usage(stderr, 2);
			s.cfg.max_bulk = (long long)v;
			break;
		case 'n': s.cfg.no_restore = true; break;
		case 'q': s.cfg.quiet = true; break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (optind < argc)
		return usage(stderr, 2);
	if (s.cfg.checkpoint_ms && !s.cfg.dir) {
		fprintf(stderr, "uffd-kv: --checkpoint-every needs --dir\n");
		return 2;
	}
	return server_run(&s);
}
