/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The socket store against a server in a child process: the handshake
 * gives the size; reads are exact, short at the end and empty past it;
 * writes land in the server's memory (a second client sees them), one past
 * the end is -EINVAL and changes nothing; an I/O larger than a request may
 * carry is split; flush is 0; two threads read at once.  The wire protocol
 * as the manual page documents it: a client of another version is told
 * -EPROTONOSUPPORT, an unknown request -EOPNOTSUPP.  A server that dies
 * gives -EIO at once and a new client ECONNREFUSED; a restarted one (the
 * stale socket file replaced) is used again without a new store; one that
 * hangs gives -EIO after the 5 s timeout, not a hang; and setting *stop
 * makes uffd_store_serve return 0 and remove its socket.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uffd/pager.h>

#include "lib/image-files.h"
#include "lib/test-store.h"

#define MEM_LEN (6 * (1UL << 20) + 100)	/* more than one request's 4 MiB */
#define THREADS 2
#define READS 500

static const char *sock_path;
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static void read_write(struct uffd_store *s)
{
	static char model[MEM_LEN], buf[MEM_LEN + PAGE];
	struct uffd_store *other;
	char page[PAGE];

	t_fill(model, MEM_LEN, 7);
	CHECK(!strcmp(s->kind, "socket"));
	CHECK(!s->ops->read_batch && !s->ops->write_batch);
	CHECK_EQ(s->ops->size(s->data), MEM_LEN);

	CHECK_EQ(s->ops->read(s->data, buf, 4 * PAGE, 0), 4 * PAGE);
	CHECK(!memcmp(buf, model, 4 * PAGE));
	CHECK_EQ(s->ops->read(s->data, buf, 333, 12345), 333);
	CHECK(!memcmp(buf, model + 12345, 333));
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, MEM_LEN - 100), 100);
	CHECK(!memcmp(buf, model + MEM_LEN - 100, 100));
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, MEM_LEN), 0);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, MEM_LEN + 5 * PAGE), 0);
	CHECK_EQ(s->ops->read(s->data, buf, 0, 0), 0);

	/* Writes, seen by another client of the same server. */
	t_fill(page, PAGE, 8);
	CHECK_EQ(s->ops->write(s->data, page, PAGE, 2 * PAGE), PAGE);
	memcpy(model + 2 * PAGE, page, PAGE);
	CHECK_EQ(s->ops->write(s->data, page, 100, MEM_LEN - 100), 100);
	memcpy(model + MEM_LEN - 100, page, 100);
	other = uffd_store_socket(sock_path);
	CHECK(other);
	CHECK_EQ(other->ops->read(other->data, buf, PAGE, 2 * PAGE), PAGE);
	CHECK(t_is_filled(buf, PAGE, 8));
	uffd_store_free(other);

	/* Past the end: refused whole. */
	memset(page, 0x55, PAGE);
	CHECK_EQ(s->ops->write(s->data, page, 20, MEM_LEN - 10), -EINVAL);
	CHECK_EQ(s->ops->write(s->data, page, 1, MEM_LEN), -EINVAL);
	CHECK_EQ(s->ops->write(s->data, page, PAGE, MEM_LEN + PAGE), -EINVAL);
	CHECK_EQ(s->ops->read(s->data, buf, 10, MEM_LEN - 10), 10);
	CHECK(!memcmp(buf, model + MEM_LEN - 10, 10));

	/* More than one request carries: all of it, both ways. */
	CHECK_EQ(s->ops->read(s->data, buf, sizeof(buf), 0), MEM_LEN);
	CHECK(!memcmp(buf, model, MEM_LEN));
	t_fill(model + 3, 5 * (1UL << 20), 9);
	CHECK_EQ(s->ops->write(s->data, model + 3, 5 * (1UL << 20), 3), 5 * (1UL << 20));
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(s->ops->read(s->data, buf, MEM_LEN, 0), MEM_LEN);
	CHECK(!memcmp(buf, model, MEM_LEN));

	CHECK_OK(s->ops->flush(s->data));
}

struct reader {
	pthread_t thread;
	struct uffd_store *s;
	const char *model;
	int id;
};

static void *reads(void *arg)
{
	struct reader *r = arg;
	unsigned x = r->id + 1;
	char buf[2 * PAGE];
	uint64_t off;
	size_t len;
	int i;

	for (i = 0; i < READS; i++) {
		x = x * 1103515245 + 12345;
		off = (x >> 8) % (MEM_LEN - sizeof(buf));
		len = 1 + (x >> 4) % sizeof(buf);
		CHECK_EQ(r->s->ops->read(r->s->data, buf, len, off), len);
		if (memcmp(buf, r->model + off, len))
			FAIL("thread %d: read %zu at %" PRIu64 ": wrong bytes", r->id, len, off);
	}
	return NULL;
}

static void two_threads(struct uffd_store *s)
{
	static char model[MEM_LEN];
	struct reader r[THREADS];
	int i;

	CHECK_EQ(s->ops->read(s->data, model, MEM_LEN, 0), MEM_LEN);
	for (i = 0; i < THREADS; i++) {
		r[i] = (struct reader){ .s = s, .model = model, .id = i };
		CHECK_OK(pthread_create(&r[i].thread, NULL, reads, &r[i]));
	}
	for (i = 0; i < THREADS; i++)
		CHECK_OK(pthread_join(r[i].thread, NULL));
}

/* The wire protocol, spoken by hand as man/uffd_store_file.3 gives it. */
struct hello { uint32_t magic; uint16_t version, flags; };
struct welcome { uint32_t magic; uint16_t version, flags; int32_t status;
		 uint32_t max_io; uint64_t size; };
struct request { uint32_t op, len; uint64_t off, tag; };
struct response { int32_t status; uint32_t len; uint64_t tag; };
#define MAGIC 0x50534655u

static int raw_connect(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	strcpy(addr.sun_path, sock_path);
	CHECK_OK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)));
	return fd;
}

static void wire_protocol(void)
{
	struct hello h = { .magic = MAGIC, .version = 1 };
	struct request req = { .op = 1, .len = 16, .off = 40, .tag = 77 };
	struct response resp;
	struct welcome w;
	char data[16], model[56];
	int fd;

	/* Version 1: welcome, then a READ. */
	fd = raw_connect();
	CHECK_EQ(send(fd, &h, sizeof(h), 0), sizeof(h));
	CHECK_EQ(recv(fd, &w, sizeof(w), MSG_WAITALL), sizeof(w));
	CHECK_EQ(w.magic, MAGIC);
	CHECK_EQ(w.version, 1);
	CHECK_EQ(w.status, 0);
	CHECK_EQ(w.max_io, 4u << 20);
	CHECK_EQ(w.size, MEM_LEN);
	CHECK_EQ(send(fd, &req, sizeof(req), 0), sizeof(req));
	CHECK_EQ(recv(fd, &resp, sizeof(resp), MSG_WAITALL), sizeof(resp));
	CHECK_EQ(resp.status, 0);
	CHECK_EQ(resp.len, 16);
	CHECK_EQ(resp.tag, 77);
	CHECK_EQ(recv(fd, data, sizeof(data), MSG_WAITALL), sizeof(data));
	t_fill(model, sizeof(model), 9);	/* read_write wrote pattern 9 at 3 */
	CHECK(!memcmp(data, model + 37, 16));

	/* An unknown op: -EOPNOTSUPP, then the server hangs up. */
	req = (struct request){ .op = 99, .tag = 78 };
	CHECK_EQ(send(fd, &req, sizeof(req), 0), sizeof(req));
	CHECK_EQ(recv(fd, &resp, sizeof(resp), MSG_WAITALL), sizeof(resp));
	CHECK_EQ(resp.status, -EOPNOTSUPP);
	CHECK_EQ(resp.tag, 78);
	CHECK_EQ(recv(fd, data, 1, 0), 0);
	CHECK_OK(close(fd));

	/* Another version: told which one the server speaks, then closed. */
	fd = raw_connect();
	h.version = 2;
	CHECK_EQ(send(fd, &h, sizeof(h), 0), sizeof(h));
	CHECK_EQ(recv(fd, &w, sizeof(w), MSG_WAITALL), sizeof(w));
	CHECK_EQ(w.magic, MAGIC);
	CHECK_EQ(w.version, 1);
	CHECK_EQ(w.status, -EPROTONOSUPPORT);
	CHECK_EQ(recv(fd, data, 1, 0), 0);
	CHECK_OK(close(fd));
}

/* A dead server: -EIO at once; a new one on the same path is found again. */
static pid_t server_dies(struct uffd_store *s, pid_t pid)
{
	char buf[PAGE];
	uint64_t t0;

	t_serve_kill(pid);
	t0 = now_ms();
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), -EIO);
	CHECK_EQ(s->ops->write(s->data, buf, PAGE, 0), -EIO);
	CHECK_EQ(s->ops->flush(s->data), -EIO);
	CHECK(now_ms() - t0 < 1000);
	errno = 0;
	CHECK(!uffd_store_socket(sock_path));
	CHECK_EQ(errno, ECONNREFUSED);

	pid = t_serve_start(sock_path, MEM_LEN, 7);		/* binds over the stale socket file */
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), PAGE);
	CHECK(t_is_filled(buf, PAGE, 7));	/* the new server's memory */
	return pid;
}

/* A hung server: -EIO after the 5 s receive timeout, no longer. */
static void server_hangs(struct uffd_store *s, pid_t pid)
{
	char buf[PAGE];
	uint64_t t0, took;
	int status;

	CHECK_OK(kill(pid, SIGSTOP));
	CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);	/* stopped now */
	CHECK(WIFSTOPPED(status));
	t0 = now_ms();
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), -EIO);
	took = now_ms() - t0;
	if (took < 4500 || took > 8000)
		FAIL("read of a stopped server failed after %" PRIu64 " ms", took);
	t_serve_kill(pid);
	t0 = now_ms();
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), -EIO);
	CHECK(now_ms() - t0 < 1000);
}

static void server_stops(void)
{
	struct uffd_store *s;
	pid_t pid = t_serve_start(sock_path, MEM_LEN, 7);
	char buf[PAGE];

	s = uffd_store_socket(sock_path);
	CHECK(s);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), PAGE);
	/* An idle client connection must not keep it from stopping. */
	CHECK_OK(kill(pid, SIGTERM));
	CHECK_EQ(t_wait_child(pid, 2000), 0);
	CHECK(access(sock_path, F_OK) && errno == ENOENT);
	CHECK_EQ(s->ops->read(s->data, buf, PAGE, 0), -EIO);
	uffd_store_free(s);
}

static void bad_input(void)
{
	char c;

	errno = 0;
	CHECK(!uffd_store_socket(NULL));
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(!uffd_store_socket(t_img_path(3, t_img_dir_path, "nobody-here")));
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(uffd_store_serve(sock_path, NULL, 10, NULL), -EINVAL);
	CHECK_EQ(uffd_store_serve(sock_path, &c, 0, NULL), -EINVAL);
	CHECK_EQ(uffd_store_serve(NULL, &c, 1, NULL), -EINVAL);
}

int main(void)
{
	const char *dir = t_img_dir();
	struct uffd_store *s;
	pid_t pid;

	sock_path = t_img_path(0, dir, "store.sock");
	bad_input();
	pid = t_serve_start(sock_path, MEM_LEN, 7);
	s = uffd_store_socket(sock_path);
	CHECK(s);
	read_write(s);
	two_threads(s);
	wire_protocol();
	pid = server_dies(s, pid);
	server_hangs(s, pid);
	uffd_store_free(s);
	server_stops();
	return T_EXIT_PASS;
}
