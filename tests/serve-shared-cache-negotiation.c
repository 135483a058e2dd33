/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who gets the shared page cache, spoken frame by frame by this test:
 *  - a version 1 client (HELLO 1..1) of a server with a shared cache gets
 *    a version 1 LAYOUT without the SHARED flag and no fd, and a map of
 *    anonymous memory from it is accepted and served;
 *  - a version 2 client gets LAYOUT with SHARED and one fd attached: the
 *    cache, opened read-only, sealed against writes, shrinking and
 *    growing;
 *  - a MAP that says SHARED to a server without a cache is refused with
 *    EINVAL, and so is one with a MAP flag nobody defined.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "serve/proto.h"
#include "util/sock.h"

#define NPAGES 64

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static struct t_ps_image im;

/* The next frame (within 3 s) into buf, and the fd that came with it. */
static void read_frame(int fd, uint8_t *buf, size_t cap, struct serve_frame *f, int *got_fd)
{
	size_t len = 0;
	int ret, rfd;

	*got_fd = -1;
	for (;;) {
		ret = uffd__serve_frame_parse(buf, len, f);
		CHECK(ret >= 0);
		if (ret > 0)
			return;
		CHECK(len < cap);
		ret = uffd__recv_with_fd(fd, buf + len, cap - len, &rfd, uffd__deadline_ms(3000));
		if (rfd >= 0) {
			CHECK_EQ(*got_fd, -1);
			*got_fd = rfd;
		}
		if (ret <= 0)
			FAIL("the server closed without a frame (%d)", ret);
		len += ret;
	}
}

static int session(uint32_t max_version, struct serve_layout *l, int *cache_fd)
{
	static uint8_t buf[SERVE_HDR + SERVE_MAX_PAYLOAD];
	struct serve_hello h = { 1, max_version, 4096 };
	uint8_t p[SERVE_HELLO_SIZE];
	struct serve_mapping ext[4];
	struct serve_frame f;
	int fd = t_ps_connect(&im);

	uffd__serve_hello_put(p, &h);
	t_ps_send_frame(fd, SF_HELLO, p, sizeof(p), -1);
	read_frame(fd, buf, sizeof(buf), &f, cache_fd);
	CHECK_EQ(f.type, SF_LAYOUT);
	CHECK_OK(uffd__serve_layout_get(&f, l, ext, 4));
	return fd;
}

/* MAP (with these flags) of anonymous memory at the image's address. */
static int map_and_answer(int fd, uint32_t flags)
{
	static uint8_t buf[SERVE_HDR + SERVE_MAX_PAYLOAD];
	struct serve_mapping m = { T_PS_ADDR, NPAGES * PAGE, 0, 4096 };
	uint8_t payload[8 + SERVE_MAPPING_SIZE];
	struct serve_answer a;
	struct serve_frame f;
	struct uffd u;
	void *mem;
	int got;

	mem = mmap((void *)(uintptr_t)T_PS_ADDR, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(mem == (void *)(uintptr_t)T_PS_ADDR);
	CHECK_OK(uffd_open(&u, UFFD_F(UFFD_FEAT_EVENT_REMOVE) | UFFD_F(UFFD_FEAT_EVENT_REMAP) |
			   UFFD_F(UFFD_FEAT_EVENT_UNMAP), 0, UFFD_NONBLOCK));
	CHECK_OK(uffd_register(&u, mem, NPAGES * PAGE, UFFD_REG_MISSING, NULL));
	uffd__serve_map_put(payload, &m, 1, flags);
	t_ps_send_frame(fd, SF_MAP, payload, sizeof(payload), u.fd);
	read_frame(fd, buf, sizeof(buf), &f, &got);
	CHECK_EQ(f.type, SF_ANSWER);
	CHECK_OK(uffd__serve_answer_get(&f, &a));
	if (!a.status)
		t_ps_check("a version 1 client", mem, 0, NPAGES, im.seed);
	close(fd);
	uffd_close(&u);
	munmap(mem, NPAGES * PAGE);
	return a.status;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .shared_cache = true, .demand_only = true);
	struct uffd_serve_stats st;
	struct serve_layout l;
	pid_t server;
	int fd, cache;

	t_ps_make_image(&im, NPAGES, 37);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);

	fd = session(1, &l, &cache);
	CHECK_EQ(l.version, 1);
	CHECK_EQ(l.flags & SERVE_LAYOUT_SHARED, 0);
	CHECK_EQ(cache, -1);
	CHECK_EQ(map_and_answer(fd, 0), 0);

	fd = session(2, &l, &cache);
	CHECK_EQ(l.version, 2);
	CHECK_EQ(l.flags & SERVE_LAYOUT_SHARED, SERVE_LAYOUT_SHARED);
	CHECK(cache >= 0);
	CHECK_EQ(fcntl(cache, F_GETFL) & O_ACCMODE, O_RDONLY);
	CHECK_EQ(fcntl(cache, F_GET_SEALS) & (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW),
		 F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
	CHECK_EQ(lseek(cache, 0, SEEK_END), (off_t)(NPAGES * PAGE));
	close(cache);
	CHECK_EQ(map_and_answer(fd, 1u << 5), -EBADMSG);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 1);

	so.shared_cache = false;
	server = t_ps_server_start(&so);
	fd = session(2, &l, &cache);
	CHECK_EQ(l.flags & SERVE_LAYOUT_SHARED, 0);
	CHECK_EQ(cache, -1);
	CHECK_EQ(map_and_answer(fd, SERVE_MAP_SHARED), -EINVAL);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 0);
	return 0;
}
