// SPDX-License-Identifier: LGPL-2.1-or-later
/* A relay that injects faults into a migration's connection: see relay.h. */
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "migrate/wire.h"
#include "relay.h"
#include "util/sock.h"

#define RELAY_BUF (8u << 20)

void t_relay_cut(struct t_relay *r)
{
	if (__atomic_exchange_n(&r->cut, 1, __ATOMIC_ACQ_REL))
		return;
	shutdown(r->src_fd, SHUT_RDWR);
	shutdown(r->dst_fd, SHUT_RDWR);
}

/* One whole message from the source (header, then its length). */
static int read_message(struct t_relay *r, uint8_t *buf, uint32_t *len)
{
	int ret = uffd__recv_all(r->src_fd, buf, MIG_HDR_SIZE, uffd__deadline_ms(10000));

	if (ret)
		return ret;
	*len = MIG_HDR_SIZE + get_le32(buf + 8);
	if (*len > RELAY_BUF)
		return -EPROTO;
	return uffd__recv_all(r->src_fd, buf + MIG_HDR_SIZE, *len - MIG_HDR_SIZE,
			      uffd__deadline_ms(10000));
}

static void maybe_corrupt(struct t_relay *r, uint8_t *buf, uint32_t len)
{
	uint32_t count = buf[6] | buf[7] << 8, data = MIG_HDR_SIZE + MIG_PAGE_ENTRY * count;

	if (buf[4] != MIG_PAGES || len <= data)
		return;
	if (++r->pages_seen == r->corrupt_pages)
		buf[data] ^= 0x5a;
}

static void *relay_main(void *arg)
{
	struct t_relay *r = arg;
	uint8_t *buf = malloc(RELAY_BUF), back[65536];
	uint32_t len;

	CHECK(buf);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) && !__atomic_load_n(&r->cut, __ATOMIC_ACQUIRE)) {
		struct pollfd p[2] = { { .fd = r->src_fd, .events = POLLIN },
				       { .fd = r->dst_fd, .events = POLLIN } };
		ssize_t n;

		if (__atomic_load_n(&r->hold, __ATOMIC_ACQUIRE))
			p[0].fd = -1;
		if (poll(p, 2, 10) <= 0)
			continue;
		if (p[0].revents) {
			if (read_message(r, buf, &len)) {
				t_relay_cut(r);
				break;
			}
			maybe_corrupt(r, buf, len);
			if (r->cut_after && __atomic_load_n(&r->forwarded, __ATOMIC_RELAXED) + len >
					    r->cut_after) {
				t_relay_cut(r);
				break;
			}
			if (uffd__send_all(r->dst_fd, buf, len, uffd__deadline_ms(10000))) {
				t_relay_cut(r);
				break;
			}
			__atomic_fetch_add(&r->forwarded, len, __ATOMIC_RELAXED);
			if (r->hold_after && buf[4] == r->hold_after)
				__atomic_store_n(&r->hold, 1, __ATOMIC_RELEASE);
		}
		if (p[1].revents) {
			n = recv(r->dst_fd, back, sizeof(back), MSG_DONTWAIT);
			if (n <= 0 || uffd__send_all(r->src_fd, back, n, uffd__deadline_ms(10000))) {
				t_relay_cut(r);
				break;
			}
		}
	}
	free(buf);
	return NULL;
}

void t_relay_start(struct t_relay *r, int src_fd, int dst_fd)
{
	r->src_fd = src_fd;
	r->dst_fd = dst_fd;
	CHECK_OK(pthread_create(&r->thread, NULL, relay_main, r));
}

void t_relay_stop(struct t_relay *r)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	pthread_join(r->thread, NULL);
	close(r->src_fd);
	close(r->dst_fd);
}
