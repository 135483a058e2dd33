/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Redis store: a pager map backed by a Redis server, or a Redis
 * Cluster, each page of the store one string value (uffd_store_redis).
 *
 * A page is the key "<prefix>:<n>", n its index in pages of page_size
 * bytes; a key that does not exist reads as zeros (a store nobody wrote is
 * all zeros, as a sparse file is), a value shorter than a page is
 * zero-filled.  Whole pages are GET and SET; a range that covers part of a
 * page uses GETRANGE and SETRANGE, so a write never clobbers the rest of
 * its page.
 *
 * The idea that makes it fast is pipelining: the pages of one read or
 * write, and of every I/O of a batch (the pager's read-ahead windows, the
 * faults read together, eviction's write-back runs), go out as one stream
 * of commands per node, the next ones sent as the first replies come, so a
 * window of 256 pages costs about one round trip, not 256.  In a cluster each key goes to the node
 * that owns its hash slot (CRC16 of the key, mod 16384, from CLUSTER
 * SLOTS); all nodes' streams are sent before any is read, a MOVED reply
 * reloads the slot map and sends the command again, an ASK sends it once
 * to the node named, after ASKING.
 *
 * On the data path the store writes the commands and reads the replies
 * itself (a bulk string, nil, status, integer or error - every length
 * checked), each value copied once, from the receive buffer to its page:
 * hiredis's reader, which copies what it is fed and moves what is left of
 * its buffer after each reply, spent more time in memmove than the pager
 * in everything else.  hiredis parses the set-up replies (PING, CLUSTER
 * SLOTS).  The sockets are the store's, non-blocking, every wait
 * bounded by one deadline per request (timeout_ms from its start), and
 * sends use MSG_NOSIGNAL: a server that is killed gives -EIO at once, one
 * that hangs gives -EIO when the deadline passes, never a hang and never
 * SIGPIPE.  Every command is idempotent, so a request that fails on a
 * connection that sat idle in the pool (the server may have closed it, or
 * been restarted) is sent once more on a new one: -EIO comes at most two
 * deadlines after the call.  Each node keeps a pool of idle connections,
 * one per thread that did I/O at once, so the pager's threads never queue
 * behind each other.
 *
 * Without hiredis at build time, uffd_store_redis fails with EOPNOTSUPP.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uffd/pager.h>

#include "store_internal.h"
#include "util/opts.h"

#define REDIS_DEFAULT_HOST	"127.0.0.1"
#define REDIS_DEFAULT_PORT	6379
#define REDIS_DEFAULT_PAGE	4096u
#define REDIS_DEFAULT_TIMEOUT	1000		/* ms */
#define REDIS_MAX_PREFIX	200		/* bytes of a key's prefix */
#define REDIS_MAX_PAGE		(512u << 20)	/* Redis's largest string */

#define REDIS_FLAGS		UFFD_STORE_REDIS_CLUSTER

/* The options as given, checked: 0 or -EINVAL. */
static int check_opts(struct uffd_store_redis_opts *o, const struct uffd_store_redis_opts *u)
{
	int ret = uffd__load_opts(o, u, struct uffd_store_redis_opts, flags, flags);

	if (ret)
		return ret;
	if (!o->host)
		o->host = REDIS_DEFAULT_HOST;
	if (!o->port)
		o->port = REDIS_DEFAULT_PORT;
	if (!o->page_size)
		o->page_size = REDIS_DEFAULT_PAGE;
	if (!o->timeout_ms)
		o->timeout_ms = REDIS_DEFAULT_TIMEOUT;
	if (!u || !o->prefix || !*o->prefix || strlen(o->prefix) > REDIS_MAX_PREFIX ||
	    !o->size || o->size > INT64_MAX || o->port < 0 || o->port > 65535 ||
	    o->page_size > REDIS_MAX_PAGE || o->timeout_ms < 0 || (o->flags & ~REDIS_FLAGS))
		return -EINVAL;
	return 0;
}

#ifndef HAVE_HIREDIS

struct uffd_store *uffd_store_redis(const struct uffd_store_redis_opts *opts)
{
	struct uffd_store_redis_opts o;
	int ret = check_opts(&o, opts);

	errno = ret ? -ret : EOPNOTSUPP;
	return NULL;
}

#else /* HAVE_HIREDIS */

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/sock.h"

#define CLUSTER_SLOTS		16384
#define NO_NODE			0xffff
#define MAX_NODES		1024		/* a cluster's nodes we follow */
#define MAX_REDIRECTS		5		/* MOVED/ASK rounds per request */
#define RECV_CHUNK		(64u << 10)
#define PIPELINE_CHUNK		128		/* commands sent at once */
#define PIPELINE_DEPTH		2		/* chunks unanswered at once */
#define KEY_MAX			(REDIS_MAX_PREFIX + 24)

/*
 * A connection: a non-blocking TCP socket, and what was received and not
 * parsed yet (in[head, tail)) on the data path, or hiredis's parser for
 * set-up replies.
 */
struct conn {
	int fd;
	redisReader *rd;		/* set-up connections */
	char *in;			/* data path: RECV_CHUNK bytes */
	size_t head, tail;
	struct conn *next;		/* in its node's idle list */
};

/* A data-path reply: its type; a value went to its op's buffer. */
struct op;
struct sink {
	struct op *op;			/* a string's destination, or NULL */
	int type;			/* REDIS_REPLY_* */
	size_t msglen;
	char msg[128];			/* an error's text (MOVED, ASK ...) */
};

struct node {
	char host[256];
	int port;
	pthread_mutex_t lock;
	struct conn *idle;
};

struct redis_store {
	struct uffd_store store;	/* store.data points back here */
	char prefix[REDIS_MAX_PREFIX + 1];
	size_t prefix_len;
	uint64_t size;
	size_t psize;
	int timeout_ms;
	bool cluster;
	/* nodes only ever grow (a node that left keeps its slot, unused);
	 * slot_node[] and nnodes under map_lock */
	pthread_rwlock_t map_lock;
	struct node *nodes[MAX_NODES];
	int nnodes;
	uint16_t slot_node[CLUSTER_SLOTS];
};

/* ---- keys and slots --------------------------------------------------- */

/* CRC16-CCITT (XMODEM), as Redis Cluster hashes keys: CRC16("123456789")
 * is 0x31c3. */
static uint16_t crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	for (i = 0; i < len; i++) {
		crc ^= (uint16_t)(unsigned char)buf[i] << 8;
		for (b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (uint16_t)(crc << 1) ^ 0x1021 : (uint16_t)(crc << 1);
	}
	return crc;
}

/* The hash slot of a key: of its {tag} when it has a non-empty one. */
static unsigned key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open) {
		close = memchr(open + 1, '}', len - (open + 1 - key));
		if (close && close > open + 1)
			return crc16(open + 1, close - open - 1) % CLUSTER_SLOTS;
	}
	return crc16(key, len) % CLUSTER_SLOTS;
}

/* ---- connections ------------------------------------------------------ */

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->rd)
		redisReaderFree(c->rd);
	free(c->in);
	free(c);
}

/* Connect to host:port before the deadline, for the data path or for
 * set-up (hiredis parses the replies).  The connection, or NULL. */
static struct conn *conn_open(const char *host, int port, uint64_t deadline, bool data)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM },
			*res = NULL, *ai;
	struct conn *c = calloc(1, sizeof(*c));
	char service[8];
	int one = 1;

	if (!c)
		return NULL;
	c->fd = -1;
	if (data)
		c->in = malloc(RECV_CHUNK);
	else
		c->rd = redisReaderCreate();
	snprintf(service, sizeof(service), "%d", port);
	if (!(c->rd || c->in) || getaddrinfo(host, service, &hints, &res))
		goto fail;
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof(int);
		int err = 0, wait_ms;

		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (c->fd < 0)
			continue;
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen)) {
			int cerr = errno;
			uint64_t now = mono_ns();

			pfd = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
			wait_ms = deadline > now ? (int)((deadline - now + 999999) / 1000000) : 0;
			if (cerr != EINPROGRESS || !wait_ms || poll(&pfd, 1, wait_ms) != 1 ||
			    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
				close(c->fd);
				c->fd = -1;
				continue;
			}
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	}
	freeaddrinfo(res);
	if (c->fd >= 0)
		return c;
fail:
	conn_free(c);
	return NULL;
}

/* A connection to node n: an idle one (*pooled true), or a new one. */
static struct conn *conn_get(struct node *n, uint64_t deadline, bool *pooled)
{
	struct conn *c;

	pthread_mutex_lock(&n->lock);
	c = n->idle;
	if (c)
		n->idle = c->next;
	pthread_mutex_unlock(&n->lock);
	*pooled = c != NULL;
	return c ? c : conn_open(n->host, n->port, deadline, true);
}

static void conn_put(struct node *n, struct conn *c)
{
	pthread_mutex_lock(&n->lock);
	c->next = n->idle;
	n->idle = c;
	pthread_mutex_unlock(&n->lock);
}

/* The next set-up reply on c, waiting until the deadline: 0 and *reply,
 * or -EIO (the connection is then unusable). */
static int conn_reply(struct conn *c, void **reply, uint64_t deadline)
{
	char buf[RECV_CHUNK];

	for (;;) {
		void *r = NULL;
		ssize_t n;

		if (redisReaderGetReply(c->rd, &r) != REDIS_OK)
			return -EIO;
		if (r) {
			*reply = r;
			return 0;
		}
		if (uffd__wait_readable(c->fd, -1, deadline) != 1)
			return -EIO;
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0 || redisReaderFeed(c->rd, buf, n) != REDIS_OK)
			return -EIO;
	}
}

/* One command and its reply on a connection of its own, for set-up. */
static redisReply *command(const char *host, int port, int timeout_ms, int argc,
			   const char **argv)
{
	uint64_t deadline = uffd__deadline_ms(timeout_ms);
	struct conn *c = conn_open(host, port, deadline, false);
	void *reply = NULL;
	char *cmd = NULL;
	int len;

	if (!c)
		return NULL;
	len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
	if (len > 0 && !uffd__send_all(c->fd, cmd, len, deadline) &&
	    conn_reply(c, &reply, deadline))
		reply = NULL;
	redisFreeCommand(cmd);
	conn_free(c);
	return reply;
}

/* ---- nodes and the slot map ------------------------------------------ */

/* The node at host:port, added if new.  Its index, or -1.  map_lock held
 * for writing (or the store not yet shared). */
static int node_index(struct redis_store *rs, const char *host, size_t hlen, int port)
{
	struct node *n;
	int i;

	/* A hostile node's slot map or redirection names anything. */
	if (!hlen || hlen >= sizeof(n->host) || memchr(host, 0, hlen) || port <= 0 ||
	    port > 65535)
		return -1;
	for (i = 0; i < rs->nnodes; i++)
		if (rs->nodes[i]->port == port && strlen(rs->nodes[i]->host) == hlen &&
		    !memcmp(rs->nodes[i]->host, host, hlen))
			return i;
	if (rs->nnodes == MAX_NODES || !(n = calloc(1, sizeof(*n))))
		return -1;
	memcpy(n->host, host, hlen);
	n->port = port;
	pthread_mutex_init(&n->lock, NULL);
	rs->nodes[rs->nnodes] = n;
	return rs->nnodes++;
}

/*
 * Load the slot map from CLUSTER SLOTS, asking the known nodes in turn
 * (the first is the one the caller named).  0 or -EIO.  Takes map_lock.
 */
static int load_slots(struct redis_store *rs)
{
	const char *argv[] = { "CLUSTER", "SLOTS" };
	redisReply *r = NULL;
	int i, ret = -EIO, tried;
	size_t k;

	pthread_rwlock_rdlock(&rs->map_lock);
	tried = rs->nnodes;
	pthread_rwlock_unlock(&rs->map_lock);
	for (i = 0; i < tried && !r; i++) {
		struct node *n = rs->nodes[i];	/* (nodes never move) */

		r = command(n->host, n->port, rs->timeout_ms, 2, argv);
		if (r && r->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			r = NULL;
		}
	}
	if (!r)
		return -EIO;
	pthread_rwlock_wrlock(&rs->map_lock);
	for (k = 0; k < r->elements; k++) {
		redisReply *e = r->element[k], *m;
		long long lo, hi, s;
		int idx;

		/* [first, last, [host, port, id...], replicas...] */
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		m = e->element[2];
		lo = e->element[0]->integer;
		hi = e->element[1]->integer;
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
		    m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER || lo < 0 || hi >= CLUSTER_SLOTS ||
		    lo > hi || m->element[1]->integer < 1 || m->element[1]->integer > 65535)
			continue;
		/* An empty host means "the node you asked". */
		idx = m->element[0]->len ?
		      node_index(rs, m->element[0]->str, m->element[0]->len,
				 (int)m->element[1]->integer) :
		      node_index(rs, rs->nodes[0]->host, strlen(rs->nodes[0]->host),
				 (int)m->element[1]->integer);
		if (idx < 0)
			continue;
		for (s = lo; s <= hi; s++)
			rs->slot_node[s] = idx;
		ret = 0;
	}
	pthread_rwlock_unlock(&rs->map_lock);
	freeReplyObject(r);
	return ret;
}

/* The node a key goes to (NO_NODE: no node serves its slot). */
static int key_node(struct redis_store *rs, const char *key, size_t len)
{
	int n;

	if (!rs->cluster)
		return 0;
	pthread_rwlock_rdlock(&rs->map_lock);
	n = rs->slot_node[key_slot(key, len)];
	pthread_rwlock_unlock(&rs->map_lock);
	return n;
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the node it names (added),
 * or -1. */
static int redirect_node(struct redis_store *rs, const char *msg, size_t len)
{
	const char *sp, *colon;
	int idx;

	sp = memchr(msg, ' ', len);
	sp = sp ? memchr(sp + 1, ' ', len - (sp + 1 - msg)) : NULL;
	if (!sp)
		return -1;
	sp++;
	colon = memrchr(sp, ':', len - (sp - msg));
	if (!colon)
		return -1;
	pthread_rwlock_wrlock(&rs->map_lock);
	idx = node_index(rs, sp, colon - sp, atoi(colon + 1));
	pthread_rwlock_unlock(&rs->map_lock);
	return idx;
}

/* ---- requests --------------------------------------------------------- */

enum op_kind { OP_GET, OP_GETRANGE, OP_SET, OP_SETRANGE };

/* One command: a page, or the part of one a range covers. */
struct op {
	enum op_kind kind;
	char key[KEY_MAX];
	size_t klen;
	char *buf;		/* the caller's bytes for it */
	size_t len;
	size_t start;		/* offset within the page */
	int node;		/* where it goes next */
	bool asking;		/* once, after an ASK */
	bool redirected;	/* MOVED or ASK: node is the one named */
	bool done;
	int err;
};

/* v in decimal at p (no NUL); its length.  (No printf on the data path:
 * it showed in the profile.) */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do
		tmp[n++] = '0' + v % 10;
	while ((v /= 10));
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

static size_t put_str(char *p, const char *s, size_t len)
{
	memcpy(p, s, len);
	return len;
}

static void op_format(const struct redis_store *rs, struct op *op, uint64_t page)
{
	size_t n = put_str(op->key, rs->prefix, rs->prefix_len);

	op->key[n++] = ':';
	op->klen = n + put_u64(op->key + n, page);
}

/* Room for need bytes in *out.  False: no memory. */
static bool reserve(char **out, size_t *cap, size_t need)
{
	char *grown;

	if (need <= *cap)
		return true;
	grown = realloc(*out, need * 2);
	if (!grown)
		return false;
	*out = grown;
	*cap = need * 2;
	return true;
}

/* A bulk string "$<len>\r\n<bytes>\r\n" at p; its length. */
static size_t bulk(char *p, const void *bytes, size_t len)
{
	size_t n = 0;

	p[n++] = '$';
	n += put_u64(p + n, len);
	n += put_str(p + n, "\r\n", 2);
	memcpy(p + n, bytes, len);
	memcpy(p + n + len, "\r\n", 2);
	return n + len + 2;
}

/* Append op's command (RESP, after ASKING when it was told ASK) to *out.
 * False: no memory. */
static bool op_append(const struct op *op, char **out, size_t *len, size_t *cap)
{
	static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
	bool set = op->kind == OP_SET || op->kind == OP_SETRANGE;
	char lo[24], hi[24], *p;
	size_t nlo, nhi;

	/* Headers, the key, two numbers, and a value: its length plus this. */
	if (!reserve(out, cap, *len + sizeof(asking) + 4 * 32 + op->klen + 64 +
		     (set ? op->len : 0)))
		return false;
	p = *out + *len;
	if (op->asking)
		p += put_str(p, asking, sizeof(asking) - 1);
	nlo = put_u64(lo, op->start);
	nhi = put_u64(hi, op->start + op->len - 1);
	switch (op->kind) {
	case OP_GET:
		p += put_str(p, "*2\r\n$3\r\nGET\r\n", 13);
		p += bulk(p, op->key, op->klen);
		break;
	case OP_GETRANGE:
		p += put_str(p, "*4\r\n$8\r\nGETRANGE\r\n", 18);
		p += bulk(p, op->key, op->klen);
		p += bulk(p, lo, nlo);
		p += bulk(p, hi, nhi);
		break;
	case OP_SET:
		p += put_str(p, "*3\r\n$3\r\nSET\r\n", 13);
		p += bulk(p, op->key, op->klen);
		p += bulk(p, op->buf, op->len);
		break;
	case OP_SETRANGE:
		p += put_str(p, "*4\r\n$8\r\nSETRANGE\r\n", 18);
		p += bulk(p, op->key, op->klen);
		p += bulk(p, lo, nlo);
		p += bulk(p, op->buf, op->len);
		break;
	}
	*len = p - *out;
	return true;
}

/* ---- the data path's replies --------------------------------------- */

#define LINE_MAX_BYTES	512		/* a reply's first line, at most */

/* More bytes into c->in, what is there kept at its start.  0 or -EIO. */
static int conn_fill(struct conn *c, uint64_t deadline)
{
	ssize_t n;

	if (c->head) {
		memmove(c->in, c->in + c->head, c->tail - c->head);
		c->tail -= c->head;
		c->head = 0;
	}
	if (c->tail == RECV_CHUNK)
		return -EIO;
	for (;;) {
		n = recv(c->fd, c->in + c->tail, RECV_CHUNK - c->tail, MSG_DONTWAIT);
		if (n > 0) {
			c->tail += n;
			return 0;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -EIO;
		if (uffd__wait_readable(c->fd, -1, deadline) != 1)
			return -EIO;
	}
}

/* The next line (its \r\n cut off, NUL-terminated in place).  0 or
 * -EIO (none within LINE_MAX_BYTES, or the connection failed). */
static int conn_line(struct conn *c, char **line, size_t *len, uint64_t deadline)
{
	for (;;) {
		char *start = c->in + c->head,
		     *cr = memchr(start, '\r', c->tail - c->head);

		if (cr && cr + 1 < c->in + c->tail) {
			if (cr[1] != '\n')
				return -EIO;
			*cr = 0;
			*line = start;
			*len = cr - start;
			c->head += *len + 2;
			return 0;
		}
		if (c->tail - c->head >= LINE_MAX_BYTES || conn_fill(c, deadline))
			return -EIO;
	}
}

/* The next n bytes to dst (NULL: dropped).  0 or -EIO. */
static int conn_bytes(struct conn *c, char *dst, size_t n, uint64_t deadline)
{
	while (n) {
		size_t have = c->tail - c->head;

		if (!have) {
			if (conn_fill(c, deadline))
				return -EIO;
			continue;
		}
		if (have > n)
			have = n;
		if (dst) {
			memcpy(dst, c->in + c->head, have);
			dst += have;
		}
		c->head += have;
		n -= have;
	}
	return 0;
}

/* A decimal integer, all of s: 0 or -EIO. */
static int parse_int(const char *s, long long *v)
{
	char *end;

	if (!*s || strlen(s) > 20)
		return -EIO;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return *end || errno ? -EIO : 0;
}

/*
 * The next reply on a data-path connection, into s: a bulk string goes to
 * s->op's buffer (what does not fit dropped, the rest zero-filled), nil
 * zero-fills it, an error's text goes to s->msg.  0 or -EIO (a malformed
 * reply, one this path never asks for, or the connection failed).
 */
static int read_reply(struct conn *c, struct sink *s, uint64_t deadline)
{
	struct op *op = s->op;
	long long n;
	size_t len, got;
	char *line;

	if (conn_line(c, &line, &len, deadline))
		return -EIO;
	switch (line[0]) {
	case '+':
		s->type = REDIS_REPLY_STATUS;
		return 0;
	case '-':
		s->type = REDIS_REPLY_ERROR;
		s->msglen = len - 1 < sizeof(s->msg) ? len - 1 : sizeof(s->msg) - 1;
		memcpy(s->msg, line + 1, s->msglen);
		s->msg[s->msglen] = 0;
		return 0;
	case ':':
		s->type = REDIS_REPLY_INTEGER;
		return parse_int(line + 1, &n);
	case '$':
		if (parse_int(line + 1, &n) || n < -1 || n > REDIS_MAX_PAGE)
			return -EIO;
		if (n == -1) {
			s->type = REDIS_REPLY_NIL;
			if (op)
				memset(op->buf, 0, op->len);	/* never written */
			return 0;
		}
		s->type = REDIS_REPLY_STRING;
		got = op ? ((size_t)n < op->len ? (size_t)n : op->len) : 0;
		if (conn_bytes(c, op ? op->buf : NULL, got, deadline) ||
		    conn_bytes(c, NULL, n - got, deadline) || conn_line(c, &line, &len, deadline) ||
		    len)
			return -EIO;
		if (op)
			memset(op->buf + got, 0, op->len - got);
		return 0;
	default:
		return -EIO;
	}
}

/* What a reply (parsed into its sink) means for its op: 0 done, 1
 * redirected to the node the reply names (a MOVED also asks for the slot
 * map again: *reload), -EIO. */
static int op_reply(struct redis_store *rs, struct op *op, const struct sink *r, bool *reload)
{
	if (r->type == REDIS_REPLY_ERROR) {
		bool moved = r->msglen > 6 && !memcmp(r->msg, "MOVED ", 6),
		     ask = r->msglen > 4 && !memcmp(r->msg, "ASK ", 4);
		int idx = (moved || ask) && rs->cluster ? redirect_node(rs, r->msg, r->msglen) : -1;

		if (idx < 0)
			return -EIO;
		op->node = idx;
		op->asking = ask;
		op->redirected = true;
		*reload |= moved;
		return 1;
	}
	if (op->kind == OP_SET || op->kind == OP_SETRANGE)
		return r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
	/* A string or nil is in op->buf already (read_reply). */
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL ? 0 : -EIO;
}

/* A node's share of a request's ops, pipelined on one connection. */
struct group {
	int node;
	struct node *n;
	struct conn *c;
	bool pooled;		/* c came from the idle pool */
	bool failed;
	struct op **v;
	int nv;
	int sent, answered;	/* of v */
};

/* Open g's connection.  False when there is none. */
static bool group_open(struct redis_store *rs, struct group *g, uint64_t deadline)
{
	pthread_rwlock_rdlock(&rs->map_lock);
	g->n = g->node < rs->nnodes ? rs->nodes[g->node] : NULL;
	pthread_rwlock_unlock(&rs->map_lock);
	g->pooled = false;
	g->sent = g->answered = 0;
	g->c = g->n ? conn_get(g->n, deadline, &g->pooled) : NULL;
	return g->c != NULL;
}

static void group_fail(struct group *g)
{
	conn_free(g->c);
	g->c = NULL;
	g->failed = true;
}

/* Send g's next PIPELINE_CHUNK commands.  False when that failed. */
static bool group_send(struct group *g, uint64_t deadline)
{
	char *out = NULL;
	size_t olen = 0, ocap = 0;
	bool ok = false;
	int end = g->sent + PIPELINE_CHUNK < g->nv ? g->sent + PIPELINE_CHUNK : g->nv;

	for (; g->sent < end; g->sent++)
		if (!op_append(g->v[g->sent], &out, &olen, &ocap))
			goto out;
	ok = !olen || !uffd__send_all(g->c->fd, out, olen, deadline);
out:
	free(out);
	return ok;
}

/* Read the replies of g's oldest unanswered chunk and settle its ops
 * (done, or redirected).  False when the connection failed: the ops not
 * answered stay pending. */
static bool group_recv(struct redis_store *rs, struct group *g, uint64_t deadline,
		       bool *reload)
{
	int end = g->answered + PIPELINE_CHUNK < g->sent ? g->answered + PIPELINE_CHUNK : g->sent;
	int ret;

	for (; g->answered < end; g->answered++) {
		struct op *op = g->v[g->answered];
		struct sink sink = { .op = NULL };

		if (op->asking) {
			if (read_reply(g->c, &sink, deadline))
				return false;
			op->asking = false;
		}
		sink = (struct sink){ .op = op };
		if (read_reply(g->c, &sink, deadline))
			return false;
		ret = op_reply(rs, op, &sink, reload);
		if (ret <= 0) {
			op->done = true;
			op->err = ret;
		}
	}
	return true;
}

/*
 * Every group's commands sent and answered, all groups at once, each
 * keeping PIPELINE_DEPTH chunks unanswered: a pipeline that long keeps the
 * server busy, and one much longer only makes it buffer replies by the
 * megabyte, which costs it more per command.  Failed groups are marked.
 */
static void groups_run(struct redis_store *rs, struct group *g, int ng, uint64_t deadline,
		       bool *reload)
{
	bool busy = true;
	int i, k;

	for (i = 0; i < ng; i++) {
		g[i].failed = false;
		if (!group_open(rs, &g[i], deadline)) {
			g[i].failed = true;
			continue;
		}
		for (k = 0; k < PIPELINE_DEPTH && !g[i].failed; k++)
			if (!group_send(&g[i], deadline))
				group_fail(&g[i]);
	}
	while (busy) {
		busy = false;
		for (i = 0; i < ng; i++) {
			if (g[i].failed || g[i].answered == g[i].nv)
				continue;
			if (!group_recv(rs, &g[i], deadline, reload) ||
			    !group_send(&g[i], deadline)) {
				group_fail(&g[i]);
				continue;
			}
			if (g[i].answered < g[i].nv) {
				busy = true;
			} else {
				conn_put(g[i].n, g[i].c);
				g[i].c = NULL;
			}
		}
	}
}

/*
 * Run the ops: each node's share pipelined on one connection, every
 * node's sent before any reply is read; redirections followed for up to
 * MAX_REDIRECTS rounds; a share that failed on a pooled connection sent
 * once more on new ones.  0, or -EIO (each failed op's err says which).
 */
static int run_ops(struct redis_store *rs, struct op *ops, int n)
{
	uint64_t deadline = uffd__deadline_ms(rs->timeout_ms);
	struct op **v = malloc(n * sizeof(*v));
	struct group *g = malloc(n * sizeof(*g));
	int round, i, j, ng, nv, err = 0;
	bool retried = false;

	if (!v || !g) {
		free(v);
		free(g);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		ops[i].node = key_node(rs, ops[i].key, ops[i].klen);
	for (round = 0; round <= MAX_REDIRECTS; round++) {
		bool reload = false, again = false;

		/* Pending ops grouped by node; a slot nobody serves fails (a
		 * MOVED since may have filled it in: the map is reloaded). */
		for (i = 0; i < n; i++)
			if (!ops[i].done && ops[i].node == NO_NODE) {
				ops[i].done = true;
				ops[i].err = -EIO;
			}
		for (i = 0, ng = 0, nv = 0; i < n; i++) {
			bool seen = false;

			if (ops[i].done)
				continue;
			for (j = 0; j < ng && !seen; j++)
				seen = g[j].node == ops[i].node;
			if (seen)
				continue;
			g[ng] = (struct group){ .node = ops[i].node, .v = v + nv };
			for (j = i; j < n; j++)
				if (!ops[j].done && ops[j].node == ops[i].node)
					g[ng].v[g[ng].nv++] = &ops[j];
			nv += g[ng++].nv;
		}
		if (!ng)
			break;
		groups_run(rs, g, ng, deadline, &reload);
		/* Idle connections the server dropped (or a server restarted):
		 * once per request, on new connections, with a deadline of
		 * their own. */
		for (i = 0, j = 0; i < ng; i++)
			if (g[i].failed && g[i].pooled && !retried)
				g[j++] = g[i];
		if (j) {
			retried = true;
			deadline = uffd__deadline_ms(rs->timeout_ms);
			groups_run(rs, g, j, deadline, &reload);
		}
		if (reload)
			load_slots(rs);
		/* Still pending: redirected (again), or its connection failed. */
		for (i = 0; i < n; i++) {
			if (ops[i].done)
				continue;
			if (ops[i].redirected) {
				ops[i].redirected = false;
				again = true;
			} else {
				ops[i].done = true;
				ops[i].err = -EIO;
			}
		}
		if (!again)
			break;
	}
	for (i = 0; i < n; i++)
		if (!ops[i].done || ops[i].err)
			err = -EIO;
	free(v);
	free(g);
	return err;
}

/* The ops for [off, off+len) of buf: whole pages GET/SET, parts RANGE.
 * Appends to ops at *n. */
static void range_ops(const struct redis_store *rs, struct op *ops, int *n, char *buf,
		      size_t len, uint64_t off, bool write)
{
	size_t done = 0;

	while (done < len) {
		uint64_t at = off + done, page = at / rs->psize;
		size_t start = at % rs->psize, part = rs->psize - start;
		struct op *op = &ops[(*n)++];

		if (part > len - done)
			part = len - done;
		memset(op, 0, sizeof(*op));
		op_format(rs, op, page);
		op->buf = buf + done;
		op->len = part;
		op->start = start;
		if (write)
			op->kind = part == rs->psize ? OP_SET : OP_SETRANGE;
		else
			op->kind = part == rs->psize ? OP_GET : OP_GETRANGE;
		done += part;
	}
}

/* Pages [off, off+len) touches. */
static size_t pages_of(const struct redis_store *rs, size_t len, uint64_t off)
{
	return len ? (off + len - 1) / rs->psize - off / rs->psize + 1 : 0;
}

/* Clip an I/O to the store's size: the bytes of it inside, or -EINVAL
 * (a write must lie wholly inside). */
static ssize_t clip(const struct redis_store *rs, size_t len, uint64_t off, bool write)
{
	if (len > SSIZE_MAX || off > INT64_MAX)
		return -EINVAL;
	if (write)
		return off <= rs->size && len <= rs->size - off ? (ssize_t)len : -EINVAL;
	if (off >= rs->size)
		return 0;
	return len < rs->size - off ? len : rs->size - off;
}

/* A batch's answer: 0, or the first I/O's error. */
static int first_error(const struct uffd_store_io *io, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (io[i].res < 0)
			return (int)io[i].res;
	return 0;
}

static int redis_batch(void *store, struct uffd_store_io *io, int nio, bool write)
{
	struct redis_store *rs = store;
	size_t total = 0;
	struct op *ops;
	int i, n = 0, ret, *first;

	if (nio < 0 || (nio && !io))
		return -EINVAL;
	for (i = 0; i < nio; i++) {
		ssize_t len = clip(rs, io[i].len, io[i].off, write);

		io[i].res = len;
		if (len > 0)
			total += pages_of(rs, len, io[i].off);
	}
	if (!total)
		return first_error(io, nio);
	ops = malloc(total * sizeof(*ops));
	first = malloc((nio + 1) * sizeof(*first));
	if (!ops || !first) {
		free(ops);
		free(first);
		return -ENOMEM;
	}
	for (i = 0; i < nio; i++) {
		first[i] = n;
		if (io[i].res > 0)
			range_ops(rs, ops, &n, io[i].buf, io[i].res, io[i].off, write);
	}
	first[nio] = n;
	ret = run_ops(rs, ops, n);
	for (i = 0; i < nio; i++) {
		int k;

		for (k = first[i]; k < first[i + 1]; k++)
			if (ops[k].err) {
				io[i].res = ops[k].err;
				break;
			}
	}
	free(ops);
	free(first);
	return ret == -ENOMEM ? ret : first_error(io, nio);
}

static int redis_read_batch(void *store, struct uffd_store_io *io, int n)
{
	return redis_batch(store, io, n, false);
}

static int redis_write_batch(void *store, struct uffd_store_io *io, int n)
{
	return redis_batch(store, io, n, true);
}

static ssize_t redis_read(void *store, void *buf, size_t len, uint64_t off)
{
	struct uffd_store_io io = { buf, len, off, 0 };

	redis_batch(store, &io, 1, false);
	return io.res;
}

static ssize_t redis_write(void *store, const void *buf, size_t len, uint64_t off)
{
	struct uffd_store_io io = { (void *)buf, len, off, 0 };

	redis_batch(store, &io, 1, true);
	return io.res;
}

static int64_t redis_size(void *store)
{
	struct redis_store *rs = store;

	return rs->size;
}

/* Durable as the server is configured to make it (appendfsync): a write
 * has its reply, so it is in the server's memory. */
static int redis_flush(void *store)
{
	return 0;
}

static void redis_close(void *store)
{
	struct redis_store *rs = store;
	int i;

	for (i = 0; i < rs->nnodes; i++) {
		struct node *n = rs->nodes[i];

		while (n->idle) {
			struct conn *c = n->idle;

			n->idle = c->next;
			conn_free(c);
		}
		pthread_mutex_destroy(&n->lock);
		free(n);
	}
	pthread_rwlock_destroy(&rs->map_lock);
	free(rs);
}

static const struct uffd_store_ops redis_ops = {
	.read = redis_read,
	.write = redis_write,
	.size = redis_size,
	.flush = redis_flush,
	.read_batch = redis_read_batch,
	.write_batch = redis_write_batch,
	.close = redis_close,
};

struct uffd_store *uffd_store_redis(const struct uffd_store_redis_opts *opts)
{
	const char *ping[] = { "PING" };
	struct uffd_store_redis_opts o;
	struct redis_store *rs;
	redisReply *r;
	int ret = check_opts(&o, opts);

	if (ret) {
		errno = -ret;
		return NULL;
	}
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	pthread_rwlock_init(&rs->map_lock, NULL);
	rs->prefix_len = snprintf(rs->prefix, sizeof(rs->prefix), "%s", o.prefix);
	rs->size = o.size;
	rs->psize = o.page_size;
	rs->timeout_ms = o.timeout_ms;
	rs->cluster = o.flags & UFFD_STORE_REDIS_CLUSTER;
	memset(rs->slot_node, 0xff, sizeof(rs->slot_node));
	ret = -EINVAL;
	if (node_index(rs, o.host, strlen(o.host), o.port) < 0)
		goto fail;
	/* The server answers (a cluster: and tells who serves which slot). */
	ret = -EIO;
	r = command(o.host, o.port, o.timeout_ms, 1, ping);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		if (r)
			freeReplyObject(r);
		goto fail;
	}
	freeReplyObject(r);
	if (rs->cluster && load_slots(rs))
		goto fail;
	rs->store.ops = &redis_ops;
	rs->store.data = rs;
	rs->store.kind = "redis";
	return &rs->store;
fail:
	redis_close(rs);
	errno = -ret;
	return NULL;
}

#endif /* HAVE_HIREDIS */

bool uffd__store_is_redis(const struct uffd_store *s)
{
#ifdef HAVE_HIREDIS
	return s->ops == &redis_ops;
#else
	(void)s;
	return false;	/* there is none */
#endif
}
