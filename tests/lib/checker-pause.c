/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "checker-pause.h"
#include "harness.h"

struct pauser {
	pthread_t thread;
	struct uffd_checker *c;
	int done;		/* atomic */
};

static void *pause_main(void *arg)
{
	struct pauser *p = arg;

	uffd_checker_pause(p->c);
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void t_checker_pause_within(struct uffd_checker *c, int ms)
{
	struct pauser p = { .c = c };

	CHECK_OK(pthread_create(&p.thread, NULL, pause_main, &p));
	if (!t_wait_flag(&p.done, ms))
		FAIL("a writer did not park within %d ms: blocked on a protected page", ms);
	pthread_join(p.thread, NULL);
}

void t_checker_writes_within(struct uffd_checker *c, int ms)
{
	uint64_t writes = uffd_checker_writes(c);
	int waited;

	for (waited = 0; waited < ms; waited++) {
		if (uffd_checker_writes(c) > writes)
			return;
		t_sleep_ms(1);
	}
	FAIL("the writers did not write for %d ms: one is blocked", ms);
}

struct uffd_checker *t_checker_table(const struct uffd_checker_opts *co, uint32_t image_flags,
				     struct uffd_image_region *reg)
{
	struct uffd_checker *c = uffd_checker_new(co);

	if (!c)
		FAIL("uffd_checker_new: %s", strerror(errno));
	*reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(c),
					   uffd_checker_len(c), PAGE, image_flags };
	return c;
}

void t_check_image_instant(struct uffd_checker *c, const char *path)
{
	struct uffd_image_chain *chain = uffd_image_chain_open(path, NULL);
	char msg[256];

	if (!chain)
		FAIL("uffd_image_chain_open %s: %s", path, strerror(errno));
	CHECK_OK(uffd_image_verify(uffd_image_chain_get(chain, 0), NULL));
	if (uffd_checker_verify_image(c, chain, 0, msg, sizeof(msg)))
		FAIL("%s is not the instant: %s", path, msg);
	uffd_image_chain_close(chain);
}

void t_snapshot_table(struct uffd_checker *c, const struct uffd_snap_opts *so, int ms,
		      struct uffd_snap_stats *st)
{
	uint64_t pages = uffd_checker_len(c) / PAGE;
	struct uffd_snap *s;

	CHECK_OK(uffd_checker_start(c));
	t_sleep_ms(10);
	s = uffd_snap_begin(so);
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	CHECK_OK(uffd_snap_wait(s, ms));
	CHECK_OK(uffd_snap_stats(s, st));
	uffd_checker_stop(c);
	uffd_snap_free(s);
	CHECK(st->done);
	CHECK_EQ(st->error, 0);
	CHECK_EQ(st->pages, pages);
	CHECK_EQ(st->pages_present, pages);
	CHECK_EQ(st->zero_pages, 0);
	CHECK_EQ(st->copied_before_write + st->written_background + st->sync_writes,
		 st->pages_present);
}
