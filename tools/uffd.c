/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd: the command-line front of libuffd.  Argument parsing and output
 * only; everything a library user would also want lives in the library.
 */
#include <string.h>

#include "uffd.h"

static const struct subcommand commands[] = {
	{ "probe", "what this kernel supports and how libuffd will use it", cmd_probe },
	{ "demo", "a tour: each working capability on a built-in workload", cmd_demo },
	{ "bench", "benchmarks against the peers (uffd bench --help)", cmd_bench },
	{ "snapshot-info", "what a memory image (and its chain) holds; verify it",
	  cmd_snapshot_info },
	{ "restore", "restore a memory image into this process, eagerly or lazily",
	  cmd_restore },
	{ "serve", "a page server: lazy restore of other processes over a socket", cmd_serve },
	{ "migrate", "migrate the checker workload, running, to another process", cmd_migrate },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: uffd SUBCOMMAND [options]   (uffd SUBCOMMAND --help)\n\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

void json_str(FILE *f, const char *key, const char *value, bool comma)
{
	const char *c;

	fprintf(f, "\"%s\":\"", key);
	for (c = value; c && *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if ((unsigned char)*c < 0x20)
			fprintf(f, "\\u%04x", *c);
		else
			fputc(*c, f);
	}
	fprintf(f, "\"%s", comma ? "," : "");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "uffd: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
