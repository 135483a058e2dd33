/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A store for pager tests: memory that counts every read and write per
 * 4 KiB page and can be told to fail, so a test can assert exactly which
 * pages the pager read and wrote back.
 */
#ifndef LIBUFFD_TEST_STORE_H
#define LIBUFFD_TEST_STORE_H

#include <uffd/pager.h>

#include "harness.h"

struct t_store {
	struct uffd_store store;
	char *data;
	size_t len;
	unsigned *reads, *writes;	/* per 4 KiB page */
	int fail_read_page;		/* atomic; -1: none; reads of it give -EIO */
	int fail_writes;		/* atomic: writes fail with -EIO */
	int delay_us;			/* each read sleeps this long */
};

/* len bytes, each 8-byte word t_word(offset, seed). */
struct t_store *t_store_new(size_t len, unsigned seed);
void t_store_free(struct t_store *s);
uint64_t t_word(uint64_t off, unsigned seed);
/* A page's counts, read as the pager's threads write them (atomically:
 * the order comes from the kernel's fault wake, which sanitizers can not
 * see). */
static inline unsigned t_reads(const struct t_store *s, size_t page)
{
	return __atomic_load_n(&s->reads[page], __ATOMIC_RELAXED);
}

static inline unsigned t_writes(const struct t_store *s, size_t page)
{
	return __atomic_load_n(&s->writes[page], __ATOMIC_RELAXED);
}

/*
 * A child process serving len bytes filled with t_fill(seed) on the Unix
 * socket at path (uffd_store_serve), returned once a client can connect;
 * SIGTERM stops it cleanly.  t_serve_kill() SIGKILLs and reaps it.
 */
pid_t t_serve_start(const char *path, size_t len, unsigned seed);
void t_serve_kill(pid_t pid);

/* Skip (77) when libuffd was built without hiredis (no Redis store). */
void t_require_redis_store(void);

/* A pager with these options, or skip (no userfaultfd write-protect). */
struct uffd_pager *t_pager_new(const struct uffd_pager_opts *o);

/* Totals over all pages. */
unsigned long t_store_reads(const struct t_store *s);
unsigned long t_store_writes(const struct t_store *s);

#endif
