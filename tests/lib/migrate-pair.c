// SPDX-License-Identifier: LGPL-2.1-or-later
/* Migrations in tests: see migrate-pair.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "migrate-pair.h"

void t_tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(l >= 0);
	CHECK_OK(bind(l, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(l, 1));
	CHECK_OK(getsockname(l, (struct sockaddr *)&sa, &sl));
	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(*a >= 0);
	CHECK_OK(connect(*a, (struct sockaddr *)&sa, sizeof(sa)));
	*b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(*b >= 0);
	close(l);
}

void t_mig_connect(struct t_mig *m, struct t_relay *relay, int fd[2])
{
	int a, b;

	(void)m;
	t_tcp_pair(&fd[0], &a);
	if (!relay) {
		fd[1] = a;
		return;
	}
	t_tcp_pair(&b, &fd[1]);
	t_relay_start(relay, a, b);
}

static void src_pause(void *arg)
{
	struct t_mig *m = arg;

	if (!m->no_writers)
		uffd_checker_pause(m->src_c);
	uffd_checker_mark_instant(m->src_c);
}

static void src_resume(void *arg)
{
	struct t_mig *m = arg;

	if (!m->no_writers)
		uffd_checker_resume(m->src_c);
}

static int src_save(void *arg, void *blob, size_t cap)
{
	struct t_mig *m = arg;

	return uffd_checker_export(m->src_c, blob, cap);
}

static void dst_resume(void *arg, const void *blob, size_t len)
{
	struct t_mig *m = arg;

	m->dst_c = uffd_checker_adopt(m->dst_area, uffd_checker_len(m->src_c), blob, len);
	if (m->dst_c && !m->no_writers && !m->dst_idle)
		uffd_checker_start(m->dst_c);
	if (m->on_resume)
		m->on_resume(m);
	__atomic_store_n(&m->resumed, 1, __ATOMIC_RELEASE);
}

void t_mig_start(struct t_mig *m)
{
	size_t len;

	m->dst_fd = -1;
	m->sfd[0] = m->sfd[1] = m->ufd[0] = m->ufd[1] = -1;
	m->src_c = uffd_checker_new(&m->co);
	CHECK(m->src_c);
	len = uffd_checker_len(m->src_c);
	m->src_reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(m->src_c), len, 4096,
						 UFFD_IMAGE_ANON };
	m->dst_area = m->shmem ? t_map_memfd(len, &m->dst_fd) : t_map_anon(len);
	m->dst_reg = (struct uffd_image_region){ (uintptr_t)m->dst_area, len, 4096,
						 m->shmem ? UFFD_IMAGE_SHMEM : UFFD_IMAGE_ANON };
	t_mig_connect(m, m->stream_relay, m->sfd);
	if (!m->one_channel)
		t_mig_connect(m, m->urgent_relay, m->ufd);
	if (!m->no_writers)
		CHECK_OK(uffd_checker_start(m->src_c));

	UFFD_OPTS(uffd_mig_dest_opts, dop, .regions = &m->dst_reg, .nregions = 1,
		  .fds = m->shmem ? &m->dst_fd : NULL, .stream_fd = m->sfd[1],
		  .urgent_fd = m->ufd[1], .one_channel = m->one_channel,
		  .resume = dst_resume, .arg = m, .timeout_ms = 5000);
	m->dst = uffd_mig_dest_start(&dop);
	if (!m->dst)
		FAIL("uffd_mig_dest_start: %s", strerror(errno));
	UFFD_OPTS(uffd_mig_source_opts, sop, .regions = &m->src_reg, .nregions = 1,
		  .stream_fd = m->sfd[0], .urgent_fd = m->ufd[0], .one_channel = m->one_channel,
		  .mode = m->mode, .max_rounds = m->max_rounds, .pause = src_pause,
		  .resume = src_resume, .save = src_save, .arg = m, .timeout_ms = 5000);
	m->src = uffd_mig_source_start(&sop);
	if (!m->src)
		FAIL("uffd_mig_source_start: %s", strerror(errno));
}

int t_mig_wait(struct t_mig *m, int ms)
{
	int rs = uffd_mig_source_wait(m->src, ms), rd = uffd_mig_dest_wait(m->dst, ms);

	return rs ? rs : rd;
}

void t_mig_stats(struct t_mig *m, struct uffd_mig_stats *src, struct uffd_mig_stats *dst)
{
	CHECK_OK(uffd_mig_source_stats(m->src, src));
	CHECK_OK(uffd_mig_dest_stats(m->dst, dst));
}

void t_mig_verify(struct t_mig *m)
{
	size_t npages = uffd_checker_len(m->src_c) / 4096;
	uint64_t *v = calloc(npages, sizeof(*v));
	char msg[256] = "";
	int ret;

	CHECK(v);
	CHECK(m->dst_c);
	if (!m->no_writers && !m->dst_idle)
		uffd_checker_pause(m->dst_c);
	CHECK_OK(uffd_checker_instant_versions(m->src_c, v, npages));
	ret = uffd_checker_adopt_versions(m->dst_c, v, npages, msg, sizeof(msg));
	if (ret)
		FAIL("the destination's table is not the source's at the instant: %s", msg);
	/* And it is a whole checker now: the table as it is, right now. */
	uffd_checker_mark_instant(m->dst_c);
	ret = uffd_checker_verify_memory(m->dst_c, m->dst_area, msg, sizeof(msg));
	if (ret)
		FAIL("the adopted table is not its own present: %s", msg);
	free(v);
}

void t_mig_free(struct t_mig *m)
{
	size_t len = m->src_c ? uffd_checker_len(m->src_c) : 0;
	int i;

	uffd_checker_free(m->dst_c);
	if (m->stream_relay)
		t_relay_stop(m->stream_relay);
	if (m->urgent_relay)
		t_relay_stop(m->urgent_relay);
	uffd_mig_source_free(m->src);
	uffd_mig_dest_free(m->dst);
	uffd_checker_free(m->src_c);
	if (m->dst_area)
		munmap(m->dst_area, len);
	if (m->dst_fd >= 0)
		close(m->dst_fd);
	for (i = 0; i < 2; i++) {
		if (m->sfd[i] >= 0)
			close(m->sfd[i]);
		if (m->ufd[i] >= 0)
			close(m->ufd[i]);
	}
}
