/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-store.h"

uint64_t t_word(uint64_t off, unsigned seed)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ULL ^ (seed + 1) * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 31;
	return x * 0x94d049bb133111ebULL;
}

static void count(unsigned *counts, uint64_t off, size_t len)
{
	uint64_t p;

	for (p = off / PAGE; p * PAGE < off + len; p++)
		__atomic_fetch_add(&counts[p], 1, __ATOMIC_RELAXED);
}

static ssize_t ts_read(void *store, void *buf, size_t len, uint64_t off)
{
	struct t_store *s = store;
	uint64_t p;

	if (off >= s->len)
		return 0;
	if (len > s->len - off)
		len = s->len - off;
	for (p = off / PAGE; p * PAGE < off + len; p++)
		if ((int)p == __atomic_load_n(&s->fail_read_page, __ATOMIC_RELAXED))
			return -EIO;
	if (s->delay_us)
		usleep(s->delay_us);
	memcpy(buf, s->data + off, len);
	count(s->reads, off, len);
	return len;
}

static ssize_t ts_write(void *store, const void *buf, size_t len, uint64_t off)
{
	struct t_store *s = store;

	if (__atomic_load_n(&s->fail_writes, __ATOMIC_RELAXED))
		return -EIO;
	if (off >= s->len)
		return -EINVAL;
	if (len > s->len - off)
		len = s->len - off;
	memcpy(s->data + off, buf, len);
	count(s->writes, off, len);
	return len;
}

static int64_t ts_size(void *store)
{
	return ((struct t_store *)store)->len;
}

static const struct uffd_store_ops ts_ops = {
	.read = ts_read,
	.write = ts_write,
	.size = ts_size,
};

struct t_store *t_store_new(size_t len, unsigned seed)
{
	struct t_store *s = calloc(1, sizeof(*s));
	size_t pages = (len + PAGE - 1) / PAGE, i;

	CHECK(s);
	s->data = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(s->data != MAP_FAILED);
	s->reads = calloc(pages, sizeof(unsigned));
	s->writes = calloc(pages, sizeof(unsigned));
	CHECK(s->reads && s->writes);
	s->len = len;
	s->fail_read_page = -1;
	for (i = 0; i + 8 <= len; i += 8)
		*(uint64_t *)(s->data + i) = t_word(i, seed);
	s->store = (struct uffd_store){ .ops = &ts_ops, .data = s, .kind = "test" };
	return s;
}

void t_store_free(struct t_store *s)
{
	munmap(s->data, (s->len + PAGE - 1) / PAGE * PAGE);
	free(s->reads);
	free(s->writes);
	free(s);
}

static unsigned long total(const struct t_store *s, const unsigned *counts)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; i < (s->len + PAGE - 1) / PAGE; i++)
		n += __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
	return n;
}

unsigned long t_store_reads(const struct t_store *s)
{
	return total(s, s->reads);
}

unsigned long t_store_writes(const struct t_store *s)
{
	return total(s, s->writes);
}

void t_require_redis_store(void)
{
	/* Port 1: nobody there, so EIO at once, unless there is no store. */
	UFFD_OPTS(uffd_store_redis_opts, o, .port = 1, .prefix = "probe", .size = 4096,
		  .timeout_ms = 100);
	struct uffd_store *s = uffd_store_redis(&o);

	if (!s && errno == EOPNOTSUPP)
		SKIP("libuffd built without hiredis");
	uffd_store_free(s);
}

struct uffd_pager *t_pager_new(const struct uffd_pager_opts *o)
{
	struct uffd_pager *p = uffd_pager_new(o);

	if (!p && (errno == EOPNOTSUPP || errno == EPERM))
		SKIP("no userfaultfd write-protect here: %s", strerror(errno));
	if (!p)
		FAIL("uffd_pager_new: %s", strerror(errno));
	return p;
}

static volatile bool stop_serving;

static void on_term(int sig)
{
	stop_serving = true;
}

pid_t t_serve_start(const char *path, size_t len, unsigned seed)
{
	struct uffd_store *s = NULL;
	pid_t pid = fork();
	char *mem;
	int i;

	CHECK(pid >= 0);
	if (!pid) {
		/* a test that fails (or is stopped) must not leave a server behind */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(2);
		t_fill(mem, len, seed);
		signal(SIGTERM, on_term);
		_exit(uffd_store_serve(path, mem, len, &stop_serving) ? 3 : 0);
	}
	/* Ready when a client gets in. */
	for (i = 0; i < 5000 && !s; i++) {
		s = uffd_store_socket(path);
		if (!s)
			t_sleep_ms(1);
	}
	if (!s)
		FAIL("server did not come up: %s", strerror(errno));
	uffd_store_free(s);
	return pid;
}

void t_serve_kill(pid_t pid)
{
	int status;

	CHECK_OK(kill(pid, SIGKILL));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}
