/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The uffd command: one file per subcommand, dispatched from uffd.c. */
#ifndef UFFD_TOOL_H
#define UFFD_TOOL_H

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses of every subcommand. */
#define EXIT_OK		0
#define EXIT_FAILED	1
#define EXIT_USAGE	2

struct subcommand {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_probe(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_snapshot_info(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);

/* One line: kernel, open path, features, tracking backend (probe.c). */
void probe_summary(FILE *f);

/* JSON output helpers: strings are escaped. */
void json_str(FILE *f, const char *key, const char *value, bool comma);

#endif
