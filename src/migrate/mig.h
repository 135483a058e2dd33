/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the two sides of a migration share: the memory's layout as both
 * see it, connections that count their bytes, the handle's status (phase,
 * error, a message) with waiting on it, and the latency histogram.
 */
#ifndef LIBUFFD_MIGRATE_MIG_H
#define LIBUFFD_MIGRATE_MIG_H

#include <pthread.h>
#include <stdarg.h>
#include <sys/uio.h>
#include <uffd/migrate.h>

#include "wire.h"

#define MIG_DEFAULT_TIMEOUT_MS	10000
#define MIG_DEFAULT_SPIN_US	200
#define MIG_DEFAULT_DOWNTIME_MS	20
#define MIG_ROUNDS_HYBRID	1
#define MIG_ROUNDS_PRECOPY	8

/* One region as this side has it, and its place in the global numbering. */
struct mig_region {
	uint64_t addr;			/* here */
	uint64_t len;
	uint32_t page_size;
	uint64_t npages;
	uint64_t first;			/* global number of its first page */
};

/* Check the caller's regions and lay them out (arrays of n, allocated).
 * 0 or -EINVAL/-ENOMEM. */
int mig_layout_init(const struct uffd_image_region *in, int n, struct mig_region **regions,
		    struct mig_layout_region **lregions, struct mig_layout *lay);

/* A connection: the caller's fd; sends are serialized, bytes counted. */
struct mig_conn {
	int fd;				/* -1: none */
	pthread_mutex_t send_lock;
	uint64_t *bytes_out, *bytes_in;	/* atomic counters of the handle */
};

void mig_conn_init(struct mig_conn *c, int fd, uint64_t *bytes_out, uint64_t *bytes_in);
/* The fd, which a resume replaces while other threads look at it. */
static inline int mig_conn_fd(const struct mig_conn *c)
{
	return __atomic_load_n(&c->fd, __ATOMIC_ACQUIRE);
}
/* Replace the fd (no send in progress meanwhile). */
void mig_conn_set_fd(struct mig_conn *c, int fd);
/* shutdown(2) both ways, if there is an fd. */
void mig_conn_shutdown(struct mig_conn *c, int how);
void mig_conn_destroy(struct mig_conn *c);

/* Send a message: header + payload iovecs (iov[0] is left for the header).
 * 0 or -errno. */
int mig_sendv(struct mig_conn *c, enum mig_type type, uint16_t count, struct iovec *iov,
	      int iovcnt, uint64_t deadline);
/* A message with one flat payload (may be NULL with len 0). */
int mig_send(struct mig_conn *c, enum mig_type type, uint16_t count, const void *payload,
	     uint32_t len, uint64_t deadline);
/* An ERROR message, best effort (a short deadline; errors ignored). */
void mig_send_error(struct mig_conn *c, int err, uint32_t flags, const char *text);

/*
 * Receive one message into buf (cap bytes, at least mig_max_payload()):
 * waits up to deadline for its first byte (wake_fd readable: -EINTR),
 * then for the rest.  0; -ECONNRESET (closed), -ETIMEDOUT, -EPROTO
 * (garbage), -EBADMSG (a bad page CRC: m and *bad tell which), -errno.
 */
int mig_recv(struct mig_conn *c, const struct mig_layout *lay, void *buf, size_t cap,
	     struct mig_msg *m, int *bad, uint64_t deadline, int wake_fd);
/* Is a byte waiting on fd?  1, 0, or -errno (an error or hang-up). */
int mig_readable(int fd);

/* A connection failure (as opposed to the migration's own failure). */
static inline bool mig_link_error(int err)
{
	return err == -ECONNRESET || err == -EPIPE || err == -ETIMEDOUT || err == -EPROTO ||
	       err == -ENOTCONN || err == -ECONNABORTED || err == -EHOSTUNREACH ||
	       err == -ENETUNREACH || err == -ENETDOWN || err == -ESHUTDOWN;
}

/* The status every handle has: phase, error, message, waiting on them. */
struct mig_status {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum uffd_mig_phase phase;
	int error;
	char message[160];
};

void mig_status_init(struct mig_status *s);
void mig_status_destroy(struct mig_status *s);
enum uffd_mig_phase mig_phase(struct mig_status *s);
void mig_set_phase(struct mig_status *s, enum uffd_mig_phase p);
/* Record an error and move to phase p, unless already FAILED/COMPLETE
 * (the first error stays).  Returns true if this call recorded it. */
bool mig_set_error(struct mig_status *s, enum uffd_mig_phase p, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Wait for COMPLETE (0), BROKEN (-ENOTCONN) or FAILED (the error). */
int mig_status_wait(struct mig_status *s, int timeout_ms);
void mig_status_fill(struct mig_status *s, struct uffd_mig_stats *st);

/* Latency histogram (UFFD_MIG_HIST_BUCKETS, see migrate.h). */
void mig_hist_add(uint64_t *hist, uint64_t ns);
/* Upper bound of the q-quantile, 0 if empty. */
uint64_t mig_hist_quantile(const uint64_t *hist, double q);

/* Is the page all zeros? */
bool mig_page_is_zero(const void *p, size_t len);

/* Spin politely: one pause instruction. */
static inline void mig_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* A random, non-zero session id. */
uint64_t mig_session_id(void);

/* TCP_NODELAY where the fd is TCP (others are left alone). */
void mig_nodelay(int fd);
#define MIG_BACKGROUND_NICE	10	/* the postcopy's background stream */
void mig_background_priority(bool one_channel);
void mig_urgent_priority(void);

/*
 * The stream's socket buffer, each side (SO_SNDBUF at the source,
 * SO_RCVBUF at the destination; the kernel doubles it).  What is queued
 * there is in flight: a request for such a page is answered again (a
 * duplicate), and "nearest to the latest fault first" cannot reorder it.
 * Left to autotuning, loopback queues up to 4 + 32 MiB; this bounds it,
 * and still covers 8 Gbit/s with a 1 ms round trip.
 */
#define MIG_STREAM_BUFFER	(512 << 10)

/*
 * The urgent connection's packets are marked so that a network that
 * queues by priority sends them ahead of the stream's where both share a
 * bottleneck (a host's qdisc: skb priority 6, TC_PRIO_INTERACTIVE, band 0
 * of prio and pfifo_fast; routers: DSCP EF).  Without that, an answer
 * waits for whatever the bottleneck's queue holds of the stream.
 */
#define MIG_URGENT_PRIORITY	6
#define MIG_URGENT_TOS		0xb8		/* DSCP 46 (EF) */
void mig_urgent_marks(int fd);
void mig_stream_buffer(int fd, int opt);

#endif
