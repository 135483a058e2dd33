/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A flush that is writing an inactive page back when eviction reaches the
 * page's entry on the inactive queue does not cost the page its entry:
 * once written, the page is inactive again and must be on the queue, or
 * nothing would ever evict it.  A writer rewrites a word of every page of
 * a map four times the buffer, twenty times over in a scattered order,
 * while another thread flushes the map again and again through a store
 * whose writes are slow (so flushes hold pages long); then the pager's
 * invariants hold (the internal uffd__pager_check: every evictable page on
 * the queue, every count right) and the store holds the last round.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"

#define BUFFER	(256 * PAGE)
#define NPAGES	(4 * 256)
#define ROUNDS	20
#define SEED	9

static struct uffd_store_ops slow_ops;
static const struct uffd_store_ops *fast_ops;

static ssize_t slow_write(void *store, const void *buf, size_t len, uint64_t off)
{
	usleep(200);
	return fast_ops->write(store, buf, len, off);
}

struct flusher {
	struct uffd_pager *p;
	char *map;
	bool stop;
	long flushes;
};

static void *flush_loop(void *arg)
{
	struct flusher *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
		CHECK_OK(uffd_pager_flush(f->p, f->map, 0));
		f->flushes++;
	}
	return NULL;
}

int main(void)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = BUFFER,
		  .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	struct t_store *ts = t_store_new(NPAGES * PAGE, SEED);
	struct uffd_pager *p;
	struct flusher f;
	char why[256] = "";
	size_t i, round;
	pthread_t t;
	char *map;
	int ret;

	fast_ops = ts->store.ops;
	slow_ops = *fast_ops;
	slow_ops.write = slow_write;
	ts->store.ops = &slow_ops;
	p = t_pager_new(&o);
	map = uffd_pager_map(p, &ts->store, 0, NPAGES * PAGE, PROT_READ | PROT_WRITE, 0, 0);
	CHECK(map);
	f = (struct flusher){ p, map, false, 0 };
	CHECK_OK(pthread_create(&t, NULL, flush_loop, &f));
	for (round = 0; round < ROUNDS; round++)
		for (i = 0; i < NPAGES; i++)
			((uint64_t *)(map + (i * 7919 + round) % NPAGES * PAGE))[1] = round;
	__atomic_store_n(&f.stop, true, __ATOMIC_RELAXED);
	CHECK_OK(pthread_join(t, NULL));
	CHECK(f.flushes > 0);
	ret = uffd__pager_check(p, why, sizeof(why));
	if (ret)
		FAIL("after %ld flushes: %s (%s)", f.flushes, why, t_errname(ret));
	CHECK_OK(uffd_pager_unmap(p, map));
	for (i = 0; i < NPAGES; i++) {
		const uint64_t *w = (const uint64_t *)(ts->data + i * PAGE);

		CHECK_EQ(w[0], t_word(i * PAGE, SEED));
		CHECK_EQ(w[1], ROUNDS - 1);
		CHECK_EQ(w[2], t_word(i * PAGE + 16, SEED));
	}
	CHECK_OK(uffd_pager_free(p));
	t_store_free(ts);
	return T_EXIT_PASS;
}
