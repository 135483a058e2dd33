/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The commands: Redis' string commands that redis-benchmark and redis-cli
 * use, the persistence ones, and enough of INFO, CONFIG GET and COMMAND for
 * those tools.  Replies and error lines are Redis 7's, word for word, so a
 * client cannot tell the difference where the two overlap.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dict.h"
#include "kv.h"

#define CMD_WRITE	1	/* changes data: counted for the next save */

struct cmd_ctx {
	struct server *s;
	struct client *c;
	int argc;
	const char **argv;
	const size_t *lens;
};

struct command {
	const char *name;
	int arity;		/* > 0 exactly, < 0 at least -arity */
	int flags;
	void (*run)(struct cmd_ctx *x);
};

static const char err_oom[] = "-OOM command not allowed when used memory > 'maxmemory'.";
static const char err_syntax[] = "-ERR syntax error";
static const char err_int[] = "-ERR value is not an integer or out of range";

static bool arg_is(struct cmd_ctx *x, int i, const char *word)
{
	size_t n = strlen(word);

	return x->lens[i] == n && !strncasecmp(x->argv[i], word, n);
}

static void reply_set_error(struct cmd_ctx *x, int ret)
{
	if (ret == -E2BIG)
		reply_str(x->c, "-ERR string exceeds maximum allowed size");
	else
		reply_str(x->c, err_oom);
}

/* Redis' string2ll: what INCR accepts as a number. */
static bool parse_ll(const char *s, size_t n, long long *v)
{
	char b[24], *end;

	if (n == 0 || n >= sizeof(b))
		return false;
	memcpy(b, s, n);
	b[n] = 0;
	if (b[0] == '+' || b[0] == ' ' || (b[0] == '0' && n > 1) ||
	    (b[0] == '-' && (n == 1 || b[1] == '0')))
		return false;
	errno = 0;
	*v = strtoll(b, &end, 10);
	return !errno && *end == 0;
}

/* ---- connection ------------------------------------------------------------ */

static void cmd_ping(struct cmd_ctx *x)
{
	if (x->argc > 2)
		reply_error(x->c, "-ERR wrong number of arguments for 'ping' command");
	else if (x->argc == 2)
		reply_bulk(x->c, x->argv[1], x->lens[1]);
	else
		reply_str(x->c, "+PONG");
}

static void cmd_echo(struct cmd_ctx *x)
{
	reply_bulk(x->c, x->argv[1], x->lens[1]);
}

static void cmd_quit(struct cmd_ctx *x)
{
	reply_str(x->c, "+OK");
	x->c->close_after_reply = true;
}

static void cmd_select(struct cmd_ctx *x)
{
	long long db;

	if (!parse_ll(x->argv[1], x->lens[1], &db))
		reply_str(x->c, "-ERR invalid DB index");
	else if (db != 0)
		reply_str(x->c, "-ERR DB index is out of range");
	else
		reply_str(x->c, "+OK");
}

/* ---- strings ------------------------------------------------------------- */

static void cmd_get(struct cmd_ctx *x)
{
	struct kv_entry *e = dict_find(&x->s->arena, x->argv[1], x->lens[1]);

	if (e)
		reply_bulk(x->c, kv_value(e), e->vlen);
	else
		reply_nil(x->c);
}

static void cmd_set(struct cmd_ctx *x)
{
	struct arena *a = &x->s->arena;
	bool nx = false, xx = false, get = false;
	struct kv_entry *e = NULL;
	size_t before = x->c->olen;
	int i, ret;

	for (i = 3; i < x->argc; i++) {
		if (arg_is(x, i, "NX") && !xx)
			nx = true;
		else if (arg_is(x, i, "XX") && !nx)
			xx = true;
		else if (arg_is(x, i, "GET"))
			get = true;
		else if (arg_is(x, i, "KEEPTTL"))
			;
		else if ((arg_is(x, i, "EX") || arg_is(x, i, "PX") || arg_is(x, i, "EXAT") ||
			  arg_is(x, i, "PXAT")) && i + 1 < x->argc) {
			reply_str(x->c, "-ERR uffd-kv keeps no expiry times");
			return;
		} else {
			reply_str(x->c, err_syntax);
			return;
		}
	}
	if (nx || xx || get)
		e = dict_find(a, x->argv[1], x->lens[1]);
	if (get) {
		if (e)
			reply_bulk(x->c, kv_value(e), e->vlen);
		else
			reply_nil(x->c);
	}
	if ((nx && e) || (xx && !e)) {
		if (!get)
			reply_nil(x->c);
		return;
	}
	ret = dict_set(a, x->argv[1], x->lens[1], x->argv[2], x->lens[2]);
	if (ret) {
		if (get)	/* one reply per command: not the old value too */
			x->c->olen = before;
		reply_set_error(x, ret);
		return;
	}
	x->s->changes++;
	if (!get)
		reply_str(x->c, "+OK");
}

static void cmd_mget(struct cmd_ctx *x)
{
	int i;

	reply_array(x->c, x->argc - 1);
	for (i = 1; i < x->argc; i++) {
		struct kv_entry *e = dict_find(&x->s->arena, x->argv[i], x->lens[i]);

		if (e)
			reply_bulk(x->c, kv_value(e), e->vlen);
		else
			reply_nil(x->c);
	}
}

static void cmd_mset(struct cmd_ctx *x)
{
	size_t need = 0;
	int i, ret;

	if (x->argc % 2 == 0) {
		reply_str(x->c, "-ERR wrong number of arguments for 'mset' command");
		return;
	}
	/* all or nothing: make room for every pair first */
	for (i = 1; i < x->argc; i += 2)
		need += arena_usable(kv_entry_size(x->lens[i], x->lens[i + 1]));
	if (arena_reserve(&x->s->arena, need + (64 << 10))) {
		reply_str(x->c, err_oom);
		return;
	}
	for (i = 1; i < x->argc; i += 2) {
		ret = dict_set(&x->s->arena, x->argv[i], x->lens[i], x->argv[i + 1],
			       x->lens[i + 1]);
		if (ret) {
			reply_set_error(x, ret);
			return;
		}
		x->s->changes++;
	}
	reply_str(x->c, "+OK");
}

static void cmd_del(struct cmd_ctx *x)
{
	long long n = 0;
	int i;

	for (i = 1; i < x->argc; i++)
		n += dict_del(&x->s->arena, x->argv[i], x->lens[i]);
	x->s->changes += n;
	reply_int(x->c, n);
}

static void cmd_exists(struct cmd_ctx *x)
{
	long long n = 0;
	int i;

	for (i = 1; i < x->argc; i++)
		n += dict_find(&x->s->arena, x->argv[i], x->lens[i]) != NULL;
	reply_int(x->c, n);
}

static void cmd_strlen(struct cmd_ctx *x)
{
	struct kv_entry *e = dict_find(&x->s->arena, x->argv[1], x->lens[1]);

	reply_int(x->c, e ? e->vlen : 0);
}

static void incr_by(struct cmd_ctx *x, long long by)
{
	struct kv_entry *e = dict_find(&x->s->arena, x->argv[1], x->lens[1]);
	long long v = 0;
	char b[24];
	int n, ret;

	if (e && !parse_ll(kv_value(e), e->vlen, &v)) {
		reply_str(x->c, err_int);
		return;
	}
	if ((by < 0 && v < LLONG_MIN - by) || (by > 0 && v > LLONG_MAX - by)) {
		reply_str(x->c, "-ERR increment or decrement would overflow");
		return;
	}
	v += by;
	n = snprintf(b, sizeof(b), "%lld", v);
	ret = dict_set(&x->s->arena, x->argv[1], x->lens[1], b, n);
	if (ret) {
		reply_set_error(x, ret);
		return;
	}
	x->s->changes++;
	reply_int(x->c, v);
}

static void cmd_incr(struct cmd_ctx *x)
{
	incr_by(x, 1);
}

static void cmd_decr(struct cmd_ctx *x)
{
	incr_by(x, -1);
}

static void cmd_incrby(struct cmd_ctx *x, bool negate)
{
	long long by;

	if (!parse_ll(x->argv[2], x->lens[2], &by)) {
		reply_str(x->c, err_int);
		return;
	}
	if (negate && by == LLONG_MIN) {
		reply_str(x->c, "-ERR decrement would overflow");
		return;
	}
	incr_by(x, negate ? -by : by);
}

static void cmd_incrby_(struct cmd_ctx *x)
{
	cmd_incrby(x, false);
}

static void cmd_decrby(struct cmd_ctx *x)
{
	cmd_incrby(x, true);
}

/* ---- the key space --------------------------------------------------------- */

static void cmd_dbsize(struct cmd_ctx *x)
{
	reply_int(x->c, (long long)dict_size(&x->s->arena));
}

static void cmd_flushall(struct cmd_ctx *x)
{
	struct arena *a = &x->s->arena;

	if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "ASYNC") && !arg_is(x, 1, "SYNC"))) {
		reply_str(x->c, err_syntax);
		return;
	}
	x->s->changes += dict_size(a);
	arena_reset(a);
	dict_init(a);
	/* Give the pages back, so the next image is small too - unless libuffd
	 * is watching them (a save, the restore): it would have to follow. */
	if (!persist_busy(x->s))
		madvise((char *)a->root + ARENA_PAGE, a->root->mapped - ARENA_PAGE, MADV_DONTNEED);
	reply_str(x->c, "+OK");
}

/* ---- persistence ----------------------------------------------------------- */

static void cmd_save(struct cmd_ctx *x)
{
	persist_save(x->s, x->c);
}

static void cmd_bgsave(struct cmd_ctx *x)
{
	if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "SCHEDULE"))) {
		reply_str(x->c, err_syntax);
		return;
	}
	persist_bgsave(x->s, x->c);
}

static void cmd_lastsave(struct cmd_ctx *x)
{
	reply_int(x->c, (long long)persist_lastsave(x->s));
}

static void cmd_shutdown(struct cmd_ctx *x)
{
	bool save = false;
	int i;

	for (i = 1; i < x->argc; i++) {
		if (arg_is(x, i, "SAVE"))
			save = true;
		else if (arg_is(x, i, "NOSAVE") || arg_is(x, i, "NOW") || arg_is(x, i, "FORCE"))
			;
		else {
			reply_str(x->c, err_syntax);
			return;
		}
	}
	if (save) {
		size_t before = x->c->olen;

		persist_save(x->s, x->c);
		/* persist_save replied "+OK" or an error: an error stops it */
		if (x->c->olen > before && x->c->obuf[before] == '-') {
			x->c->olen = before;
			reply_str(x->c, "-ERR Errors trying to SHUTDOWN. Check logs.");
			return;
		}
		x->c->olen = before;
	}
	kv_log(x->s, "SHUTDOWN by client %llu", (unsigned long long)x->c->id);
	x->s->shutdown = true;
	x->c->close_after_reply = true;
}

/* ---- introspection ----------------------------------------------------------- */

/* Glob match as CONFIG GET does it: '*', '?', no classes; case-insensitive. */
static bool glob_match(const char *p, size_t pn, const char *s)
{
	size_t i;

	if (pn == 0)
		return *s == 0;
	if (*p == '*') {
		for (i = 0;; i++) {
			if (glob_match(p + 1, pn - 1, s + i))
				return true;
			if (!s[i])
				return false;
		}
	}
	if (!*s)
		return false;
	if (*p != '?' && (*p | 0x20) != (*s | 0x20))
		return false;
	return glob_match(p + 1, pn - 1, s + 1);
}

static void cmd_config(struct cmd_ctx *x)
{
	struct server *s = x->s;
	char port[16], maxmem[24], bulk[24];
	const char *params[][2] = {
		{ "save", "" },
		{ "appendonly", "no" },
		{ "dir", s->cfg.dir ? s->cfg.dir : "" },
		{ "dbfilename", KV_DUMP_NAME },
		{ "port", port },
		{ "bind", s->cfg.bind },
		{ "maxmemory", maxmem },
		{ "proto-max-bulk-len", bulk },
		{ "databases", "1" },
	};
	size_t i, n = sizeof(params) / sizeof(params[0]), match = 0;
	int a;

	if (x->argc >= 2 && arg_is(x, 1, "RESETSTAT") && x->argc == 2) {
		s->commands = s->connections = s->rejected = s->net_in = s->net_out = 0;
		reply_str(x->c, "+OK");
		return;
	}
	if (x->argc < 3 || !arg_is(x, 1, "GET")) {
		if (x->argc >= 2 && arg_is(x, 1, "SET"))
			reply_error(x->c, "-ERR uffd-kv takes its configuration from the "
				    "command line only");
		else
			reply_error(x->c, "-ERR unknown subcommand or wrong number of arguments "
				    "for '%.*s'. Try CONFIG HELP.",
				    x->argc >= 2 ? (int)(x->lens[1] > 64 ? 64 : x->lens[1]) : 0,
				    x->argc >= 2 ? x->argv[1] : "");
		return;
	}
	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(maxmem, sizeof(maxmem), "%llu", (unsigned long long)s->cfg.maxmemory);
	snprintf(bulk, sizeof(bulk), "%lld", s->cfg.max_bulk);
	for (i = 0; i < n; i++)
		for (a = 2; a < x->argc; a++)
			if (glob_match(x->argv[a], x->lens[a], params[i][0])) {
				match++;
				break;
			}
	reply_array(x->c, match * 2);
	for (i = 0; i < n; i++)
		for (a = 2; a < x->argc; a++)
			if (glob_match(x->argv[a], x->lens[a], params[i][0])) {
				reply_bulk(x->c, params[i][0], strlen(params[i][0]));
				reply_bulk(x->c, params[i][1], strlen(params[i][1]));
				break;
			}
}

static void cmd_command(struct cmd_ctx *x)
{
	if (x->argc >= 2 && arg_is(x, 1, "COUNT"))
		reply_int(x->c, 0);
	else
		reply_array(x->c, 0);	/* DOCS, INFO, the bare list: nothing to tell */
}

static long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static bool want_section(struct cmd_ctx *x, const char *name)
{
	int i;

	if (x->argc == 1)
		return true;
	for (i = 1; i < x->argc; i++)
		if (arg_is(x, i, name) || arg_is(x, i, "all") || arg_is(x, i, "everything") ||
		    arg_is(x, i, "default"))
			return true;
	return false;
}

static void cmd_info(struct cmd_ctx *x)
{
	struct server *s = x->s;
	struct arena *a = &s->arena;
	char buf[4096];
	size_t len = 0;

#define ADD(...) do {								\
	int _n = snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__);		\
	if (_n > 0)								\
		len += (size_t)_n < sizeof(buf) - len ? (size_t)_n : sizeof(buf) - len - 1; \
} while (0)
#define SECTION(name) do { if (len) ADD("\r\n"); ADD("# " name "\r\n"); } while (0)
	if (want_section(x, "server")) {
		SECTION("Server");
		ADD("redis_version:7.0.0\r\nuffd_kv_version:%s\r\n"
		    "redis_mode:standalone\r\nprocess_id:%d\r\ntcp_port:%d\r\n"
		    "uptime_in_seconds:%lld\r\nexecutable:uffd-kv\r\n", KV_VERSION,
		    (int)getpid(), s->port, (long long)(time(NULL) - s->start_time));
	}
	if (want_section(x, "clients")) {
		SECTION("Clients");
		ADD("connected_clients:%d\r\n", s->nclients);
	}
	if (want_section(x, "memory")) {
		SECTION("Memory");
		ADD("used_memory:%llu\r\nused_memory_rss:%llu\r\n"
		    "maxmemory:%llu\r\nuffd_arena_base:%#llx\r\nuffd_arena_mapped:%llu\r\n"
		    "uffd_arena_carved:%llu\r\nuffd_rehashing:%d\r\n",
		    (unsigned long long)a->root->used, (unsigned long long)rss_kib() * 1024,
		    (unsigned long long)s->cfg.maxmemory, (unsigned long long)arena_base(a),
		    (unsigned long long)a->root->mapped, (unsigned long long)a->root->brk,
		    a->root->dict.rehash_idx >= 0);
	}
	if (want_section(x, "persistence")) {
		SECTION("Persistence");
		persist_info(s, buf, sizeof(buf), &len);
	}
	if (want_section(x, "stats")) {
		SECTION("Stats");
		ADD("total_connections_received:%llu\r\n"
		    "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
		    "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n",
		    (unsigned long long)s->connections, (unsigned long long)s->commands,
		    (unsigned long long)s->rejected, (unsigned long long)s->net_in,
		    (unsigned long long)s->net_out);
	}
	if (want_section(x, "keyspace")) {
		SECTION("Keyspace");
		if (dict_size(a))
			ADD("db0:keys=%llu,expires=0,avg_ttl=0\r\n",
			    (unsigned long long)dict_size(a));
	}
#undef SECTION
#undef ADD
	reply_bulk(x->c, buf, len);
}

/* ---- dispatch ---------------------------------------------------------------- */

static const struct command commands[] = {
	{ "get", 2, 0, cmd_get },
	{ "set", -3, CMD_WRITE, cmd_set },
	{ "ping", -1, 0, cmd_ping },
	{ "mget", -2, 0, cmd_mget },
	{ "mset", -3, CMD_WRITE, cmd_mset },
	{ "del", -2, CMD_WRITE, cmd_del },
	{ "exists", -2, 0, cmd_exists },
	{ "incr", 2, CMD_WRITE, cmd_incr },
	{ "decr", 2, CMD_WRITE, cmd_decr },
	{ "incrby", 3, CMD_WRITE, cmd_incrby_ },
	{ "decrby", 3, CMD_WRITE, cmd_decrby },
	{ "strlen", 2, 0, cmd_strlen },
	{ "dbsize", 1, 0, cmd_dbsize },
	{ "flushall", -1, CMD_WRITE, cmd_flushall },
	{ "flushdb", -1, CMD_WRITE, cmd_flushall },
	{ "config", -2, 0, cmd_config },
	{ "info", -1, 0, cmd_info },
	{ "save", 1, 0, cmd_save },
	{ "bgsave", -1, 0, cmd_bgsave },
	{ "lastsave", 1, 0, cmd_lastsave },
	{ "shutdown", -1, 0, cmd_shutdown },
	{ "select", 2, 0, cmd_select },
	{ "echo", 2, 0, cmd_echo },
	{ "quit", -1, 0, cmd_quit },
	{ "command", -1, 0, cmd_command },
};

static const struct command *lookup(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].name) == n && !strncasecmp(commands[i].name, name, n))
			return &commands[i];
	return NULL;
}

/* Redis' "unknown command" line: the name and the first arguments, quoted. */
static void reply_unknown(struct client *c, int argc, const char **argv, const size_t *lens)
{
	char args[256];
	size_t len = 0;
	int i;

	args[0] = 0;
	for (i = 1; i < argc && len < 128; i++) {
		int n = snprintf(args + len, sizeof(args) - len, "'%.*s' ",
				 (int)(lens[i] > 32 ? 32 : lens[i]), argv[i]);

		if (n < 0 || (size_t)n >= sizeof(args) - len)
			break;
		len += n;
	}
	reply_error(c, "-ERR unknown command '%.*s', with args beginning with: %s",
		    (int)(lens[0] > 64 ? 64 : lens[0]), argv[0], args);
}

void command_run(struct server *s, struct client *c, int argc, const char **argv,
		 const size_t *lens)
{
	const struct command *cmd = lookup(argv[0], lens[0]);
	struct cmd_ctx x = { s, c, argc, argv, lens };

	if (!cmd) {
		reply_unknown(c, argc, argv, lens);
		return;
	}
	if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
		reply_error(c, "-ERR wrong number of arguments for '%s' command", cmd->name);
		return;
	}
	cmd->run(&x);
}
