/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client cannot change the shared page cache that other clients'
 * memory comes from.  A hostile client reopens the cache's file read-write
 * (through /proc, which the kernel allows for a memfd): writing it,
 * punching a hole in it, truncating it and mapping it shared-writable
 * all fail with EPERM (the server's seals), and sealing it against the
 * server's own writes fails with EBUSY.  Then it maps the file privately
 * where no userfaultfd watches and reads every page - the kernel fills
 * each hole of the cache with a zero page - and writes some of its copy.
 * A second client then reads exactly the image everywhere (the server
 * continues only pages it put in the cache itself), and so does the
 * hostile one in its served region.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 256

static struct t_ps_image im;
static int h_done[2], b_done[2];

static int client_hostile(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach(&im, 0);
	char *mem = uffd_serve_client_addr(c, 0), path[128], page[PAGE], *p;
	volatile char sum = 0;
	size_t i;
	int fd;

	(void)arg;
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)(uintptr_t)mem, (unsigned long)(uintptr_t)mem + NPAGES * PAGE);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && (errno == EPERM || errno == EACCES)) {
		/* No CAP_SYS_ADMIN: the other client goes on, then we say so. */
		CHECK_EQ(write(h_done[1], "x", 1), 1);
		t_ps_hear(b_done[0], 20000);
		uffd_serve_detach(c, true);
		return 77;
	}
	CHECK(fd >= 0);
	memset(page, 0x66, sizeof(page));
	CHECK_EQ(pwrite(fd, page, PAGE, 0) < 0 ? -errno : 0, -EPERM);
	CHECK_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE) ? -errno : 0,
		 -EPERM);
	CHECK_EQ(ftruncate(fd, 0) ? -errno : 0, -EPERM);
	CHECK_EQ(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ?
		 -errno : 0, -EPERM);
	CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) ? -errno : 0, -EBUSY);
	/* A private mapping nobody serves: reading fills the cache's holes. */
	p = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED);
	for (i = 0; i < NPAGES; i++)
		sum += p[i * PAGE];
	(void)sum;
	for (i = 0; i < NPAGES; i += 3)
		p[i * PAGE] = 0x77;
	close(fd);
	CHECK_EQ(write(h_done[1], "x", 1), 1);
	t_ps_hear(b_done[0], 20000);
	t_ps_check("the hostile client's own memory", mem, 0, NPAGES, im.seed);
	munmap(p, NPAGES * PAGE);
	uffd_serve_detach(c, true);
	return 0;
}

static int client_b(void *arg)
{
	(void)arg;
	return t_ps_second_client(&im, h_done[0], b_done[1], "the other client");
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .shared_cache = true, .demand_only = true);
	struct uffd_serve_stats st;
	pid_t server, h, b;
	int ret;

	t_require(UFFD_FEAT_MINOR_SHMEM);
	t_ps_make_image(&im, NPAGES, 29);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(h_done));
	CHECK_OK(pipe(b_done));
	h = t_ps_spawn(client_hostile, NULL);
	b = t_ps_spawn(client_b, NULL);
	ret = t_ps_join(h, 30000);
	CHECK_EQ(t_ps_join(b, 30000), 0);
	t_ps_server_stop(server, &st);
	if (ret == 77) {
		fprintf(stderr, "SKIP: reopening the cache through /proc/self/map_files needs "
			"CAP_SYS_ADMIN\n");
		return 77;
	}
	CHECK_EQ(ret, 0);
	CHECK_EQ(st.accepted, 2);
	CHECK_EQ(st.errors, 0);
	return 0;
}
