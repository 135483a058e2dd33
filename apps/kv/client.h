/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small blocking RESP2 client for the tests and `uffd bench kv`: send
 * commands (pipelined as deep as the caller likes), read replies, with a
 * deadline on every wait.  Talks to uffd-kv and redis-server alike.
 */
#ifndef UFFD_KV_CLIENT_H
#define UFFD_KV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvc {
	int fd;
	int timeout_ms;
	char *in;			/* received, not yet parsed */
	size_t in_len, in_pos, in_cap;
	char *out;			/* queued commands */
	size_t out_len, out_cap;
};

enum kvc_type { KVC_STATUS = '+', KVC_ERROR = '-', KVC_INT = ':', KVC_BULK = '$',
		KVC_ARRAY = '*', KVC_NIL = 'n' };

struct kvc_reply {
	enum kvc_type type;
	long long integer;		/* KVC_INT; element count of KVC_ARRAY */
	const char *str;		/* STATUS, ERROR, BULK: valid until the next read */
	size_t len;
};

/* Connect to 127.0.0.1:port (or host): 0 or -errno. */
int kvc_connect(struct kvc *c, const char *host, int port, int timeout_ms);
void kvc_close(struct kvc *c);

/* Queue a command (argv with lengths; lens NULL: strlen). */
int kvc_append(struct kvc *c, int argc, const char *const *argv, const size_t *lens);
/* Queue raw bytes (malformed input for tests). */
int kvc_append_raw(struct kvc *c, const void *buf, size_t len);
/* Send everything queued. */
int kvc_flush(struct kvc *c);
/*
 * Read one reply (one element of an array after its header: an array's
 * header comes first, with its count in integer).  0, -ETIMEDOUT,
 * -ECONNRESET (closed), -EPROTO (garbage).
 */
int kvc_read(struct kvc *c, struct kvc_reply *r);

/* One command, one reply (arrays: the header only): 0 or -errno. */
int kvc_cmd(struct kvc *c, struct kvc_reply *r, int argc, const char *const *argv);
/* A command given as one string of space-separated words. */
int kvc_cmdf(struct kvc *c, struct kvc_reply *r, const char *words);
/* Read the INFO field (e.g. "rdb_bgsave_in_progress") of section (NULL:
 * all) as a number: 0 or -errno (-ENOENT: no such field). */
int kvc_info_ll(struct kvc *c, const char *section, const char *field, long long *v);
/* The same field as text (up to cap-1 bytes). */
int kvc_info_str(struct kvc *c, const char *section, const char *field, char *buf,
		 size_t cap);

#endif
