/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd-kv answers like redis-server: the same script of string commands
 * (sets, gets, counters and their errors, MSET/MGET, NX/XX/GET, DEL,
 * EXISTS, DBSIZE, FLUSHALL, CONFIG GET as redis-benchmark asks it, wrong
 * arities, an unknown command, inline commands) is sent to a redis-server
 * started for the test and to uffd-kv, and every reply must be the same,
 * byte for byte as parsed (type, value, array elements); then malformed
 * requests, each on its own connection, get the same protocol error line
 * from both, and both close that connection.  Skips if redis-server is not
 * installed.
 */
#include <stdio.h>
#include <string.h>

#include "lib/harness.h"
#include "lib/kv-server.h"

static const char *const script[] = {
	"PING", "PING hello", "ECHO x", "SET k v", "GET k", "GET missing",
	"SET k v2 NX", "SET k v3 XX", "GET k", "SET new v NX", "SET other v XX",
	"SET k old", "SET k new GET", "GET k", "SET never x GET", "GET never",
	"SET n 10", "INCR n", "INCRBY n 5", "DECR n", "DECRBY n 3", "INCR fresh",
	"INCR k", "SET z 01", "INCR z", "SET big 9223372036854775807", "INCR big",
	"DECRBY n -9223372036854775808", "INCRBY n x",
	"MSET a 1 b 2 c 3", "MGET a b missing c", "MSET a", "MSET a 1 b",
	"DEL a b missing", "EXISTS a c c missing", "DBSIZE", "STRLEN c", "STRLEN missing",
	"GET", "SET k", "INCR", "DBSIZE extra", "FOO bar baz", "SELECT 0",
	"CONFIG GET save", "CONFIG GET appendonly", "SET k v PX", "SET k v NX XX",
	"FLUSHALL", "DBSIZE", "GET k", "ECHO", "QUIT",
};

/* A whole reply rendered as text (arrays with their elements). */
static void render(struct kvc *c, char *out, size_t cap, size_t *len)
{
	struct kvc_reply r;
	long long i;
	int ret = kvc_read(c, &r);

	if (ret) {
		*len += snprintf(out + *len, cap - *len, "<read: %s>", strerror(-ret));
		return;
	}
	switch (r.type) {
	case KVC_ARRAY:
		*len += snprintf(out + *len, cap - *len, "[%lld:", r.integer);
		for (i = 0; i < r.integer && *len < cap - 1; i++)
			render(c, out, cap, len);
		*len += snprintf(out + *len, cap - *len, "]");
		break;
	case KVC_INT:
		*len += snprintf(out + *len, cap - *len, ":%lld ", r.integer);
		break;
	case KVC_NIL:
		*len += snprintf(out + *len, cap - *len, "(nil) ");
		break;
	default:
		*len += snprintf(out + *len, cap - *len, "%c%.*s| ", r.type, (int)r.len, r.str);
	}
}

static void run_script(struct t_kv *k, char out[][512], int n)
{
	int i;

	for (i = 0; i < n; i++) {
		struct kvc_reply r;
		size_t len = 0;
		char words[128];
		const char *argv[16];
		char *save, *w;
		int argc = 0;

		snprintf(words, sizeof(words), "%s", script[i]);
		for (w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
			argv[argc++] = w;
		CHECK_OK(kvc_append(&k->c, argc, argv, NULL));
		CHECK_OK(kvc_flush(&k->c));
		render(&k->c, out[i], 512, &len);
		(void)r;
	}
}

/* Raw bytes on a new connection: the reply line, then the close. */
static void malformed(struct t_kv *k, const char *raw, size_t n, char *out, size_t cap)
{
	struct kvc c;
	struct kvc_reply r;
	size_t len = 0;

	CHECK_OK(kvc_connect(&c, NULL, k->port, 10000));
	CHECK_OK(kvc_append_raw(&c, raw, n));
	CHECK_OK(kvc_flush(&c));
	render(&c, out, cap, &len);
	if (kvc_read(&c, &r) != -ECONNRESET)
		FAIL("the connection stayed open after '%.*s'", (int)n, raw);
	kvc_close(&c);
}

int main(void)
{
	static const char *const bad[] = {
		"*x\r\n", "*1\r\nPING\r\n", "*1\r\n$600000000\r\n", "*1\r\n$-5\r\n",
		"SET \"a b\r\n",
	};
	enum { N = sizeof(script) / sizeof(script[0]), NBAD = sizeof(bad) / sizeof(bad[0]) };
	static char want[N][512], got[N][512];
	char dir[256], a[256], b[256];
	struct t_kv redis, kv;
	int i;

	t_kv_mkdir(dir, sizeof(dir));
	t_redis_start(&redis, dir);
	t_kv_start(&kv, NULL, NULL);
	run_script(&redis, want, N);
	run_script(&kv, got, N);
	for (i = 0; i < N; i++)
		if (strcmp(want[i], got[i]))
			FAIL("'%s': redis-server said %s, uffd-kv %s", script[i], want[i], got[i]);
	/* the inline form: one line, split on spaces */
	for (i = 0; i < 2; i++) {
		struct t_kv *k = i ? &kv : &redis;
		size_t len = 0;

		kvc_close(&k->c);	/* QUIT closed it */
		CHECK_OK(kvc_connect(&k->c, NULL, k->port, 10000));
		CHECK_OK(kvc_append_raw(&k->c, "SET  inl  'a b'\r\nGET inl\r\n", 26));
		CHECK_OK(kvc_flush(&k->c));
		render(&k->c, i ? b : a, sizeof(a), &len);
		render(&k->c, i ? b : a, sizeof(a), &len);
	}
	if (strcmp(a, b))
		FAIL("inline: redis-server said %s, uffd-kv %s", a, b);
	for (i = 0; i < NBAD; i++) {
		malformed(&redis, bad[i], strlen(bad[i]), a, sizeof(a));
		malformed(&kv, bad[i], strlen(bad[i]), b, sizeof(b));
		if (strcmp(a, b))
			FAIL("'%s': redis-server said %s, uffd-kv %s", bad[i], a, b);
	}
	CHECK_EQ(t_kv_stop(&kv), 0);
	t_kv_stop(&redis);
	t_kv_rmdir(dir);
	return T_EXIT_PASS;
}
