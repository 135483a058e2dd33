/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Two hosts on one machine (see twohosts.h): anonymous network
 * namespaces, a veth pair created straight into them
 * ("ip link add A netns PID type veth peer name B netns PID"), tbf for the
 * rate, and a relay for the delay.
 *
 * The relay holds each chunk it reads for the stated time before writing
 * it on: per connection and direction, a reader thread stamps chunks with
 * their due time and a writer thread sleeps until each is due
 * (clock_nanosleep on CLOCK_MONOTONIC, absolute), so the delay is added
 * once per direction whatever the rate, and a chunk never overtakes
 * another.  It runs SCHED_FIFO where it may: a link's delay does not grow
 * with the load of the hosts at its ends, and a relay woken late by a
 * busy scheduler would add the machine's load to every packet.  The
 * timer's own lateness (tens of microseconds) comes on top: callers
 * measure the round trip they got rather than assume it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "twohosts.h"

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Run a command through the shell, quietly: 0 or -EIO with it in why. */
static int run(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int run(char *why, size_t len, const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " >/dev/null 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	st = system(cmd);
	if (st == 0)
		return 0;
	snprintf(why, len, "'%.200s' failed (status %d)", cmd, st);
	return -EIO;
}

int twohosts_available(char *why, size_t len)
{
	pid_t pid;
	int st;

	if (run(why, len, "ip -V") || run(why, len, "tc -V")) {
		snprintf(why, len, "ip(8) and tc(8) are needed (iproute2)");
		return -ENOENT;
	}
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid)
		_exit(unshare(CLONE_NEWNET) ? 1 : 0);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(why, len, "cannot make a network namespace (unshare: not permitted?)");
		return -EPERM;
	}
	return 0;
}

static int read_byte(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? c : -1;
}

int twohosts_child_enter(int ready_fd, int go_fd, bool a, unsigned mbit, char *why, size_t len)
{
	const char *dev_end = a ? "a" : "b", *addr = a ? TWOHOSTS_ADDR_A : TWOHOSTS_ADDR_B;
	char dev[32];
	int ret;

	if (unshare(CLONE_NEWNET)) {
		ret = -errno;
		snprintf(why, len, "unshare(CLONE_NEWNET): %s", strerror(errno));
		(void)!write(ready_fd, "x", 1);
		return ret;
	}
	if (write(ready_fd, "u", 1) != 1 || read_byte(go_fd) != 'g') {
		snprintf(why, len, "the parent did not make the link");
		return -EIO;
	}
	snprintf(dev, sizeof(dev), "um%d%s", (int)getppid(), dev_end);
	ret = run(why, len, "ip link set lo up");
	if (!ret)
		ret = run(why, len, "ip addr add %s/30 dev %s", addr, dev);
	if (!ret)
		ret = run(why, len, "ip link set %s up", dev);
	/*
	 * The rate (tbf), and under it a queue like a router's: pfifo_fast
	 * (prio is not built here) sends packets marked interactive - skb
	 * priority 6, the migration's urgent connection - ahead of the rest
	 * from a band of their own.  Its queue is the device's txqueuelen in
	 * packets: packets are kept to one MTU (gso_max_size) and the queue
	 * to about 5 ms of the rate, so it holds what a router would.
	 */
	if (!ret && mbit) {
		unsigned pkts = mbit * 1000u / 8 * 5 / 1500;	/* 5 ms of packets */

		if (pkts < 64)
			pkts = 64;
		ret = run(why, len, "ip link set dev %s gso_max_size 1500 txqueuelen %u", dev, pkts);
		if (!ret)
			ret = run(why, len, "tc qdisc add dev %s root handle 1: tbf rate %umbit "
				  "burst 256kb latency 5ms", dev, mbit);
		if (!ret)
			ret = run(why, len, "tc qdisc add dev %s parent 1:1 handle 10: pfifo_fast",
				  dev);
	}
	return ret;
}

int twohosts_link(pid_t a, pid_t b, char *why, size_t len)
{
	int me = (int)getpid();

	return run(why, len, "ip link add um%da netns %d type veth peer name um%db netns %d", me,
		   (int)a, me, (int)b);
}

/* ---- the delay relay ---------------------------------------------------- */

/*
 * What the relay holds per direction, as a link would: its queue is
 * bounded in bytes (with the sockets' buffers, about a bandwidth-delay
 * product of a 1 Gbit/s, 1 ms link, and not the tens of MiB loopback
 * sockets autotune to - a switchover message must not wait behind them).
 */
#define CHUNK		(64u << 10)
#define QUEUE_MAX	4			/* chunks waiting per direction */
#define RELAY_SOCKBUF	(128 << 10)

struct chunk {
	uint64_t due;
	uint32_t len;			/* 0: the end */
	struct chunk *next;
	char data[];
};

struct pipe_dir {
	int in, out;
	uint64_t delay_ns;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct chunk *head, *tail;
	int queued;
	bool dead;
};

static void dir_push(struct pipe_dir *p, struct chunk *c)
{
	pthread_mutex_lock(&p->lock);
	while (p->queued >= QUEUE_MAX && !p->dead)
		pthread_cond_wait(&p->cond, &p->lock);
	c->next = NULL;
	if (p->tail)
		p->tail->next = c;
	else
		p->head = c;
	p->tail = c;
	p->queued++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void *dir_reader(void *arg)
{
	struct pipe_dir *p = arg;

	for (;;) {
		struct chunk *c = malloc(sizeof(*c) + CHUNK);
		ssize_t n;

		if (!c)
			break;
		do
			n = recv(p->in, c->data, CHUNK, 0);
		while (n < 0 && errno == EINTR);
		c->len = n > 0 ? (uint32_t)n : 0;
		c->due = mono_now() + p->delay_ns;
		dir_push(p, c);
		if (n <= 0)
			break;
	}
	return NULL;
}

static void *dir_writer(void *arg)
{
	struct pipe_dir *p = arg;

	for (;;) {
		struct chunk *c;
		struct timespec ts;
		uint32_t off = 0;

		pthread_mutex_lock(&p->lock);
		while (!p->head)
			pthread_cond_wait(&p->cond, &p->lock);
		c = p->head;
		p->head = c->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		if (!c->len) {
			free(c);
			shutdown(p->out, SHUT_WR);
			shutdown(p->in, SHUT_RD);
			return NULL;
		}
		ts.tv_sec = c->due / 1000000000ull;
		ts.tv_nsec = c->due % 1000000000ull;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		while (off < c->len) {
			ssize_t n = send(p->out, c->data + off, c->len - off, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				free(c);
				shutdown(p->out, SHUT_RDWR);
				shutdown(p->in, SHUT_RDWR);
				pthread_mutex_lock(&p->lock);
				p->dead = true;
				pthread_cond_broadcast(&p->cond);
				pthread_mutex_unlock(&p->lock);
				return NULL;
			}
			off += n;
		}
		free(c);
	}
}

static int connect_to(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void start_dir(int in, int out, uint64_t delay_ns)
{
	struct pipe_dir *p = calloc(1, sizeof(*p));
	pthread_t t;

	if (!p)
		return;
	setsockopt(out, SOL_SOCKET, SO_SNDBUF, &(int){ RELAY_SOCKBUF }, sizeof(int));
	setsockopt(in, SOL_SOCKET, SO_RCVBUF, &(int){ RELAY_SOCKBUF }, sizeof(int));
	p->in = in;
	p->out = out;
	p->delay_ns = delay_ns;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (!pthread_create(&t, NULL, dir_reader, p))
		pthread_detach(t);
	if (!pthread_create(&t, NULL, dir_writer, p))
		pthread_detach(t);
}

static __attribute__((noreturn)) void relay_main(int l, const char *host, int to_port,
						 double delay_ms)
{
	uint64_t delay_ns = (uint64_t)(delay_ms * 1e6);

	for (;;) {
		int a = accept4(l, NULL, NULL, SOCK_CLOEXEC), b, one = 1;

		if (a < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		b = connect_to(host, to_port);
		if (b < 0) {
			close(a);
			continue;
		}
		start_dir(a, b, delay_ns);
		start_dir(b, a, delay_ns);
	}
}

pid_t delay_relay_start(const char *bind_host, const char *host, int to_port, double delay_ms,
			int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t pid;

	if (l < 0)
		return -errno;
	inet_pton(AF_INET, bind_host, &sa.sin_addr);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 8) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl)) {
		close(l);
		return -errno;
	}
	*port = ntohs(sa.sin_port);
	pid = fork();
	if (pid < 0) {
		close(l);
		return -errno;
	}
	if (!pid) {
		struct sched_param sp = { .sched_priority = 10 };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sched_setscheduler(0, SCHED_FIFO, &sp);	/* best effort */
		relay_main(l, host, to_port, delay_ms);
	}
	close(l);
	return pid;
}
