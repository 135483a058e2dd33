/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one argument parser of the uffd command: every subcommand and every
 * bench describes its options in a table, and args_parse() applies the
 * same rules to all of them (see args.c).
 */
#ifndef UFFD_TOOL_ARGS_H
#define UFFD_TOOL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

enum arg_type {
	ARG_FLAG,	/* no value: *(bool *)dest = true */
	ARG_UINT,	/* a whole number in decimal, min..max, stored times
			   unit in *(uint64_t *)dest */
	ARG_BYTES,	/* a whole number with an optional K, M or G (and B or
			   iB), min..max bytes, in *(uint64_t *)dest */
	ARG_STRING,	/* *(const char **)dest = the value, not empty, at most
			   max bytes (0: any length) */
	ARG_CHOICE,	/* one of choices[]: *(int *)dest = its index */
};

struct arg_opt {
	const char *name;		/* --name; NULL ends the table */
	char short_name;		/* -c, or 0 */
	enum arg_type type;
	void *dest;
	bool *seen;			/* set true when given (may be NULL) */
	const char *value;		/* the value's name in --help: "MiB", "N" */
	const char *help;		/* one line for --help */
	uint64_t min, max;		/* ARG_UINT (in its unit), ARG_BYTES */
	uint64_t unit;			/* ARG_UINT: multiplier (0: 1) */
	const char *const *choices;	/* ARG_CHOICE: NULL-terminated */
};

/* Table entries.  seen may be NULL; unit multiplies an ARG_UINT (0: 1). */
#define OPT_FLAG(n, c, d, h) \
	{ .name = (n), .short_name = (c), .type = ARG_FLAG, .dest = (d), .help = (h) }
#define OPT_UINT(n, c, d, s, v, h, lo, hi, u) \
	{ .name = (n), .short_name = (c), .type = ARG_UINT, .dest = (d), .seen = (s), \
	  .value = (v), .help = (h), .min = (lo), .max = (hi), .unit = (u) }
#define OPT_BYTES(n, c, d, s, h, lo, hi) \
	{ .name = (n), .short_name = (c), .type = ARG_BYTES, .dest = (d), .seen = (s), \
	  .value = "BYTES", .help = (h), .min = (lo), .max = (hi) }
#define OPT_STRING(n, c, d, v, h, maxlen) \
	{ .name = (n), .short_name = (c), .type = ARG_STRING, .dest = (d), \
	  .value = (v), .help = (h), .max = (maxlen) }
#define OPT_CHOICE(n, c, d, s, v, h, list) \
	{ .name = (n), .short_name = (c), .type = ARG_CHOICE, .dest = (d), .seen = (s), \
	  .value = (v), .help = (h), .choices = (list) }
#define OPT_END { .name = NULL }

struct arg_spec {
	const char *prog;		/* "uffd bench fault" */
	const char *synopsis;		/* after prog on the usage line (NULL:
					   "[options]") */
	const char *about;		/* --help: what it does (may be NULL) */
	const struct arg_opt *opts;	/* may be NULL: no options */
	int min_args, max_args;		/* positional arguments allowed */
	const char *arg_name;		/* what they are, for "missing FILE" */
	/* out */
	char **args;			/* the positional arguments */
	int nargs;
};

/* args_parse() found nothing wrong and no --help: go on. */
#define ARGS_GO_ON (-1)

/*
 * Parse argv (argv[0] is the subcommand's own name).  ARGS_GO_ON, or the
 * exit status to return at once: EXIT_OK after printing --help, or
 * EXIT_USAGE after saying what is wrong and the usage line on stderr.
 */
int args_parse(struct arg_spec *spec, int argc, char **argv);

/* A usage error found after parsing (options that do not go together):
 * "prog: message" and the usage line on stderr; returns EXIT_USAGE. */
int args_usage_error(const struct arg_spec *spec, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
