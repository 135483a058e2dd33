/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libuffd's handshake, spoken frame by frame by this test: a hello is
 * answered with the layout (one region at the image's address, the
 * source's size and absolute path), and every hostile map is refused on
 * its own connection with the exact errno and a reason - overlapping,
 * unaligned, too large, another page size, not this process's memory, no
 * fd, an fd that is not a userfaultfd, a userfaultfd without UFFDIO_API,
 * memory registered on another userfaultfd (the region that is, named),
 * no regions, garbage, an unknown protocol version, a frame cut short -
 * while the server goes on: a good map is accepted after all of them, and
 * a client restores exactly.  A server that can not make the handler a
 * client's engine serves with (its allocations refused, the library's
 * internal uffd__fail_alloc_after hook) refuses it with that errno, and
 * names no region: none is at fault.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "serve/proto.h"
#include "util/failalloc.h"
#include "util/sock.h"

#define NPAGES 64

static struct t_ps_image im;

/* The next frame (within 3 s) into buf, described by f. */
static void read_frame(int fd, uint8_t *buf, size_t cap, struct serve_frame *f)
{
	size_t len = 0;
	int ret;

	for (;;) {
		ret = uffd__serve_frame_parse(buf, len, f);
		CHECK(ret >= 0);
		if (ret > 0)
			return;
		CHECK(len < cap);
		CHECK_EQ(uffd__wait_readable(fd, -1, uffd__deadline_ms(3000)), 1);
		ret = recv(fd, buf + len, cap - len, 0);
		if (ret <= 0)
			FAIL("the server closed without a frame (%d)", ret);
		len += ret;
	}
}

static void hello(int fd, uint32_t min, uint32_t max)
{
	struct serve_hello h = { min, max, 4096 };
	uint8_t p[SERVE_HELLO_SIZE];

	uffd__serve_hello_put(p, &h);
	t_ps_send_frame(fd, SF_HELLO, p, sizeof(p), -1);
}

static void expect_answer(int fd, int status, const char *reason_part)
{
	static uint8_t buf[SERVE_HDR + SERVE_MAX_PAYLOAD];
	struct serve_answer a;
	struct serve_frame f;

	read_frame(fd, buf, sizeof(buf), &f);
	CHECK_EQ(f.type, SF_ANSWER);
	CHECK_OK(uffd__serve_answer_get(&f, &a));
	if (a.status != status || !strstr(a.reason, reason_part))
		FAIL("answer %d (%s) \"%s\", want %d (%s) with \"%s\"", a.status,
		     t_errname(a.status), a.reason, status, t_errname(status), reason_part);
}

/* Hello, and the layout it brings: checked. */
static int open_session(void)
{
	static uint8_t buf[SERVE_HDR + SERVE_MAX_PAYLOAD];
	struct serve_mapping ext[4];
	struct serve_layout l;
	struct serve_frame f;
	char real[PATH_MAX];
	int fd = t_ps_connect(&im);

	hello(fd, 1, 1);
	read_frame(fd, buf, sizeof(buf), &f);
	CHECK_EQ(f.type, SF_LAYOUT);
	CHECK_OK(uffd__serve_layout_get(&f, &l, ext, 4));
	CHECK_EQ(l.version, 1);
	CHECK_EQ(l.nextents, 1);
	CHECK_EQ(l.flags, 0);
	CHECK_EQ(l.source_size, NPAGES * PAGE);
	CHECK_EQ(ext[0].addr, T_PS_ADDR);
	CHECK_EQ(ext[0].len, NPAGES * PAGE);
	CHECK_EQ(ext[0].offset, 0);
	CHECK_EQ(ext[0].page_size, 4096);
	CHECK(realpath(im.path, real));
	CHECK(!strcmp(l.path, real));
	return fd;
}

static void send_map(int fd, const struct serve_mapping *m, uint32_t n, int pass_fd)
{
	uint8_t *p = malloc(uffd__serve_map_size(n));

	CHECK(p);
	uffd__serve_map_put(p, m, n, 0);
	t_ps_send_frame(fd, SF_MAP, p, uffd__serve_map_size(n), pass_fd);
	free(p);
}

/* A whole session with this map: refused as expected. */
static void map_refused(const struct serve_mapping *m, uint32_t n, int pass_fd, int status,
			const char *why)
{
	int fd = open_session();

	send_map(fd, m, n, pass_fd);
	expect_answer(fd, status, why);
	close(fd);
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .image = im.path, .handshake_ms = 700);
	struct serve_mapping m[2];
	struct uffd u, other;
	struct uffd_serve_stats st;
	uint8_t half[SERVE_HDR];
	char *mem, *hole, *free_mem, busy_why[SERVE_REASON_MAX];
	int fd, efd, raw, refusals = 0;
	pid_t server;

	t_ps_make_image(&im, NPAGES, 3);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	t_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	t_open(&other, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	/* mem, and right after it a range that is certainly not mapped
	 * (nothing here maps memory from now on). */
	free_mem = t_map_anon(8 * PAGE);	/* registered nowhere */
	mem = t_map_anon(2 * NPAGES * PAGE);
	hole = mem + NPAGES * PAGE;
	CHECK_OK(munmap(hole, NPAGES * PAGE));
	CHECK_OK(uffd_register(&u, mem, NPAGES * PAGE, UFFD_REG_MISSING, NULL));

	/* Garbage instead of a hello. */
	fd = t_ps_connect(&im);
	CHECK_EQ(send(fd, "GARBAGE-GARBAGE-GARBAGE", 23, 0), 23);
	expect_answer(fd, -EBADMSG, "hello");
	close(fd), refusals++;
	/* Versions this server does not speak. */
	fd = t_ps_connect(&im);
	hello(fd, 3, 4);
	expect_answer(fd, -EPROTONOSUPPORT, "this server speaks 1..2");
	close(fd), refusals++;
	/* A frame cut short: refused when the handshake's deadline passes. */
	fd = t_ps_connect(&im);
	uffd__serve_frame_put(half, SF_HELLO, NULL, 0);
	CHECK_EQ(send(fd, half, 10, 0), 10);
	expect_answer(fd, -ETIMEDOUT, "hello");
	close(fd), refusals++;

#define MAP(a, l, o) (struct serve_mapping){ (uintptr_t)(a), (l), (o), 4096 }
	m[0] = MAP(mem, 32 * PAGE, 0);
	m[1] = MAP(mem + 16 * PAGE, 32 * PAGE, 32 * PAGE);
	map_refused(m, 2, u.fd, -EINVAL, "overlap"), refusals++;
	m[0] = MAP(mem + 1, 8 * PAGE, 0);
	map_refused(m, 1, u.fd, -EINVAL, "not page-aligned"), refusals++;
	m[0] = MAP(mem, 8 * PAGE, 100);
	map_refused(m, 1, u.fd, -EINVAL, "not page-aligned"), refusals++;
	m[0] = MAP(mem, 0, 0);
	map_refused(m, 1, u.fd, -EINVAL, "empty"), refusals++;
	m[0] = MAP(mem, 8 * PAGE, NPAGES * PAGE - 4 * PAGE);
	map_refused(m, 1, u.fd, -ERANGE, "beyond the source"), refusals++;
	m[0] = MAP(mem, 1ull << 62, 0);
	map_refused(m, 1, u.fd, -ERANGE, "beyond the address space"), refusals++;
	m[0] = MAP(mem, (uint64_t)-4096, 0);
	map_refused(m, 1, u.fd, -ERANGE, "beyond"), refusals++;
	m[0] = MAP(mem, 2 << 20, 0);
	m[0].page_size = 2 << 20;
	map_refused(m, 1, u.fd, -EOPNOTSUPP, "page size 2097152"), refusals++;
	m[0] = MAP(hole, 8 * PAGE, 0);
	map_refused(m, 1, u.fd, -EFAULT, "not mapped in process"), refusals++;
	m[0] = MAP(mem + (NPAGES - 4) * PAGE, 8 * PAGE, 0);	/* runs past mem */
	map_refused(m, 1, u.fd, -EFAULT, "not mapped in process"), refusals++;
	m[0] = MAP(mem, 8 * PAGE, 0);
	map_refused(m, 1, -1, -EBADF, "no userfaultfd"), refusals++;
	efd = eventfd(0, EFD_CLOEXEC);
	map_refused(m, 1, efd, -EBADF, "not a userfaultfd"), refusals++;
	close(efd);
	raw = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (raw >= 0) {
		map_refused(m, 1, raw, -EINVAL, "UFFDIO_API"), refusals++;
		close(raw);
	}
	/* mem is registered on u: another userfaultfd cannot have it, and
	 * the region named is that one (the second), not the first. */
	m[0] = MAP(free_mem, 8 * PAGE, 0);
	m[1] = MAP(mem, 8 * PAGE, 8 * PAGE);
	snprintf(busy_why, sizeof(busy_why),
		 "region at 0x%llx cannot be registered on the userfaultfd",
		 (unsigned long long)(uintptr_t)mem);
	map_refused(m, 2, other.fd, -EBUSY, busy_why), refusals++;
	uffd_close(&other);
	m[0] = MAP(mem, 8 * PAGE, 0);
	fd = open_session();
	send_map(fd, m, 0, u.fd);
	expect_answer(fd, -E2BIG, "no regions");
	close(fd), refusals++;

	/* After all that, a good map of two regions is accepted... */
	m[0] = MAP(mem, 32 * PAGE, 32 * PAGE);
	m[1] = MAP(mem + 32 * PAGE, 32 * PAGE, 0);
	fd = open_session();
	send_map(fd, m, 2, u.fd);
	expect_answer(fd, 0, "");
	/* ... and served: the two halves swapped, exactly. */
	t_ps_check("first half", mem, 32, 32, im.seed);
	t_ps_check("second half", mem + 32 * PAGE, 0, 32, im.seed);
	close(fd);

	t_ps_server_stop(server, &st);
	CHECK_EQ(st.refused, refusals);
	CHECK_EQ(st.accepted, 1);
	CHECK_EQ(st.errors, 0);

	/* A server child born with no allocation to make through the hook:
	 * the first is the handler of the next client's engine. */
	uffd__fail_alloc_after(0);
	server = t_ps_server_start(&so);
	uffd__fail_alloc_after(-1);
	m[0] = MAP(mem, 32 * PAGE, 0);
	map_refused(m, 1, u.fd, -ENOMEM, "its userfaultfd cannot be served here");
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.refused, 1);
	CHECK_EQ(st.accepted, 0);
	return 0;
}
