/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What both sides of a migration share (see mig.h): the layout, message
 * I/O over the caller's sockets with every byte counted, the handle's
 * status, and the request-latency histogram.
 *
 * A message is received in two steps: its 16-byte header, checked against
 * the stated maximum of its type (wire.c), and only then its payload, so
 * a peer's garbage never makes us wait for, or allocate, more than the
 * layout allows.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mig.h"
#include "util/clock.h"
#include "util/slice.h"
#include "util/sock.h"

static bool power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

int mig_layout_init(const struct uffd_image_region *in, int n, struct mig_region **regions,
		    struct mig_layout_region **lregions, struct mig_layout *lay)
{
	struct mig_region *r;
	struct mig_layout_region *lr;
	uint64_t total = 0;
	int i, j;

	if (!in || n < 1 || n > MIG_MAX_REGIONS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		const struct uffd_image_region *a = &in[i];

		if (!power_of_two(a->page_size) || a->page_size < MIG_MIN_PAGE_SIZE ||
		    a->page_size > MIG_MAX_PAGE_SIZE || !a->len || (a->addr | a->len) % a->page_size ||
		    a->addr + a->len < a->addr)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (a->addr < in[j].addr + in[j].len && in[j].addr < a->addr + a->len)
				return -EINVAL;
		total += a->len / a->page_size;
		if (total > MIG_MAX_PAGES)
			return -EINVAL;
	}
	r = calloc(n, sizeof(*r));
	lr = calloc(n, sizeof(*lr));
	if (!r || !lr) {
		free(r);
		free(lr);
		return -ENOMEM;
	}
	total = 0;
	for (i = 0; i < n; i++) {
		r[i] = (struct mig_region){ .addr = in[i].addr, .len = in[i].len,
					    .page_size = in[i].page_size,
					    .npages = in[i].len / in[i].page_size, .first = total };
		lr[i] = (struct mig_layout_region){ .npages = r[i].npages,
						    .page_size = r[i].page_size, .first = total };
		total += r[i].npages;
	}
	*regions = r;
	*lregions = lr;
	*lay = (struct mig_layout){ .nregions = n, .r = lr, .total_pages = total };
	return 0;
}

/* ---- connections ------------------------------------------------------ */

void mig_conn_init(struct mig_conn *c, int fd, uint64_t *bytes_out, uint64_t *bytes_in)
{
	c->fd = fd;
	pthread_mutex_init(&c->send_lock, NULL);
	c->bytes_out = bytes_out;
	c->bytes_in = bytes_in;
}

void mig_conn_set_fd(struct mig_conn *c, int fd)
{
	pthread_mutex_lock(&c->send_lock);
	__atomic_store_n(&c->fd, fd, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&c->send_lock);
}

void mig_conn_shutdown(struct mig_conn *c, int how)
{
	int fd = mig_conn_fd(c);

	if (fd >= 0)
		shutdown(fd, how);
}

void mig_conn_destroy(struct mig_conn *c)
{
	pthread_mutex_destroy(&c->send_lock);
}

int mig_sendv(struct mig_conn *c, enum mig_type type, uint16_t count, struct iovec *iov,
	      int iovcnt, uint64_t deadline)
{
	uint8_t hdr[MIG_HDR_SIZE];
	uint64_t len = 0;
	int i, ret;

	for (i = 1; i < iovcnt; i++)
		len += iov[i].iov_len;
	mig_put_hdr(hdr, type, 0, count, (uint32_t)len);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	pthread_mutex_lock(&c->send_lock);
	ret = c->fd < 0 ? -ENOTCONN : uffd__sendv_all(c->fd, iov, iovcnt, deadline);	/* locked */
	pthread_mutex_unlock(&c->send_lock);
	if (!ret)
		__atomic_fetch_add(c->bytes_out, len + sizeof(hdr), __ATOMIC_RELAXED);
	return ret;
}

int mig_send(struct mig_conn *c, enum mig_type type, uint16_t count, const void *payload,
	     uint32_t len, uint64_t deadline)
{
	struct iovec iov[2] = { { 0 }, { (void *)payload, len } };

	return mig_sendv(c, type, count, iov, len ? 2 : 1, deadline);
}

void mig_send_error(struct mig_conn *c, int err, uint32_t flags, const char *text)
{
	uint8_t buf[MIG_ERROR_BASE + MIG_MAX_TEXT];
	size_t n = 0;

	for (; text && text[n] && n < MIG_MAX_TEXT; n++)
		buf[MIG_ERROR_BASE + n] = (unsigned char)text[n] >= 0x20 &&
					  (unsigned char)text[n] < 0x7f ? text[n] : '?';
	put_le32(buf, err < 0 && err > -4096 ? (uint32_t)-err : EIO);
	put_le32(buf + 4, flags);
	put_le32(buf + 8, (uint32_t)n);
	mig_send(c, MIG_ERROR, 0, buf, MIG_ERROR_BASE + n, uffd__deadline_ms(100));
}

int mig_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, 0);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	/* POLLERR or POLLHUP: a receive says what (data queued before a
	 * reset is still there to be read). */
	return n > 0;
}

int mig_recv(struct mig_conn *c, const struct mig_layout *lay, void *buf, size_t cap,
	     struct mig_msg *m, int *bad, uint64_t deadline, int wake_fd)
{
	uint8_t hdr[MIG_HDR_SIZE];
	int fd = mig_conn_fd(c);
	struct mig_hdr h;
	int ret;


	if (fd < 0)
		return -ENOTCONN;
	ret = uffd__wait_readable(fd, wake_fd, deadline);
	if (ret <= 0)
		return ret ? ret : -ETIMEDOUT;
	ret = uffd__recv_all(fd, hdr, sizeof(hdr), deadline);
	if (ret)
		return ret;
	ret = mig_parse_hdr(hdr, lay, &h);
	if (ret)
		return ret;
	if (h.len > cap)
		return -EPROTO;
	ret = uffd__recv_all(fd, buf, h.len, deadline);
	if (ret)
		return ret;
	__atomic_fetch_add(c->bytes_in, sizeof(hdr) + h.len, __ATOMIC_RELAXED);
	return mig_parse_body(&h, buf, lay, m, bad);
}

/* ---- status ----------------------------------------------------------- */

void mig_status_init(struct mig_status *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
}

void mig_status_destroy(struct mig_status *s)
{
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
}

enum uffd_mig_phase mig_phase(struct mig_status *s)
{
	return __atomic_load_n(&s->phase, __ATOMIC_ACQUIRE);
}

void mig_set_phase(struct mig_status *s, enum uffd_mig_phase p)
{
	pthread_mutex_lock(&s->lock);
	if (s->phase != UFFD_MIG_FAILED && s->phase != UFFD_MIG_COMPLETE) {
		__atomic_store_n(&s->phase, p, __ATOMIC_RELEASE);
		if (p != UFFD_MIG_BROKEN) {
			s->error = 0;
			if (p != UFFD_MIG_FAILED)
				s->message[0] = 0;
		}
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

bool mig_set_error(struct mig_status *s, enum uffd_mig_phase p, int err, const char *fmt, ...)
{
	bool recorded = false;
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (s->phase != UFFD_MIG_FAILED && s->phase != UFFD_MIG_COMPLETE &&
	    !(s->phase == UFFD_MIG_BROKEN && p == UFFD_MIG_BROKEN)) {
		__atomic_store_n(&s->phase, p, __ATOMIC_RELEASE);
		s->error = err;
		va_start(ap, fmt);
		vsnprintf(s->message, sizeof(s->message), fmt, ap);
		va_end(ap);
		recorded = true;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return recorded;
}

static int settled(const struct mig_status *s)
{
	switch (s->phase) {
	case UFFD_MIG_COMPLETE:
		return 0;
	case UFFD_MIG_BROKEN:
		return -ENOTCONN;
	case UFFD_MIG_FAILED:
		return s->error ? s->error : -EIO;
	default:
		return 1;
	}
}

int mig_status_wait(struct mig_status *s, int timeout_ms)
{
	struct timespec ts;
	int ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ms > 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&s->lock);
	while ((ret = settled(s)) == 1) {
		if (timeout_ms == 0 ||
		    (timeout_ms > 0 && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)) {
			ret = settled(s);
			if (ret == 1)
				ret = -ETIMEDOUT;
			break;
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void mig_status_fill(struct mig_status *s, struct uffd_mig_stats *st)
{
	pthread_mutex_lock(&s->lock);
	st->phase = s->phase;
	st->error = s->error;
	memcpy(st->message, s->message, sizeof(st->message));
	pthread_mutex_unlock(&s->lock);
}

/* ---- histogram -------------------------------------------------------- */

void mig_hist_add(uint64_t *hist, uint64_t ns)
{
	int b, e;

	if (ns < 8) {
		b = (int)ns;
	} else {
		e = 63 - __builtin_clzll(ns);
		b = 8 * (e - 2) + (int)((ns >> (e - 3)) & 7);
		if (b >= UFFD_MIG_HIST_BUCKETS)
			b = UFFD_MIG_HIST_BUCKETS - 1;
	}
	__atomic_fetch_add(&hist[b], 1, __ATOMIC_RELAXED);
}

static uint64_t bucket_upper(int b)
{
	if (b < 8)
		return (uint64_t)b + 1;
	return (uint64_t)(9 + b % 8) << (b / 8 - 1);
}

uint64_t mig_hist_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, seen = 0, want;
	int i;

	for (i = 0; i < UFFD_MIG_HIST_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	want = (uint64_t)(q * (double)total + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < UFFD_MIG_HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return bucket_upper(i);
	}
	return bucket_upper(UFFD_MIG_HIST_BUCKETS - 1);
}

/* ---- small things ----------------------------------------------------- */

bool mig_page_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

uint64_t mig_session_id(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = mono_ns() ^ ((uint64_t)getpid() << 32);
	return id ? id : 1;
}

void mig_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void mig_urgent_marks(int fd)
{
	int prio = MIG_URGENT_PRIORITY, tos = MIG_URGENT_TOS;

	setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)))
		setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
}

void mig_stream_buffer(int fd, int opt)
{
	int bytes = MIG_STREAM_BUFFER;

	setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

/*
 * The calling thread - the background stream, once the program runs at
 * the destination - yields the CPU to the urgent path: its nice value is
 * raised (which any thread may do), so that on a machine whose CPUs the
 * stream keeps busy, a request's threads are scheduled first.  Measured
 * with `uffd migrate -s 4096 -H 64 -r 20000` on loopback (2 vCPUs), two
 * runs each: request p50 0.33-0.59 ms at nice 0, 0.15-0.16 ms at 10;
 * at 1 GiB and 200k writes/s p99 0.59 ms against 0.26.  At 19 the stream
 * starved enough that 2.5x more pages were both requested and streamed.
 * Not with one connection: requests and answers travel on the stream.
 */
void mig_background_priority(bool one_channel)
{
	/* Raising a nice value needs no privilege: nothing to check. */
	if (!one_channel)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), MIG_BACKGROUND_NICE);
}

/*
 * The calling thread - the source's answering thread, the destination's
 * fault thread - runs the urgent path: a short slice (util/slice.c), so
 * that it preempts whatever runs where it wakes instead of waiting up to
 * a slice (~1 ms here) for it.  Measured with `uffd migrate -s 4096 -H 64
 * -r 20000` on loopback while another program's builds and tests kept
 * both vCPUs busy, three runs each: request p50 0.10-0.25 ms and p99
 * 1.97-2.62 ms without, 0.05-0.07 ms and 1.05-1.44 ms with.
 */
void mig_urgent_priority(void)
{
	(void)uffd__thread_short_slice();	/* best effort: see slice.c */
}
