/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One argument parser for every subcommand and bench, so that the rules
 * are the same everywhere (uffd(1), "Arguments"):
 *
 *   - an unknown option, an option without its value, a value given to a
 *     flag, and a positional argument more or fewer than the command takes
 *     are usage errors: a one-line reason and the usage line on stderr,
 *     exit status 2, before anything runs;
 *   - numbers are whole decimal numbers, parsed strictly: no sign, no
 *     blank, no hex, no trailing text, no overflow; each option states its
 *     range (in --help too) and a value outside it is a usage error; sizes
 *     in bytes take a K, M or G suffix where the option says BYTES;
 *   - --help (-h) on every command prints the usage line, what the command
 *     does and every option with its range, and exits 0.
 *
 * It is a table over getopt_long(3): the table gives getopt its option
 * list and this file the meaning of each value, so a command only declares
 * its options and reads the results.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "uffd.h"

#define MAX_OPTS	32
#define LONG_ONLY	256	/* getopt val of option i without a short name: 256 + i */
#define HELP_COLUMN	26

static const struct arg_opt no_opts[] = { { 0 } };

static int count_opts(const struct arg_opt *o)
{
	int n = 0;

	while (o && o[n].name)
		n++;
	return n;
}

static void usage_line(const struct arg_spec *spec, FILE *f)
{
	fprintf(f, "usage: %s %s\n", spec->prog, spec->synopsis ? spec->synopsis : "[options]");
}

static int usage_error(const struct arg_spec *spec, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", spec->prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	usage_line(spec, stderr);
	fprintf(stderr, "(%s --help: every option)\n", spec->prog);
	return EXIT_USAGE;
}

int args_usage_error(const struct arg_spec *spec, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = usage_error(spec, fmt, ap);
	va_end(ap);
	return ret;
}

/* "4M", "16G", "4096": the largest unit that divides v. */
static void format_bytes(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "KMG";
	int i;

	for (i = 3; i > 0; i--)
		if (v && !(v & ((1ULL << (10 * i)) - 1))) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v >> (10 * i)),
				 units[i - 1]);
			return;
		}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The range an option states, as --help and the errors print it. */
static void format_range(const struct arg_opt *o, char *buf, size_t len)
{
	char lo[32], hi[32];
	size_t used = 0;
	int i;

	buf[0] = '\0';
	switch (o->type) {
	case ARG_UINT:
		snprintf(buf, len, "%llu to %llu", (unsigned long long)o->min,
			 (unsigned long long)o->max);
		break;
	case ARG_BYTES:
		format_bytes(lo, sizeof(lo), o->min);
		format_bytes(hi, sizeof(hi), o->max);
		snprintf(buf, len, "%s to %s", lo, hi);
		break;
	case ARG_CHOICE:
		for (i = 0; o->choices[i] && used < len; i++)
			used += snprintf(buf + used, len - used, "%s%s", i ? "|" : "",
					 o->choices[i]);
		break;
	default:
		break;
	}
}

/* text after a left column of HELP_COLUMN, wrapped at spaces to fit 80. */
static void print_wrapped(const char *left, const char *text)
{
	const int width = 79 - HELP_COLUMN - 1;
	int n;

	printf("%-*s", HELP_COLUMN, left);
	while (*text) {
		n = (int)strlen(text);
		if (n > width) {
			n = width;
			while (n > 0 && text[n] != ' ')
				n--;
			if (!n)
				n = (int)strcspn(text, " ");
		}
		printf(" %.*s\n", n, text);
		text += n;
		text += *text == ' ';
		if (*text)
			printf("%-*s", HELP_COLUMN, "");
	}
}

static void print_help(const struct arg_spec *spec)
{
	const struct arg_opt *o;
	char left[64], range[160], text[512];

	usage_line(spec, stdout);
	if (spec->about)
		printf("\n%s", spec->about);
	printf("\noptions:\n");
	for (o = spec->opts ? spec->opts : no_opts; o->name; o++) {
		int n;

		if (o->short_name)
			n = snprintf(left, sizeof(left), "  -%c, --%s", o->short_name, o->name);
		else
			n = snprintf(left, sizeof(left), "      --%s", o->name);
		if (o->type != ARG_FLAG && n > 0 && (size_t)n < sizeof(left))
			snprintf(left + n, sizeof(left) - n, " %s", o->value ? o->value : "VALUE");
		format_range(o, range, sizeof(range));
		snprintf(text, sizeof(text), "%s%s%s%s", o->help ? o->help : "",
			 range[0] ? " [" : "", range, range[0] ? "]" : "");
		print_wrapped(left, text);
	}
	print_wrapped("  -h, --help", "print this help and exit 0");
}

/* Decimal digits at *s; advances *s past them.  0, -EINVAL, -ERANGE. */
static int parse_digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*s = p;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
	int ret = parse_digits(&s, out);

	return ret ? ret : *s ? -EINVAL : 0;
}

/* "256M", "1G", "4096", "64KiB", "2MB". */
static int parse_bytes(const char *s, uint64_t *out)
{
	static const char units[] = "kmg";
	const char *u;
	uint64_t v;
	int ret = parse_digits(&s, &v), shift = 0;

	if (ret)
		return ret;
	if (*s && (u = strchr(units, *s | 0x20))) {
		shift = 10 * (int)(u - units + 1);
		s++;
		if (*s == 'i' && s[1] == 'B')
			s++;
	}
	if (*s == 'B')
		s++;
	if (*s)
		return -EINVAL;
	if (shift && v > UINT64_MAX >> shift)
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static int apply(const struct arg_spec *spec, const struct arg_opt *o, const char *val)
{
	char range[160];
	uint64_t v;
	int ret, i;

	switch (o->type) {
	case ARG_FLAG:
		*(bool *)o->dest = true;
		break;
	case ARG_UINT:
	case ARG_BYTES:
		ret = o->type == ARG_UINT ? parse_uint(val, &v) : parse_bytes(val, &v);
		format_range(o, range, sizeof(range));
		if (ret == -EINVAL)
			return args_usage_error(spec, "--%s: '%s' is not %s", o->name, val,
						o->type == ARG_UINT ? "a whole number" :
						"a size (a whole number, with K, M or G)");
		if (ret || v < o->min || v > o->max)
			return args_usage_error(spec, "--%s: %s is out of range (%s)", o->name,
						val, range);
		if (o->type == ARG_UINT && o->unit > 1) {
			if (v > UINT64_MAX / o->unit)
				return args_usage_error(spec, "--%s: %s is out of range (%s)",
							o->name, val, range);
			v *= o->unit;
		}
		*(uint64_t *)o->dest = v;
		break;
	case ARG_STRING:
		if (!*val)
			return args_usage_error(spec, "--%s: the value is empty", o->name);
		if (o->max && strlen(val) > o->max)
			return args_usage_error(spec, "--%s: longer than %llu bytes", o->name,
						(unsigned long long)o->max);
		*(const char **)o->dest = val;
		break;
	case ARG_CHOICE:
		for (i = 0; o->choices[i]; i++)
			if (!strcmp(val, o->choices[i]))
				break;
		if (!o->choices[i]) {
			format_range(o, range, sizeof(range));
			return args_usage_error(spec, "--%s: '%s' is not one of %s", o->name,
						val, range);
		}
		*(int *)o->dest = i;
		break;
	}
	if (o->seen)
		*o->seen = true;
	return ARGS_GO_ON;
}

/* The option getopt answered c for, or NULL. */
static const struct arg_opt *find(const struct arg_opt *opts, int n, int c)
{
	int i;

	if (c >= LONG_ONLY && c < LONG_ONLY + n)
		return &opts[c - LONG_ONLY];
	for (i = 0; i < n; i++)
		if (opts[i].short_name && opts[i].short_name == c)
			return &opts[i];
	return NULL;
}

int args_parse(struct arg_spec *spec, int argc, char **argv)
{
	const struct arg_opt *opts = spec->opts ? spec->opts : no_opts, *o;
	struct option longopts[MAX_OPTS + 2];
	char shortopts[3 * MAX_OPTS + 4] = ":";
	int n = count_opts(opts), i, c, ret;
	size_t used = 1;

	if (n > MAX_OPTS)
		return args_usage_error(spec, "internal: more than %d options", MAX_OPTS);
	for (i = 0; i < n; i++) {
		bool takes = opts[i].type != ARG_FLAG;

		longopts[i] = (struct option){ opts[i].name,
					       takes ? required_argument : no_argument, NULL,
					       opts[i].short_name ? opts[i].short_name :
								    LONG_ONLY + i };
		if (opts[i].short_name) {
			shortopts[used++] = opts[i].short_name;
			if (takes)
				shortopts[used++] = ':';
		}
	}
	longopts[n] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n + 1] = (struct option){ NULL, 0, NULL, 0 };
	shortopts[used++] = 'h';
	shortopts[used] = '\0';

	optind = 0;		/* glibc: start afresh */
	opterr = 0;		/* the messages are ours */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const char *text = argv[optind - 1];

		if (c == 'h') {
			print_help(spec);
			return EXIT_OK;
		}
		if (c == ':')
			return args_usage_error(spec, "option '%s' needs a value", text);
		if (c == '?') {
			if (optopt && strncmp(text, "--", 2) == 0)
				return args_usage_error(spec, "option '%.*s' takes no value",
							(int)strcspn(text, "="), text);
			if (optopt)
				return args_usage_error(spec, "unknown option '-%c'", optopt);
			return args_usage_error(spec, "unknown option '%s'", text);
		}
		o = find(opts, n, c);
		if (!o)
			return args_usage_error(spec, "unknown option '%s'", text);
		ret = apply(spec, o, optarg);
		if (ret != ARGS_GO_ON)
			return ret;
	}
	spec->args = argv + optind;
	spec->nargs = argc - optind;
	if (spec->nargs > spec->max_args)
		return args_usage_error(spec, "unexpected argument '%s'",
					spec->args[spec->max_args]);
	if (spec->nargs < spec->min_args)
		return args_usage_error(spec, "missing %s",
					spec->arg_name ? spec->arg_name : "argument");
	return ARGS_GO_ON;
}
