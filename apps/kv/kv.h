/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv: a Redis-protocol key-value server whose data lives in one arena
 * that libuffd snapshots (BGSAVE without fork), restores lazily at start,
 * and checkpoints incrementally.  The pieces:
 *
 *   resp.c     the RESP2 request parser (pure, bounded, incremental)
 *   arena.c    fixed-address memory and its allocator
 *   dict.c     the hash table, in the arena
 *   server.c   the event loop and the clients (one thread)
 *   commands.c the commands
 *   persist.c  SAVE/BGSAVE, restore at start, periodic checkpoints
 *   main.c     options
 *
 * One thread runs the event loop and is the only one that touches the
 * arena.  A save runs in a thread of its own that asks the loop to stop at
 * a command boundary for the instant (the pause) and lets it go on; the
 * pages the loop then writes are copied before they change by libuffd.
 */
#ifndef UFFD_KV_H
#define UFFD_KV_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "arena.h"
#include "resp.h"

#define KV_VERSION		"1.0"
#define KV_DUMP_NAME		"dump.uffd"
#define KV_MAX_CLIENTS		10000

struct client {
	int fd;
	uint64_t id;
	char *qbuf;			/* what the client sent, not yet run */
	size_t qlen, qcap;
	struct resp_parser parser;
	char *obuf;			/* replies not yet written */
	size_t olen, ocap, osent;
	bool close_after_reply;
	bool epollout;			/* EPOLLOUT is registered */
	bool pending;			/* in the server's to-write list */
	struct client *next_pending;
	struct client *prev, *next;	/* all clients */
};

struct kv_config {
	const char *bind;
	int port;
	const char *port_file;
	const char *dir;		/* NULL: no persistence, nothing restored */
	uint64_t arena_base;
	uint64_t maxmemory;
	long long max_bulk;
	uint64_t snapshot_buffer;	/* 0: libuffd's default */
	int checkpoint_ms;		/* periodic checkpoints (0: off) */
	int checkpoint_chain;		/* deltas before a new base */
	bool no_restore;
	bool quiet;
};

struct persist;

struct server {
	struct kv_config cfg;
	struct arena arena;
	int lfd, epfd, wake_fd;
	int port;
	struct client *clients;
	int nclients;
	struct client *pending;		/* replies to write before sleeping */
	uint64_t next_client_id;
	bool shutdown;
	int exit_code;
	time_t start_time;
	uint64_t cron_ns;

	/* stopping the loop for a save's instant (persist.c) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pause_req;			/* atomic: a save wants the loop stopped */
	bool paused;

	struct persist *persist;

	/* stats */
	uint64_t commands, connections, rejected, net_in, net_out;
	uint64_t changes;		/* writes since the last save */
};

/* server.c */
void kv_log(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int server_run(struct server *s);
void server_wake(struct server *s);
/* The loop's side of a pause: stops here until resumed (a command boundary). */
void server_pause_point(struct server *s);

/* replies (server.c) */
void reply_raw(struct client *c, const char *s, size_t n);
void reply_str(struct client *c, const char *s);	/* a line: "+OK" */
void reply_error(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_int(struct client *c, long long v);
void reply_bulk(struct client *c, const char *s, size_t n);
void reply_nil(struct client *c);
void reply_array(struct client *c, long long n);

/* commands.c */
void command_run(struct server *s, struct client *c, int argc, const char **argv,
		 const size_t *lens);

/* persist.c */
int persist_init(struct server *s);
void persist_free(struct server *s);
/* What the cron does: finished saves, the restore, scheduled saves. */
void persist_cron(struct server *s);
/* BGSAVE: a reply for the client. */
void persist_bgsave(struct server *s, struct client *c);
void persist_save(struct server *s, struct client *c);
/* LASTSAVE's time. */
time_t persist_lastsave(struct server *s);
/* Append the INFO persistence section. */
void persist_info(struct server *s, char *buf, size_t cap, size_t *len);
/* Stop a save in progress (shutdown). */
void persist_stop(struct server *s);
/* True while a lazy restore is still bringing pages in. */
bool persist_loading(struct server *s);
/* True while libuffd watches the arena (a save, the restore). */
bool persist_busy(struct server *s);
/* The arena was replaced wholesale (FLUSHALL): nothing special yet. */

#endif
