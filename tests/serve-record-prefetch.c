/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Working sets: a server started with record writes the pages its first
 * client touched, in the order it touched them, next to the image when
 * that client goes; a server started with prefetch installs exactly those
 * pages into each new client before it touches them (no fault for any of
 * them), then fills the rest, and the memory is exactly the image's.  A
 * working set recorded from another image is refused (ESTALE), and one
 * whose index is damaged too (EBADMSG); a page whose data is damaged is
 * left out of the prefetch and served from the image instead.
 */
#include <fcntl.h>
#include <unistd.h>

#include "lib/image-files.h"
#include "lib/pserve.h"
#include "serve/wset.h"

#define NPAGES 256
#define WS 40

static struct t_ps_image im;
static char ws_path[600];

static size_t ws_page(size_t i)
{
	return (i * 53 + 11) % NPAGES;
}

static int recorder(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0);
	size_t i;

	(void)arg;
	for (i = 0; i < WS; i++)
		t_ps_check("recorded touch", mem + ws_page(i) * PAGE, ws_page(i), 1, im.seed);
	uffd_serve_detach(c, true);
	return 0;
}

/* expect: pages of the set that arrive by prefetch (the rest fault). */
static int prefetched(void *arg)
{
	uint64_t expect = (uintptr_t)arg;
	struct uffd_serve_client_stats st;
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0);
	size_t i;
	int n;

	for (n = 0; n < 5000; n++) {
		CHECK_OK(uffd_serve_client_stats(c, &st));
		if (st.prefetched == expect)
			break;
		t_sleep_ms(1);
	}
	CHECK_EQ(st.prefetched, expect);
	CHECK_EQ(st.faults, 0);
	for (i = 0; i < WS; i++)
		t_ps_check("prefetched page", mem + ws_page(i) * PAGE, ws_page(i), 1, im.seed);
	/* A page left out of the prefetch is faulted in, or filled first. */
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.faults <= WS - expect);
	CHECK_OK(uffd_serve_client_wait(c, 10000));
	t_ps_check("all", mem, 0, NPAGES, im.seed);
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK_EQ(st.prefetched + st.faults + st.filled, NPAGES);
	uffd_serve_detach(c, true);
	return 0;
}

static void copy_file(const char *from, const char *to)
{
	uint64_t size;
	uint8_t *buf = t_read_file(from, &size);

	t_write_file(to, buf, size);
	free(buf);
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .record = true);
	uint8_t hdr[WS_HDR], *index;
	struct uffd_serve_stats st;
	struct ws_header h;
	uint64_t pages[WS], size;
	uint32_t crcs[WS];
	struct uffd_serve *s;
	struct t_ps_image other;
	char other_ws[600];
	size_t i;
	pid_t server;
	int fd;

	t_ps_make_image(&im, NPAGES, 21);
	snprintf(ws_path, sizeof(ws_path), "%s.ws", im.path);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_EQ(t_ps_join(t_ps_spawn(recorder, NULL), 10000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.recorded, WS);

	/* The file: WS pages, in the order they were touched. */
	fd = open(ws_path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK_EQ(pread(fd, hdr, WS_HDR, 0), WS_HDR);
	CHECK_OK(uffd__ws_parse_header(hdr, WS_HDR, &h));
	CHECK_EQ(h.count, WS);
	CHECK_EQ(h.source_size, NPAGES * PAGE);
	index = malloc(uffd__ws_index_size(WS));
	CHECK_EQ(pread(fd, index, uffd__ws_index_size(WS), WS_HDR),
		 (ssize_t)uffd__ws_index_size(WS));
	CHECK_OK(uffd__ws_parse_index(index, uffd__ws_index_size(WS), &h, pages, crcs));
	for (i = 0; i < WS; i++)
		CHECK_EQ(pages[i], ws_page(i));
	free(index);
	close(fd);

	so.record = false;
	so.prefetch = true;
	server = t_ps_server_start(&so);
	CHECK_EQ(t_ps_join(t_ps_spawn(prefetched, (void *)(uintptr_t)WS), 10000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.ws_pages, WS);
	CHECK_EQ(st.prefetched, WS);
	CHECK_EQ(st.faults, 0);

	/* The page recorded fifth, damaged: served on demand instead. */
	size = t_file_size(ws_path);
	t_flip_byte(ws_path, uffd__ws_data_offset(WS) + 4 * PAGE + 100, 0x40);
	server = t_ps_server_start(&so);
	CHECK_EQ(t_ps_join(t_ps_spawn(prefetched, (void *)(uintptr_t)(WS - 1)), 10000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.prefetched, WS - 1);
	CHECK_EQ(size, uffd__ws_data_offset(WS) + WS * PAGE);

	/* Another image's working set: refused, never served. */
	t_ps_make_image(&other, NPAGES, 21);
	snprintf(other_ws, sizeof(other_ws), "%s.ws", other.path);
	copy_file(ws_path, other_ws);
	so.socket_path = other.sock;
	so.image = other.path;
	s = uffd_serve_new(&so);
	CHECK(!s);
	CHECK_EQ(errno, ESTALE);
	/* A damaged index. */
	so.socket_path = im.sock;
	so.image = im.path;
	t_flip_byte(ws_path, WS_HDR + 8 * 3, 0x01);
	s = uffd_serve_new(&so);
	CHECK(!s);
	CHECK_EQ(errno, EBADMSG);
	unlink(other_ws);
	return 0;
}
