/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One migration between two processes (see migrate_run.h).
 *
 * The parent forks a destination and a source.  In namespace mode each
 * child moves into a network namespace of its own and the parent joins
 * them with a veth (twohosts.c); the destination listens on its end (or
 * on loopback), the source connects three times - stream, urgent, and a
 * ping connection that measures the link's round trip before anything
 * else runs - through a delaying relay when asked.  The source runs the
 * checker's writers on its table and migrates it; at the switchover the
 * destination adopts the writers from the blob and runs them on its own
 * table.  Once both sides are complete the source sends its versions at
 * the instant over the (then idle) stream connection and the
 * destination's checker proves its table against them: the verdict.
 *
 * Downtime is measured across the two processes on CLOCK_MONOTONIC (one
 * machine): from the return of the source's pause callback (every writer
 * parked) to the return of the destination's resume callback (its writers
 * started); how long the writers took to park is reported apart.  Each child reports with one
 * fixed-size struct through a pipe.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uffd/checker.h>

#include "migrate_run.h"
#include "twohosts.h"

#define PING_ROUNDS	50
#define SETUP_MS	120000		/* a child moving into its namespace */
#define PING_BYTES	64

struct src_report {
	int error;
	char message[256];
	struct uffd_mig_stats st;
	uint64_t t_pause, t_paused;
	double base_rate, rtt_ms;
};

struct dst_report {
	int error;
	char message[256];
	struct uffd_mig_stats st;
	uint64_t t_resumed;
	double post_rate;
	bool exact;
	char verdict[256];
};

const char *mig_mode_name(enum uffd_mig_mode m)
{
	switch (m) {
	case UFFD_MIG_HYBRID:		return "hybrid";
	case UFFD_MIG_POSTCOPY_ONLY:	return "postcopy-only";
	case UFFD_MIG_PRECOPY_ONLY:	return "precopy-only";
	default:			return "?";
	}
}

const char *mig_phase_name(enum uffd_mig_phase p)
{
	static const char *const names[] = { "connecting", "precopy", "switchover", "postcopy",
					     "complete", "broken", "failed" };

	return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

static int sock_all(int fd, void *buf, size_t len, bool out)
{
	char *p = buf;

	while (len) {
		ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		p += n;
		len -= n;
	}
	return 0;
}

static int tcp_connect(const char *host, int port, char tag)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    sock_all(fd, &tag, 1, true)) {
		int ret = -errno;

		close(fd);
		return ret ? ret : -EIO;
	}
	return fd;
}

/* Accept a connection that says it is `tag`. */
static int tcp_accept(int l, char tag)
{
	int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC), one = 1;
	char got = 0;

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sock_all(fd, &got, 1, false) || got != tag) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median round trip of a small message, in ms. */
static double ping(int fd)
{
	uint64_t rt[PING_ROUNDS];
	char buf[PING_BYTES] = "ping";
	int i;

	for (i = 0; i < PING_ROUNDS; i++) {
		uint64_t t0 = now_ns();

		if (sock_all(fd, buf, sizeof(buf), true) || sock_all(fd, buf, sizeof(buf), false))
			return -1;
		rt[i] = now_ns() - t0;
	}
	qsort(rt, PING_ROUNDS, sizeof(rt[0]), cmp_u64);
	return rt[PING_ROUNDS / 2] / 1e6;
}

static void *echo_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[PING_BYTES];

	while (!sock_all(fd, buf, sizeof(buf), false) && !sock_all(fd, buf, sizeof(buf), true))
		;
	close(fd);
	return NULL;
}

/* ---- the source ---------------------------------------------------------- */

struct src_ctx {
	struct uffd_checker *c;
	uint64_t t_pause, t_paused;
};

static void src_pause(void *arg)
{
	struct src_ctx *x = arg;

	x->t_pause = now_ns();
	uffd_checker_pause_cb(x->c);
	x->t_paused = now_ns();		/* every writer parked */
}

static void src_resume(void *arg)
{
	uffd_checker_resume_cb(((struct src_ctx *)arg)->c);
}

static int src_save(void *arg, void *blob, size_t cap)
{
	return uffd_checker_export(((struct src_ctx *)arg)->c, blob, cap);
}

static void progress_line(const struct mig_run_cfg *cfg, const struct uffd_mig_stats *st)
{
	fprintf(stderr, "\r  %-10s round %u  sent %7.1f MiB  dirty %7llu  requested %6llu  "
		"streamed %7llu",
		mig_phase_name(st->phase), st->round, st->bytes_sent / 1048576.0,
		(unsigned long long)st->dirty_pages, (unsigned long long)st->pages_requested,
		(unsigned long long)st->pages_background);
	(void)cfg;
}

static int src_run(const struct mig_run_cfg *cfg, int port, struct src_report *rep)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = cfg->bytes, .writers = cfg->writers,
		  .seed = cfg->seed, .fill = cfg->fill, .hot_bytes = cfg->hot_bytes,
		  .rate = cfg->rate);
	const char *host = cfg->netns ? TWOHOSTS_ADDR_B : "127.0.0.1";
	struct src_ctx x = { 0 };
	struct uffd_image_region reg;
	struct uffd_mig_source *m;
	int s = -1, u = -1, p, ret;
	uint64_t w0, t0;
	size_t npages;
	uint64_t *v;

	x.c = uffd_checker_new(&co);
	if (!x.c) {
		ret = -errno;
		snprintf(rep->message, sizeof(rep->message), "the table: %s", strerror(errno));
		return ret;
	}
	madvise(uffd_checker_area(x.c), cfg->bytes, MADV_NOHUGEPAGE);
	uffd_checker_start(x.c);
	sleep_s(cfg->settle_s / 2);
	w0 = uffd_checker_writes(x.c);
	t0 = now_ns();
	sleep_s(cfg->settle_s / 2);
	rep->base_rate = (uffd_checker_writes(x.c) - w0) / ((now_ns() - t0) / 1e9);

	s = tcp_connect(host, port, 'S');
	if (s >= 0 && !cfg->one_channel)
		u = tcp_connect(host, port, 'U');
	p = s >= 0 && (cfg->one_channel || u >= 0) ? tcp_connect(host, port, 'P') : -1;
	if (p < 0) {
		snprintf(rep->message, sizeof(rep->message), "connecting to %s:%d: %s", host, port,
			 strerror(-(s < 0 ? s : u < 0 ? u : p)));
		return -ECONNREFUSED;
	}
	rep->rtt_ms = ping(p);
	close(p);

	reg = (struct uffd_image_region){ (uintptr_t)uffd_checker_area(x.c), cfg->bytes, 4096,
					  UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_mig_source_opts, o, .regions = &reg, .nregions = 1, .stream_fd = s,
		  .urgent_fd = u, .one_channel = cfg->one_channel, .mode = cfg->mode,
		  .max_rounds = cfg->max_rounds, .downtime_ms = cfg->downtime_ms,
		  .pause = src_pause, .resume = src_resume, .save = src_save, .arg = &x);
	m = uffd_mig_source_start(&o);
	if (!m) {
		ret = -errno;
		snprintf(rep->message, sizeof(rep->message), "uffd_mig_source_start: %s",
			 strerror(errno));
		return ret;
	}
	while ((ret = uffd_mig_source_wait(m, cfg->progress ? 200 : -1)) == -ETIMEDOUT) {
		uffd_mig_source_stats(m, &rep->st);
		progress_line(cfg, &rep->st);
	}
	uffd_mig_source_stats(m, &rep->st);
	if (cfg->progress) {
		progress_line(cfg, &rep->st);
		fputc('\n', stderr);
	}
	rep->t_pause = x.t_pause;
	rep->t_paused = x.t_paused;
	if (ret) {
		snprintf(rep->message, sizeof(rep->message), "%s", rep->st.message);
		return ret;
	}
	/* The truth, for the destination's checker. */
	npages = cfg->bytes / 4096;
	v = malloc(npages * sizeof(*v));
	if (!v || uffd_checker_instant_versions(x.c, v, npages) ||
	    sock_all(s, v, npages * sizeof(*v), true)) {
		snprintf(rep->message, sizeof(rep->message), "sending the versions");
		return -EIO;
	}
	/* Wait for the destination's verdict before the table goes. */
	sock_all(s, &(char){ 0 }, 1, false);
	return 0;
}

static __attribute__((noreturn)) void src_child(const struct mig_run_cfg *cfg, int up, int down)
{
	struct src_report rep = { 0 };
	int port = 0;

	if (cfg->netns) {
		rep.error = twohosts_child_enter(up, down, true, cfg->link_mbit, rep.message,
						 sizeof(rep.message));
		if (rep.error)
			goto out;
	}
	if (read_all(down, &port, sizeof(port))) {
		rep.error = -EIO;
		snprintf(rep.message, sizeof(rep.message), "no port from the destination");
		goto out;
	}
	rep.error = src_run(cfg, port, &rep);
out:
	write_all(up, "r", 1);
	write_all(up, &rep, sizeof(rep));
	_exit(0);
}

/* ---- the destination ------------------------------------------------------- */

struct dst_ctx {
	void *area;
	size_t len;
	struct uffd_checker *c;
	uint64_t t_resumed, w_resumed;
	int adopt_error;
	bool scan;
	pthread_t scanner;
	bool scanning;
};

/* A program reading its memory once after the move. */
static void *scan_main(void *arg)
{
	struct dst_ctx *x = arg;
	const volatile uint64_t *w = x->area;
	uint64_t sum = 0;
	size_t p;

	for (p = 0; p < x->len / 4096; p++)
		sum += w[p * 512];
	return (void *)(uintptr_t)sum;
}

static void dst_resume(void *arg, const void *blob, size_t len)
{
	struct dst_ctx *x = arg;

	x->c = uffd_checker_adopt(x->area, x->len, blob, len);
	if (!x->c) {
		x->adopt_error = -errno;
		return;
	}
	x->w_resumed = uffd_checker_writes(x->c);
	uffd_checker_start(x->c);
	if (x->scan)
		x->scanning = !pthread_create(&x->scanner, NULL, scan_main, x);
	x->t_resumed = now_ns();
}

static int dst_run(const struct mig_run_cfg *cfg, int up, struct dst_report *rep)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct dst_ctx x = { .len = cfg->bytes, .scan = cfg->scan };
	struct uffd_image_region reg;
	struct uffd_mig_dest *m;
	int l, s, u = -1, p, fd = -1, ret;
	size_t npages = cfg->bytes / 4096;
	uint64_t *v, t_end, w_end;
	pthread_t echo;

	if (cfg->minor) {
		fd = memfd_create("uffd-migrate", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, cfg->bytes))
			return -errno;
		x.area = mmap(NULL, cfg->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		x.area = mmap(NULL, cfg->bytes, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (x.area != MAP_FAILED)
			madvise(x.area, cfg->bytes, MADV_NOHUGEPAGE);
	}
	if (x.area == MAP_FAILED)
		return -errno;

	/* With a delay, the relay listens on the link and forwards here. */
	inet_pton(AF_INET, cfg->netns && cfg->delay_ms <= 0 ? TWOHOSTS_ADDR_B : "127.0.0.1",
		  &sa.sin_addr);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl))
		return -errno;
	p = ntohs(sa.sin_port);
	if (cfg->delay_ms > 0) {
		pid_t relay = delay_relay_start(cfg->netns ? TWOHOSTS_ADDR_B : "127.0.0.1",
						"127.0.0.1", p, cfg->delay_ms, &p);

		if (relay < 0) {
			snprintf(rep->message, sizeof(rep->message), "the delay relay: %s",
				 strerror(-relay));
			return relay;
		}
	}
	if (write_all(up, "p", 1) || write_all(up, &p, sizeof(p)))
		return -EIO;
	s = tcp_accept(l, 'S');
	if (s >= 0 && !cfg->one_channel)
		u = tcp_accept(l, 'U');
	p = s >= 0 && (cfg->one_channel || u >= 0) ? tcp_accept(l, 'P') : -1;
	close(l);
	if (p < 0) {
		snprintf(rep->message, sizeof(rep->message), "accepting the connections");
		return -ECONNREFUSED;
	}
	pthread_create(&echo, NULL, echo_main, (void *)(intptr_t)p);
	pthread_detach(echo);

	reg = (struct uffd_image_region){ (uintptr_t)x.area, cfg->bytes, 4096,
					  cfg->minor ? UFFD_IMAGE_SHMEM : UFFD_IMAGE_ANON };
	UFFD_OPTS(uffd_mig_dest_opts, o, .regions = &reg, .nregions = 1,
		  .fds = cfg->minor ? &fd : NULL, .stream_fd = s, .urgent_fd = u,
		  .one_channel = cfg->one_channel, .resume = dst_resume, .arg = &x);
	m = uffd_mig_dest_start(&o);
	if (!m) {
		ret = -errno;
		snprintf(rep->message, sizeof(rep->message), "uffd_mig_dest_start: %s",
			 strerror(errno));
		return ret;
	}
	ret = uffd_mig_dest_wait(m, -1);
	t_end = now_ns();
	w_end = x.c ? uffd_checker_writes(x.c) : 0;
	if (x.scanning && !ret)
		pthread_join(x.scanner, NULL);
	uffd_mig_dest_stats(m, &rep->st);
	rep->t_resumed = x.t_resumed;
	if (ret || !x.c) {
		snprintf(rep->message, sizeof(rep->message), "%s",
			 x.adopt_error ? "adopting the checker's state" : rep->st.message);
		return ret ? ret : x.adopt_error;
	}
	if (t_end > x.t_resumed)
		rep->post_rate = (w_end - x.w_resumed) / ((t_end - x.t_resumed) / 1e9);
	sleep_s(cfg->after_s);
	uffd_checker_pause(x.c);
	v = malloc(npages * sizeof(*v));
	if (!v || sock_all(s, v, npages * sizeof(*v), false)) {
		snprintf(rep->message, sizeof(rep->message), "receiving the versions");
		return -EIO;
	}
	ret = uffd_checker_adopt_versions(x.c, v, npages, rep->verdict, sizeof(rep->verdict));
	rep->exact = !ret;
	if (!ret)
		snprintf(rep->verdict, sizeof(rep->verdict),
			 "exact: every page held its version at the pause when first touched "
			 "here, and holds its latest now");
	sock_all(s, &(char){ 1 }, 1, true);
	/* The writers are paused; the table goes with the process. */
	uffd_mig_dest_free(m);
	return 0;
}

static __attribute__((noreturn)) void dst_child(const struct mig_run_cfg *cfg, int up, int down)
{
	struct dst_report rep = { 0 };

	if (cfg->netns) {
		rep.error = twohosts_child_enter(up, down, false, cfg->link_mbit, rep.message,
						 sizeof(rep.message));
		if (rep.error)
			goto out;
	}
	rep.error = dst_run(cfg, up, &rep);
	if (rep.error && !rep.message[0])
		snprintf(rep.message, sizeof(rep.message), "%s", strerror(-rep.error));
out:
	write_all(up, "r", 1);
	write_all(up, &rep, sizeof(rep));
	_exit(0);
}

/* ---- the parent ---------------------------------------------------------- */

static pid_t spawn(const struct mig_run_cfg *cfg, bool source, int *up, int *down)
{
	int u[2], d[2];
	pid_t pid;

	if (pipe2(u, O_CLOEXEC) || pipe2(d, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(u[0]);
		close(d[1]);
		if (source)
			src_child(cfg, u[1], d[0]);
		dst_child(cfg, u[1], d[0]);
	}
	close(u[1]);
	close(d[0]);
	*up = u[0];
	*down = d[1];
	return pid;
}

/* Read one byte from fd within ms (-1 on timeout or end). */
static int read_byte(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, ms) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/*
 * A side that sent no report: it died (its exit status or signal says
 * how; *pid is then reaped, and -1), or it is still running after
 * limit_ms (it is killed afterwards).
 */
static void no_report(pid_t *pid, const char *who, int limit_ms, int *error, char *msg,
		      size_t size)
{
	int status;

	if (waitpid(*pid, &status, WNOHANG) != *pid) {
		*error = -ETIMEDOUT;
		snprintf(msg, size, "%s did not report within %d s", who, limit_ms / 1000);
		return;
	}
	*pid = -1;
	*error = -ECHILD;
	if (WIFSIGNALED(status))
		snprintf(msg, size, "%s died of signal %d (%s) without a report", who,
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(msg, size, "%s exited %d without a report", who, WEXITSTATUS(status));
}

int mig_run(const struct mig_run_cfg *cfg, struct mig_run_result *res)
{
	struct src_report srep = { 0 };
	struct dst_report drep = { 0 };
	int su, sd, du, dd, port, c, ret = 0;
	/* Generous: setting up, a slow link, and the checker's proof. */
	int limit_ms = 120000 + (int)(cfg->bytes >> 20) * 60 +
		       (cfg->link_mbit ? (int)((cfg->bytes * 8.0 / 1e6 / cfg->link_mbit) * 3000) : 0);
	pid_t src, dst;

	memset(res, 0, sizeof(*res));
	res->table_bytes = cfg->bytes;
	if (cfg->netns) {
		ret = twohosts_available(res->message, sizeof(res->message));
		if (ret) {
			res->skipped = true;
			return ret;
		}
	}
	fflush(NULL);
	dst = spawn(cfg, false, &du, &dd);
	if (dst < 0)
		return dst;
	src = spawn(cfg, true, &su, &sd);
	if (src < 0) {
		kill(dst, SIGKILL);
		waitpid(dst, NULL, 0);
		return src;
	}
	if (cfg->netns) {
		if (read_byte(du, SETUP_MS) != 'u' || read_byte(su, SETUP_MS) != 'u') {
			snprintf(res->message, sizeof(res->message), "the children could not move "
				 "into namespaces");
			ret = -EIO;
		} else {
			ret = twohosts_link(src, dst, res->message, sizeof(res->message));
		}
		if (!ret)
			ret = write_all(dd, "g", 1) || write_all(sd, "g", 1) ? -EIO : 0;
		if (ret)
			goto out_kill;
	}
	/* The destination's port (or its report, if it could not listen):
	 * setting up a namespace's link waits for the kernel's network lock,
	 * which tearing other namespaces down holds for a while. */
	c = read_byte(du, SETUP_MS);
	if (c == 'p' && !read_all(du, &port, sizeof(port))) {
		write_all(sd, &port, sizeof(port));
		c = read_byte(du, limit_ms);
	} else if (c != 'r') {
		snprintf(res->message, sizeof(res->message), "the destination did not start "
			 "within %d s%s", SETUP_MS / 1000, cfg->netns ? " (its network setup)" : "");
		ret = -ETIMEDOUT;
		goto out_kill;
	}
	if (c == 'r')
		read_all(du, &drep, sizeof(drep));
	if (read_byte(su, limit_ms) == 'r')
		read_all(su, &srep, sizeof(srep));
	else if (!drep.error)
		no_report(&src, "the source", limit_ms, &srep.error, srep.message,
			  sizeof(srep.message));
	if (c != 'r' && !drep.error)
		no_report(&dst, "the destination", limit_ms, &drep.error, drep.message,
			  sizeof(drep.message));
out_kill:
	if (src > 0) {
		kill(src, SIGKILL);
		waitpid(src, NULL, 0);
	}
	if (dst > 0) {
		kill(dst, SIGKILL);
		waitpid(dst, NULL, 0);
	}
	close(su);
	close(sd);
	close(du);
	close(dd);
	if (ret)
		return ret;
	res->src = srep.st;
	res->dst = drep.st;
	res->error = srep.error ? srep.error : drep.error;
	snprintf(res->message, sizeof(res->message), "%s%s%s%s",
		 srep.error ? "source: " : "", srep.error ? srep.message : "",
		 drep.error ? (srep.error ? "; destination: " : "destination: ") : "",
		 drep.error ? drep.message : "");
	res->exact = drep.exact;
	snprintf(res->verdict, sizeof(res->verdict), "%s", drep.verdict);
	if (srep.t_paused && drep.t_resumed > srep.t_paused)
		res->downtime_ms = (drep.t_resumed - srep.t_paused) / 1e6;
	if (srep.t_paused)
		res->stop_ms = (srep.t_paused - srep.t_pause) / 1e6;
	res->base_rate = srep.base_rate;
	res->post_rate = drep.post_rate;
	res->rtt_ms = srep.rtt_ms;
	res->wire_bytes = srep.st.bytes_sent + srep.st.bytes_received;
	return 0;
}
