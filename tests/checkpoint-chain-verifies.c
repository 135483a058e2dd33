/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Incremental checkpoints of a running workload form a chain that is, after
 * every checkpoint, exactly the memory at that checkpoint's instant: a base
 * and deltas written while 2 checker writers run, each chain verified page
 * by page; a delta holds only what changed (no more pages than writes
 * were made since the previous instant), a checkpoint after no change
 * holds no page at all, and the chain restores
 * (lazily, into new mappings) to the latest instant.  Both ways: live
 * (the default) and stopped (a forced WP_ASYNC tracker).
 */
#include <stdio.h>
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/checkpoint.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"

#define TABLE (32UL << 20)
#define NCKPT 4

/* A little change: about n writes (the writers are fast; don't sleep). */
static void let_writers_run(struct uffd_checker *c, uint64_t n)
{
	uint64_t start = uffd_checker_writes(c);

	while (uffd_checker_writes(c) - start < n)
		usleep(50);
}

static void verify_chain(struct uffd_checker *c, const char *path, int length)
{
	struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);
	char msg[256];

	CHECK(chain);
	CHECK_EQ(uffd_image_chain_length(chain), length);
	if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
		FAIL("chain of %d is not the instant: %s", length, msg);
	uffd_image_chain_close(chain);
}

static void run(enum uffd_track_backend backend)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 3, .fill = 0.5);
	char dir[] = "/tmp/libuffd-ckpt-XXXXXX", path[NCKPT][64], msg[256];
	struct uffd_ckpt_stats st[NCKPT];
	uint64_t writes[NCKPT];
	struct uffd_image_region reg;
	/* The test pauses the writers itself, to make each change small. */
	UFFD_OPTS(uffd_ckpt_opts, opts, .backend = backend);
	struct uffd_checker *c;
	struct uffd_restore *r;
	struct uffd_ckpt *k;
	int i;

	CHECK(mkdtemp(dir));
	c = uffd_checker_new(&co);
	CHECK(c);
	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c), TABLE, 4096,
					  UFFD_IMAGE_ANON };
	k = uffd_ckpt_new(&reg, 1, &opts);
	CHECK(k);
	CHECK_OK(uffd_checker_start(c));
	for (i = 0; i < NCKPT; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/ckpt-%d", dir, i);
		if (i > 0 && i < NCKPT - 1)
			let_writers_run(c, 1000);
		uffd_checker_pause(c);
		uffd_checker_mark_instant(c);
		writes[i] = uffd_checker_writes(c);
		CHECK_OK(uffd_ckpt_take(k, path[i], &st[i]));
		CHECK_EQ(st[i].sequence, i);
		verify_chain(c, path[i], i + 1);
		if (i < NCKPT - 2)
			uffd_checker_resume(c);		/* the last one: no change */
	}
	uffd_checker_stop(c);
	/* The base holds the filled half of the table; deltas what changed. */
	CHECK(st[0].pages_written >= TABLE / 4096 / 2 - 64);
	/* (How many writes land between two instants depends on the load:
	 * each dirties one page at most.) */
	CHECK(st[1].pages_written <= writes[1] - writes[0]);
	CHECK(st[1].pages_written > 0);
	CHECK_EQ(st[NCKPT - 1].pages_written, 0);
	CHECK(st[NCKPT - 1].bytes < 4096);

	r = uffd_restore_open(path[NCKPT - 1], UFFD_RESTORE_LAZY | UFFD_RESTORE_ANYWHERE);
	CHECK(r);
	if (uffd_checker_verify_memory(c, uffd_restore_addr(r, 0), msg, sizeof(msg)))
		FAIL("restored chain differs: %s", msg);
	CHECK_OK(uffd_restore_wait(r, 10000));
	uffd_restore_close(r, true);

	uffd_ckpt_free(k);
	uffd_checker_free(c);
	for (i = 0; i < NCKPT; i++)
		unlink(path[i]);
	rmdir(dir);
}

int main(void)
{
	t_require(UFFD_FEAT_WP_ASYNC);
	run(UFFD_TRACK_AUTO);
	run(UFFD_TRACK_WP_ASYNC);
	return T_EXIT_PASS;
}
