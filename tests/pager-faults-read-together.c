/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Faults of several threads are read from the store together: while the
 * first faults' reads are in flight, the faults that come meanwhile are
 * queued, and the next read is one batch of all of them (read_batch) -
 * not one read per servicing thread, each at the device's latency.
 *
 * Eight threads each touch a page of their own.  The store holds every
 * read until six faults are queued behind the two servicing threads that
 * read (at most two read at once), then lets them go: the six must come
 * in one batch of six, and every page read once, with its own data.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffd/pager.h>

#include "lib/harness.h"
#include "lib/test-store.h"
#include "pager/pager_internal.h"

#define THREADS		8
#define QUEUED		(THREADS - JOB_READERS)
#define NPAGES		64
#define WAIT_MS		10000

struct gated_store {
	struct uffd_store store;
	struct t_store *data;
	pthread_mutex_t lock;
	pthread_cond_t open;
	bool gate_open;
	int batches[THREADS + 1];	/* read_batch calls by size */
	int reads;			/* single reads */
};

static void wait_gate(struct gated_store *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->gate_open)
		pthread_cond_wait(&g->open, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static ssize_t gated_read(void *store, void *buf, size_t len, uint64_t off)
{
	struct gated_store *g = store;

	wait_gate(g);
	pthread_mutex_lock(&g->lock);
	g->reads++;
	pthread_mutex_unlock(&g->lock);
	return g->data->store.ops->read(g->data->store.data, buf, len, off);
}

static int gated_read_batch(void *store, struct uffd_store_io *io, int n)
{
	struct gated_store *g = store;
	int i;

	wait_gate(g);
	pthread_mutex_lock(&g->lock);
	g->batches[n <= THREADS ? n : THREADS]++;
	pthread_mutex_unlock(&g->lock);
	for (i = 0; i < n; i++)
		io[i].res = g->data->store.ops->read(g->data->store.data, io[i].buf,
						     io[i].len, io[i].off);
	return 0;
}

static int64_t gated_size(void *store)
{
	struct gated_store *g = store;

	return g->data->store.ops->size(g->data->store.data);
}

static const struct uffd_store_ops gated_ops = {
	.read = gated_read,
	.size = gated_size,
	.read_batch = gated_read_batch,
};

struct toucher {
	pthread_t thread;
	char *map;
	size_t page;
	uint64_t got;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	t->got = *(volatile uint64_t *)(t->map + t->page * PAGE + 24);
	return NULL;
}

static int queued(struct uffd_pager *p)
{
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->njobs;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int main(void)
{
	/* One message per servicing thread: each takes a fault of its own. */
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 4UL << 20, .fillers = THREADS,
		  .max_fault_events = 1, .read_ahead = UFFD_PAGER_NO_READ_AHEAD);
	struct gated_store g = { .lock = PTHREAD_MUTEX_INITIALIZER,
				 .open = PTHREAD_COND_INITIALIZER };
	struct toucher t[THREADS];
	struct uffd_pager *p;
	int i, waited;
	char *map;

	g.data = t_store_new(NPAGES * PAGE, 3);
	g.store = (struct uffd_store){ &gated_ops, &g, "gated" };
	p = t_pager_new(&o);
	map = uffd_pager_map(p, &g.store, 0, NPAGES * PAGE, PROT_READ, 0, 0);
	CHECK(map);
	for (i = 0; i < THREADS; i++) {
		/* Pages far apart: no two in one read. */
		t[i] = (struct toucher){ .map = map, .page = i * 7 };
		CHECK_OK(pthread_create(&t[i].thread, NULL, touch, &t[i]));
	}
	for (waited = 0; queued(p) < QUEUED && waited < WAIT_MS; waited++)
		usleep(1000);
	if (queued(p) < QUEUED)
		FAIL("%d faults queued after %d s, want %d", queued(p), WAIT_MS / 1000, QUEUED);
	pthread_mutex_lock(&g.lock);
	g.gate_open = true;
	pthread_cond_broadcast(&g.open);
	pthread_mutex_unlock(&g.lock);
	for (i = 0; i < THREADS; i++) {
		CHECK_OK(pthread_join(t[i].thread, NULL));
		CHECK_EQ(t[i].got, t_word(t[i].page * PAGE + 24, 3));
		CHECK_EQ(t_reads(g.data, t[i].page), 1);
	}
	printf("single reads %d, batches of %d: %d\n", g.reads, QUEUED, g.batches[QUEUED]);
	CHECK_EQ(g.batches[QUEUED], 1);
	CHECK_EQ(g.reads, JOB_READERS);
	CHECK_OK(uffd_pager_unmap(p, map));
	CHECK_OK(uffd_pager_free(p));
	t_store_free(g.data);
	return 0;
}
