/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The uffd-kv tests' servers: uffd-kv (from $BUILD) or redis-server, each
 * started on a free loopback port in a directory of the test's, with a
 * connected client, and stopped by pid with a deadline (SIGTERM, then
 * SIGKILL).  A server dies with the test (PR_SET_PDEATHSIG), so none is
 * ever left behind.
 */
#ifndef LIBUFFD_TEST_KV_SERVER_H
#define LIBUFFD_TEST_KV_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "../../apps/kv/client.h"

struct t_kv {
	pid_t pid;
	int port;
	char dir[256];
	char log[300];
	struct kvc c;
};

/* A fresh directory under /tmp for one test (removed by t_kv_rmdir). */
void t_kv_mkdir(char *dir, size_t len);
/* Remove the directory and what is in it (not recursive). */
void t_kv_rmdir(const char *dir);

/*
 * Start uffd-kv with --dir dir (NULL: no persistence) and extra arguments
 * (NULL-terminated, may be NULL); fail the test if it does not come up.
 */
void t_kv_start(struct t_kv *k, const char *dir, const char *const *extra);
/* Start redis-server in dir (skip with 77 if it is not installed). */
void t_redis_start(struct t_kv *k, const char *dir);
/* The same with extra arguments (NULL-terminated, may be NULL), and with
 * cluster a cluster node (--cluster-enabled, its nodes.conf in dir, on a
 * port whose bus port, +10000, is free too). */
void t_redis_start_args(struct t_kv *k, const char *dir, const char *const *extra,
			bool cluster);
/* SIGTERM and reap (SIGKILL after 20 s): the exit status, or -1. */
int t_kv_stop(struct t_kv *k);
/* Wait for the server to exit by itself (SHUTDOWN): its status, or -1. */
int t_kv_wait_exit(struct t_kv *k, int ms);

/* One command of space-separated words; fail unless the reply is want
 * (a status/error line or a bulk, compared whole; "(nil)" for nil). */
void t_kv_expect(struct t_kv *k, const char *words, const char *want);
/* An INFO field as a number (fails if absent). */
long long t_kv_info(struct t_kv *k, const char *field);

#endif
