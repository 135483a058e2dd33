/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Redis store on a Redis Cluster of three redis-servers the test
 * starts (redis-cli --cluster create): a map's pages spread over the nodes
 * by hash slot, every word written through the map reads back exact; then
 * a third of the slots move to another node (redis-cli --cluster reshard)
 * under the open store, whose slot map is now stale, and the pages still
 * read back exact and take new writes (MOVED followed).  Skips (77) where
 * redis-server or redis-cli is missing or the cluster does not form.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/kv-server.h"
#include "lib/test-store.h"

#define NODES		3
#define NPAGES		256
#define LEN		(NPAGES * PAGE)
#define FORM_MS		30000

static long dbsize(struct t_kv *k)
{
	struct kvc_reply r;

	if (kvc_cmdf(&k->c, &r, "DBSIZE") || r.type != KVC_INT)
		FAIL("DBSIZE on %d", k->port);
	return (long)r.integer;
}

static bool cluster_ok(struct t_kv *k)
{
	struct kvc_reply r;

	return !kvc_cmdf(&k->c, &r, "CLUSTER INFO") && r.type == KVC_BULK &&
	       memmem(r.str, r.len, "cluster_state:ok", 16);
}

static void node_id(struct t_kv *k, char *id, size_t len)
{
	struct kvc_reply r;

	if (kvc_cmdf(&k->c, &r, "CLUSTER MYID") || r.type != KVC_BULK)
		FAIL("CLUSTER MYID on %d", k->port);
	snprintf(id, len, "%.*s", (int)r.len, r.str);
}

/* Write every word through a map (generation gen), then read them all
 * back through another. */
static void round_trip(struct uffd_pager *p, struct uffd_store *s, unsigned gen)
{
	uint64_t *map;
	size_t i;

	map = uffd_pager_map(p, s, 0, LEN, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	for (i = 0; i < LEN / 8; i++)
		map[i] = t_word(i * 8, gen);
	CHECK_OK(uffd_pager_unmap(p, map));
	map = uffd_pager_map(p, s, 0, LEN, PROT_READ, 0, 0);
	CHECK(map);
	for (i = 0; i < LEN / 8; i++)
		if (map[i] != t_word(i * 8, gen))
			FAIL("generation %u, word %zu: %#llx", gen, i,
			     (unsigned long long)map[i]);
	CHECK_OK(uffd_pager_unmap(p, map));
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, po, .buffer_bytes = 64 * PAGE);
	UFFD_OPTS(uffd_store_redis_opts, o, .prefix = "cluster-map", .size = LEN,
		  .timeout_ms = 5000, .flags = UFFD_STORE_REDIS_CLUSTER);
	char cmd[512], id0[64], id1[64], dir[NODES][256];
	struct t_kv r[NODES];
	struct uffd_store *s;
	struct uffd_pager *p;
	long total = 0, before;
	int i, waited;

	t_require_redis_store();
	if (system("command -v redis-cli >/dev/null 2>&1"))
		SKIP("no redis-cli to create a cluster with");
	for (i = 0; i < NODES; i++) {
		t_kv_mkdir(dir[i], sizeof(dir[i]));
		t_redis_start_args(&r[i], dir[i], NULL, true);
	}
	snprintf(cmd, sizeof(cmd), "redis-cli --cluster create 127.0.0.1:%d 127.0.0.1:%d "
		 "127.0.0.1:%d --cluster-replicas 0 --cluster-yes >/dev/null 2>&1",
		 r[0].port, r[1].port, r[2].port);
	if (system(cmd))
		SKIP("redis-cli --cluster create failed");
	for (waited = 0; waited < FORM_MS; waited += 50) {
		bool ok = true;

		for (i = 0; i < NODES; i++)
			ok = ok && cluster_ok(&r[i]);
		if (ok)
			break;
		usleep(50000);
	}
	if (waited >= FORM_MS)
		SKIP("the cluster did not form in %d s", FORM_MS / 1000);

	o.port = r[0].port;
	s = uffd_store_redis(&o);
	if (!s && errno == EOPNOTSUPP)
		SKIP("libuffd built without hiredis");
	CHECK(s);
	p = t_pager_new(&po);
	round_trip(p, s, 1);
	for (i = 0; i < NODES; i++) {
		long n = dbsize(&r[i]);

		printf("node %d: %ld pages\n", r[i].port, n);
		CHECK(n > 0);
		total += n;
	}
	CHECK_EQ(total, NPAGES);

	/* A third of the slots (most of node 0's) move to node 1 under the
	 * open store. */
	before = dbsize(&r[0]);
	node_id(&r[0], id0, sizeof(id0));
	node_id(&r[1], id1, sizeof(id1));
	snprintf(cmd, sizeof(cmd), "redis-cli --cluster reshard 127.0.0.1:%d --cluster-from %s "
		 "--cluster-to %s --cluster-slots 5000 --cluster-yes >/dev/null 2>&1",
		 r[0].port, id0, id1);
	CHECK_OK(system(cmd));
	printf("node %d: %ld pages before the reshard, %ld after\n", r[0].port, before,
	       dbsize(&r[0]));
	CHECK(dbsize(&r[0]) < before);
	round_trip(p, s, 2);
	CHECK_OK(uffd_pager_free(p));
	uffd_store_free(s);
	for (i = 0; i < NODES; i++) {
		t_kv_stop(&r[i]);
		t_kv_rmdir(dir[i]);
	}
	return 0;
}
