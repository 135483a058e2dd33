/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The page-server test helpers declared in pserve.h. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffd/image.h>
#include <sys/types.h>

#include "pserve.h"
#include "serve/proto.h"
#include "util/sock.h"

#define MAX_IMAGES 4
/* Copies: an image struct may live on a stack that is gone by exit. */
static char cleanup_dirs[MAX_IMAGES][256];
static pid_t cleanup_owner;

/* At the test's exit (not a child's): the files each image dir may hold. */
static void remove_image_files(void)
{
	const char *names[] = { "img", "img.ws", "mem", "mem.ws", "sock" };
	char path[sizeof(cleanup_dirs) + 16];	/* (gcc cannot bound a row) */
	size_t i, k;

	if (getpid() != cleanup_owner)
		return;
	for (k = 0; k < MAX_IMAGES && cleanup_dirs[k][0]; k++) {
		const char *dir = cleanup_dirs[k];

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			unlink(path);
		}
		rmdir(dir);
	}
}

void t_ps_fill(void *page, size_t i, unsigned seed)
{
	uint64_t *w = page;
	size_t k;

	if (i % 7 == 3) {
		memset(page, 0, PAGE);
		return;
	}
	for (k = 0; k < PAGE / 8; k++)
		w[k] = (uint64_t)seed << 48 ^ (uint64_t)i << 20 ^ k ^ 0x5a5a000000000000ull;
}

bool t_ps_page_ok(const void *page, size_t i, unsigned seed)
{
	uint64_t want[PAGE / 8];

	t_ps_fill(want, i, seed);
	return !memcmp(page, want, PAGE);
}

void t_ps_check(const char *what, const void *mem, size_t first, size_t npages, unsigned seed)
{
	size_t i;

	for (i = 0; i < npages; i++)
		if (!t_ps_page_ok((const char *)mem + i * PAGE, first + i, seed))
			FAIL("%s: page %zu is not the image's (first word 0x%llx)", what, first + i,
			     (unsigned long long)*(const uint64_t *)((const char *)mem + i * PAGE));
}

void t_ps_make_image(struct t_ps_image *im, size_t npages, unsigned seed)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256];
	size_t i;

	snprintf(dir, sizeof(dir), "%s/uffd-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		FAIL("mkdtemp %s: %s", dir, strerror(errno));
	for (i = 0; i < MAX_IMAGES && cleanup_dirs[i][0]; i++)
		;
	CHECK(i < MAX_IMAGES);
	snprintf(cleanup_dirs[i], sizeof(cleanup_dirs[i]), "%s", dir);
	if (!cleanup_owner)
		atexit(remove_image_files);
	cleanup_owner = getpid();
	t_ps_make_image_in(im, dir, npages, seed);
}

void t_ps_make_image_in(struct t_ps_image *im, const char *dir, size_t npages, unsigned seed)
{
	struct uffd_image_region reg = { .addr = T_PS_ADDR, .len = npages * PAGE,
					 .page_size = PAGE, .flags = UFFD_IMAGE_ANON };
	struct uffd_image_writer *w;
	uint64_t page[PAGE / 8];
	size_t i;
	int fd;

	memset(im, 0, sizeof(*im));
	snprintf(im->dir, sizeof(im->dir), "%s", dir);
	snprintf(im->path, sizeof(im->path), "%s/img", im->dir);
	snprintf(im->raw, sizeof(im->raw), "%s/mem", im->dir);
	snprintf(im->sock, sizeof(im->sock), "%s/sock", im->dir);
	im->npages = npages;
	im->seed = seed;
	w = uffd_image_create(im->path, &reg, 1, NULL, 0);
	if (!w)
		FAIL("uffd_image_create: %s", strerror(errno));
	fd = open(im->raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	for (i = 0; i < npages; i++) {
		t_ps_fill(page, i, seed);
		if (i % 7 != 3)
			CHECK_OK(uffd_image_put_page(w, 0, i, page));
		CHECK_EQ(pwrite(fd, page, PAGE, i * PAGE), (ssize_t)PAGE);
	}
	CHECK_OK(uffd_image_commit(w));
	close(fd);
}

static void log_line(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "server: %s\n", line);
}

/* The read end of each running server child's pipe, by pid. */
#define MAX_SERVERS 8
static struct { pid_t pid; int fd; } servers[MAX_SERVERS];

pid_t t_ps_server_start(const struct uffd_serve_opts *o)
{
	int pipefd[2], i;
	char c;
	pid_t pid;

	CHECK_OK(pipe(pipefd));
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		struct uffd_serve_opts mine = *o;
		struct uffd_serve_stats st;
		struct uffd_serve *s;
		sigset_t set;
		int sig;

		/* A test that fails leaves no server behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_BLOCK, &set, NULL);
		close(pipefd[0]);
		if (!mine.log)
			mine.log = log_line;
		s = uffd_serve_new(&mine);
		c = s ? 0 : errno;
		if (write(pipefd[1], &c, 1) != 1 || !s)
			_exit(2);
		sigwait(&set, &sig);
		/* Taken before the free, once no client is being served: a
		 * client that went just before is still being finished.
		 * SIGUSR1: a stop with clients still there. */
		for (i = 0; i < (sig == SIGUSR1 ? 1 : 5000); i++) {
			uffd_serve_stats(s, &st);
			if (!st.clients)
				break;
			usleep(1000);
		}
		uffd_serve_free(s);
		_exit(write(pipefd[1], &st, sizeof(st)) == sizeof(st) ? 0 : 3);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &c, 1) != 1)
		FAIL("the server child died before listening");
	if (c)
		FAIL("uffd_serve_new: %s", strerror(c));
	for (i = 0; i < MAX_SERVERS && servers[i].pid; i++)
		;
	CHECK(i < MAX_SERVERS);
	servers[i].pid = pid;
	servers[i].fd = pipefd[0];
	return pid;
}

static int take_server(pid_t pid)
{
	int i, fd;

	for (i = 0; i < MAX_SERVERS && servers[i].pid != pid; i++)
		;
	CHECK(i < MAX_SERVERS);
	fd = servers[i].fd;
	servers[i].pid = 0;
	return fd;
}

void t_ps_server_stop(pid_t pid, struct uffd_serve_stats *st)
{
	int fd = take_server(pid);
	struct uffd_serve_stats mine;

	CHECK_OK(kill(pid, SIGTERM));
	CHECK_EQ(t_wait_child(pid, 5000), 0);
	CHECK_EQ(read(fd, &mine, sizeof(mine)), (ssize_t)sizeof(mine));
	close(fd);
	if (st)
		*st = mine;
}

void t_ps_server_stop_now(pid_t pid, struct uffd_serve_stats *st)
{
	int fd = take_server(pid);
	struct uffd_serve_stats mine;

	CHECK_OK(kill(pid, SIGUSR1));
	CHECK_EQ(t_wait_child(pid, 20000), 0);
	CHECK_EQ(read(fd, &mine, sizeof(mine)), (ssize_t)sizeof(mine));
	close(fd);
	if (st)
		*st = mine;
}

void t_ps_server_kill(pid_t pid)
{
	int status;

	close(take_server(pid));
	CHECK_OK(kill(pid, SIGKILL));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

pid_t t_ps_spawn(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();

	CHECK(pid >= 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg));
	}
	return pid;
}

int t_ps_join(pid_t pid, int ms)
{
	return t_wait_child(pid, ms);
}

struct uffd_serve_client *t_ps_attach(const struct t_ps_image *im, unsigned flags)
{
	UFFD_OPTS(uffd_serve_attach_opts, o, .socket_path = im->sock, .flags = flags);
	struct uffd_serve_client *c = uffd_serve_attach(&o);

	if (!c)
		FAIL("uffd_serve_attach: %s", strerror(errno));
	return c;
}

void t_ps_say(int fd)
{
	CHECK_EQ(write(fd, "x", 1), 1);
}

void t_ps_hear(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) != 1)
		FAIL("the other side did not get this far");
	CHECK_EQ(read(fd, &c, 1), 1);
}

struct uffd_serve_client *t_ps_attach_forking(const struct t_ps_image *im, unsigned flags,
					      const char *what)
{
	struct uffd_serve_client *c = t_ps_attach(im, flags);
	struct uffd_serve_client_stats st;

	CHECK_OK(uffd_serve_client_stats(c, &st));
	if (!(st.features & UFFD_F(UFFD_FEAT_EVENT_FORK)))
		SKIP("no EVENT_FORK for this process");
	t_ps_check(what, uffd_serve_client_addr(c, 0), 0, 32, im->seed);
	return c;
}

void t_ps_finish_alone(struct uffd_serve_client *c)
{
	struct uffd_serve_client_stats st;

	CHECK_OK(uffd_serve_client_wait(c, 10000));
	CHECK_OK(uffd_serve_client_stats(c, &st));
	CHECK(st.done && st.fallback);
	CHECK_EQ(st.errors, 0);
	uffd_serve_detach(c, false);
}

int t_ps_second_client(const struct t_ps_image *im, int fd_go, int fd_done, const char *what)
{
	struct uffd_serve_client *c;

	t_ps_hear(fd_go, 20000);
	c = t_ps_attach(im, 0);
	t_ps_check(what, uffd_serve_client_addr(c, 0), 0, im->npages, im->seed);
	t_ps_say(fd_done);
	uffd_serve_detach(c, true);
	return 0;
}

bool t_ps_registered(const void *addr)
{
	char line[512], want[32];
	bool in = false, ret = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	CHECK(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			in = true;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			ret = strstr(line, " um") != NULL;
			break;
		}
	}
	fclose(f);
	return ret;
}

int t_ps_connect(const struct t_ps_image *im)
{
	struct sockaddr_un addr;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK_OK(uffd__unix_addr(&addr, im->sock));
	CHECK_OK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)));
	return fd;
}

void t_ps_send_frame(int fd, uint16_t type, const void *payload, uint32_t len, int pass_fd)
{
	uint8_t *buf = malloc(SERVE_HDR + len + 1);

	CHECK(buf);
	if (len)
		memcpy(buf + SERVE_HDR, payload, len);
	uffd__serve_frame_put(buf, type, buf + SERVE_HDR, len);
	if (pass_fd >= 0)
		CHECK_OK(uffd__send_with_fd(fd, buf, SERVE_HDR + len, pass_fd));
	else
		CHECK_OK(uffd__send_all(fd, buf, SERVE_HDR + len, uffd__deadline_ms(2000)));
	free(buf);
}
