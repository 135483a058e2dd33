/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memory store: fresh zeros or the caller's buffer, reads short at the
 * end and empty past it (as pread), writes only inside (-EINVAL, nothing
 * written, for one that runs past the end), flush a no-op, no batches, and
 * uffd_store_free calls ops->close (leaving a caller's buffer alone).
 */
#include <sys/mman.h>
#include <uffd/pager.h>

#include "lib/harness.h"

#define LEN (3 * PAGE + 100)	/* not a whole number of pages */

static void fresh_zeros(void)
{
	struct uffd_store *s = uffd_store_memory(NULL, LEN);
	static char buf[LEN + PAGE], page[PAGE];

	CHECK(s);
	CHECK(!strcmp(s->kind, "memory"));
	CHECK_EQ(s->ops->size(s->data), LEN);
	CHECK(!s->ops->read_batch && !s->ops->write_batch);

	memset(buf, 0xaa, sizeof(buf));
	CHECK_EQ(s->ops->read(s->data, buf, sizeof(buf), 0), LEN);
	CHECK(t_is_zero(buf, LEN));
	CHECK_EQ((unsigned char)buf[LEN], 0xaa);	/* nothing past the end */

	t_fill(page, PAGE, 1);
	CHECK_EQ(s->ops->write(s->data, page, PAGE, PAGE), PAGE);
	CHECK_EQ(s->ops->write(s->data, page, 100, 3 * PAGE), 100);	/* to the end */
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, PAGE), PAGE);
	CHECK(t_is_filled(buf, PAGE, 1));
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 3 * PAGE), 100);	/* short */
	CHECK(!memcmp(buf, page, 100));
	CHECK_EQ(s->ops->read(s->data, buf, 10, LEN - 4), 4);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, LEN), 0);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, LEN + 1), 0);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, UINT64_MAX), 0);
	CHECK_EQ(s->ops->read(s->data, buf, 0, 0), 0);

	/* A write that does not fit is refused whole. */
	memset(page, 0x55, PAGE);
	CHECK_EQ(s->ops->write(s->data, page, 20, LEN - 10), -EINVAL);
	CHECK_EQ(s->ops->write(s->data, page, 1, LEN), -EINVAL);
	CHECK_EQ(s->ops->write(s->data, page, 1, UINT64_MAX), -EINVAL);
	CHECK_EQ(s->ops->write(s->data, page, 0, LEN), 0);
	CHECK_EQ(s->ops->read(s->data, buf, 10, LEN - 10), 10);
	t_fill(page, PAGE, 1);
	CHECK(!memcmp(buf, page + 90, 10));		/* unchanged */

	CHECK_OK(s->ops->flush(s->data));
	CHECK_EQ(s->ops->size(s->data), LEN);
	uffd_store_free(s);
}

static void callers_buffer(void)
{
	char *mem = t_map_anon(2 * PAGE), buf[PAGE], page[PAGE];
	struct uffd_store *s;

	t_fill(mem, 2 * PAGE, 2);
	s = uffd_store_memory(mem, 2 * PAGE);
	CHECK(s);
	CHECK_EQ(s->ops->size(s->data), 2 * PAGE);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), PAGE);
	CHECK(t_is_filled(buf, PAGE, 2));

	/* The store is the buffer: writes land in it, its changes are read. */
	t_fill(page, PAGE, 3);
	CHECK_EQ(s->ops->write(s->data, page, PAGE, PAGE), PAGE);
	CHECK(t_is_filled(mem + PAGE, PAGE, 3));
	mem[5] = 'x';
	CHECK_EQ(s->ops->read(s->data, buf, 10, 0), 10);
	CHECK_EQ(buf[5], 'x');

	uffd_store_free(s);
	/* Still the caller's, still mapped and unchanged. */
	CHECK_EQ(mem[5], 'x');
	CHECK(t_is_filled(mem + PAGE, PAGE, 3));
	CHECK_OK(munmap(mem, 2 * PAGE));
}

static void bad_input(void)
{
	char c;

	errno = 0;
	CHECK(!uffd_store_memory(NULL, 0));
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(!uffd_store_memory(&c, 0));
	CHECK_EQ(errno, EINVAL);
	uffd_store_free(NULL);
}

/* uffd_store_free of a store of the caller's calls its close with data. */
static int closed;

static void count_close(void *data)
{
	CHECK_EQ((long)(uintptr_t)data, 42);
	closed++;
}

static void custom_close(void)
{
	static const struct uffd_store_ops ops = { .close = count_close };
	struct uffd_store s = { .ops = &ops, .data = (void *)42, .kind = "test" };
	static const struct uffd_store_ops no_close_ops = { 0 };
	struct uffd_store no_close = { .ops = &no_close_ops };

	uffd_store_free(&s);
	CHECK_EQ(closed, 1);
	uffd_store_free(&no_close);	/* no close op: nothing to do */
	CHECK_EQ(closed, 1);
}

int main(void)
{
	fresh_zeros();
	callers_buffer();
	bad_input();
	custom_close();
	return T_EXIT_PASS;
}
