/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Redis store against a redis-server of the test's own: each page is
 * the value of "<prefix>:<n>", a page never written reads as zeros, a
 * range covering part of a page reads and writes only that part
 * (GETRANGE/SETRANGE), batches and reads past the end answer as the file
 * store's do, and a pager map over it writes every word back and reads it
 * back exact through a new store.  Bad options are EINVAL, a port nobody
 * listens on EIO.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/kv-server.h"
#include "lib/test-store.h"

#define NPAGES	64
#define LEN	(NPAGES * PAGE)

static struct uffd_store *open_store(int port, const char *prefix)
{
	UFFD_OPTS(uffd_store_redis_opts, o, .port = port, .prefix = prefix, .size = LEN,
		  .timeout_ms = 5000);
	struct uffd_store *s = uffd_store_redis(&o);

	if (!s && errno == EOPNOTSUPP)
		SKIP("libuffd built without hiredis");
	if (!s)
		FAIL("uffd_store_redis: %s", strerror(errno));
	return s;
}

/* The value of "<prefix>:<page>", as any other client sees it. */
static void check_key(struct t_kv *k, const char *prefix, int page, const void *want, long len)
{
	struct kvc_reply r;
	char key[256];
	const char *argv[] = { "GET", key };

	snprintf(key, sizeof(key), "%s:%d", prefix, page);
	CHECK_OK(kvc_cmd(&k->c, &r, 2, argv));
	CHECK_EQ(r.type, KVC_BULK);
	CHECK_EQ(r.len, (size_t)len);
	t_check_bytes(key, r.str, want, len);
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, po, .buffer_bytes = 16 * PAGE);
	static char buf[4 * PAGE], want[4 * PAGE], zeros[PAGE];
	struct uffd_store_io io[3];
	struct uffd_store *s;
	struct uffd_pager *p;
	char prefix[64], dir[256];
	struct t_kv r;
	uint64_t *map;
	size_t i;

	t_require_redis_store();
	t_kv_mkdir(dir, sizeof(dir));
	t_redis_start(&r, dir);
	snprintf(prefix, sizeof(prefix), "store-redis-%d", (int)getpid());
	s = open_store(r.port, prefix);
	CHECK(!strcmp(s->kind, "redis"));
	CHECK_EQ(s->ops->size(s->data), LEN);

	/* A whole page is one value; never written reads as zeros. */
	t_fill(want, PAGE, 1);
	CHECK_EQ(s->ops->write(s->data, want, PAGE, 3 * PAGE), PAGE);
	check_key(&r, prefix, 3, want, PAGE);
	memset(buf, 'x', PAGE);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 7 * PAGE), PAGE);
	t_check_bytes("page 7, never written", buf, zeros, PAGE);

	/* Part of a page: only that part, the rest of the value kept. */
	CHECK_EQ(s->ops->write(s->data, "hello", 5, 3 * PAGE + 100), 5);
	memcpy(want + 100, "hello", 5);
	check_key(&r, prefix, 3, want, PAGE);
	CHECK_EQ(s->ops->write(s->data, "tail", 4, 5 * PAGE + 50), 4);
	memset(buf, 'x', 2 * PAGE);
	CHECK_EQ(s->ops->read(s->data, buf, 200, 5 * PAGE), 200);
	CHECK(!memcmp(buf, zeros, 50) && !memcmp(buf + 50, "tail", 4) &&
	      !memcmp(buf + 54, zeros, 146));
	/* Across pages: the end of 3, the start of 4 (never written). */
	CHECK_EQ(s->ops->read(s->data, buf, 300, 4 * PAGE - 96), 300);
	t_check_bytes("end of page 3", buf, want + PAGE - 96, 96);
	t_check_bytes("start of page 4", buf + 96, zeros, 204);

	/* Batches; the end of the store. */
	t_fill(want, 4 * PAGE, 2);
	io[0] = (struct uffd_store_io){ want, 2 * PAGE, 10 * PAGE, 0 };
	io[1] = (struct uffd_store_io){ want + 2 * PAGE, PAGE, 20 * PAGE, 0 };
	io[2] = (struct uffd_store_io){ want + 3 * PAGE, PAGE, LEN, 0 };
	CHECK_EQ(s->ops->write_batch(s->data, io, 3), -EINVAL);
	CHECK_EQ(io[0].res, 2 * PAGE);
	CHECK_EQ(io[1].res, PAGE);
	CHECK_EQ(io[2].res, -EINVAL);
	io[0] = (struct uffd_store_io){ buf, 2 * PAGE, 10 * PAGE, 0 };
	io[1] = (struct uffd_store_io){ buf + 2 * PAGE, PAGE, 20 * PAGE, 0 };
	io[2] = (struct uffd_store_io){ buf + 3 * PAGE, 2 * PAGE, LEN - PAGE, 0 };
	memset(buf, 'x', sizeof(buf));
	CHECK_OK(s->ops->read_batch(s->data, io, 3));
	CHECK_EQ(io[0].res, 2 * PAGE);
	CHECK_EQ(io[1].res, PAGE);
	CHECK_EQ(io[2].res, PAGE);
	t_check_bytes("batch", buf, want, 3 * PAGE);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, LEN), 0);
	uffd_store_free(s);

	/* A pager map over it, written under eviction (16-page buffer). */
	p = t_pager_new(&po);
	s = open_store(r.port, prefix);
	map = uffd_pager_map(p, s, 0, LEN, PROT_READ | PROT_WRITE, UFFD_PAGER_OWN_STORE, 0);
	CHECK(map);
	for (i = 0; i < LEN / 8; i++)
		map[i] = t_word(i * 8, 9);
	CHECK_OK(uffd_pager_unmap(p, map));
	s = open_store(r.port, prefix);
	map = uffd_pager_map(p, s, 0, LEN, PROT_READ, UFFD_PAGER_OWN_STORE, 0);
	CHECK(map);
	for (i = 0; i < LEN / 8; i++)
		if (map[i] != t_word(i * 8, 9))
			FAIL("word %zu: %#llx", i, (unsigned long long)map[i]);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	for (i = 0; i < PAGE / 8; i++)
		((uint64_t *)want)[i] = t_word(63 * PAGE + i * 8, 9);
	check_key(&r, prefix, 63, want, PAGE);

	/* Options, and nobody listening. */
	{
		UFFD_OPTS(uffd_store_redis_opts, o, .port = r.port, .size = LEN);
		UFFD_OPTS(uffd_store_redis_opts, nosize, .port = r.port, .prefix = "x");
		CHECK(!uffd_store_redis(&o) && errno == EINVAL);
		CHECK(!uffd_store_redis(&nosize) && errno == EINVAL);
		CHECK(!uffd_store_redis(NULL) && errno == EINVAL);
	}
	t_kv_stop(&r);
	t_kv_rmdir(dir);
	{
		UFFD_OPTS(uffd_store_redis_opts, o, .port = r.port, .prefix = "x", .size = LEN,
			  .timeout_ms = 500);
		CHECK(!uffd_store_redis(&o) && errno == EIO);
	}
	return 0;
}
