/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client whose server died forks twice at once, and both forks return:
 * the fallback's engine waits for no lock that a fork of its own process
 * holds.  glibc's fork() holds the allocator's locks (and stdio's and
 * pthread_atfork's) across the system call, and with EVENT_FORK that
 * system call waits until its FORK message is read - after a fallback, by
 * the client's watcher thread, the one thread that reads the client's
 * userfaultfd.  A FORK callback that called malloc() while a second fork
 * was under way would wait for that fork, and the fork for a FORK only
 * that thread could read: the client's forks, faults and exit() stuck for
 * ever.
 *
 * A client of a demand-only server touches half its memory; the server is
 * killed.  The engine's test hook (engine.h) holds the fallback at its
 * start until a thread of the client waits in a fault on a page it never
 * got and the client's first fork waits for its FORK to be read (the
 * memory is still registered then: nothing is filled yet), so that one
 * read takes both.  In that FORK's callback, before the child's state is
 * made, the hook has a second thread fork and returns once that fork's
 * FORK is queued - the second fork holds glibc's locks from then until it
 * is read.  The fault is served next, with the first read of its page's
 * chunk of the image (which checks the chunk's CRC).  Both forks must
 * return, the fault must be served, both children must read every page of
 * the image, and the client must finish alone, with no error.  A stuck
 * fork is reported and the client ends with _exit(): exit() would wait
 * for the locks the fork holds.
 */
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "serve/engine.h"

#define NPAGES 64
#define TOUCHED 48		/* a page the server never served (not a hole) */
/* Deadlines of the waits a stuck fork would make endless. */
#define FORK_WAIT_MS 5000
#define CHILD_WAIT_MS 10000

static struct t_ps_image im;
static int up[2], down[2];		/* test <-> client */
static char *mem;
static pid_t first_pid = -1, second_pid = -1;
static pid_t main_tid;
static pid_t toucher_tid;	/* atomic */
static int touched;		/* atomic: the toucher read its page */
static char touched_page[PAGE];
static int started;		/* atomic: the fallback waits for the first fork */
static int root_forks;		/* atomic: FORK callbacks of the client's own */
static int second_go;		/* atomic: the first FORK's callback says fork */
static int second_queued;	/* atomic: its FORK was queued in time */
static int second_forked;	/* atomic: the second fork() returned */

/* No child is left waiting for pages nobody will serve. */
static void kill_children(void *arg)
{
	(void)arg;
	if (first_pid > 0)
		kill(first_pid, SIGKILL);
	if (second_pid > 0)
		kill(second_pid, SIGKILL);
}

/* Fail where a fork may be stuck holding glibc's locks: the children
 * killed, and no exit(). */
#define FAIL_STUCK(...) FAIL_FORK_SAFE(kill_children, NULL, __VA_ARGS__)

/* A message is queued on fd within ms. */
static bool queued(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/*
 * In the watcher thread.  Started: wait until the toucher waits in its
 * fault and the first fork for its FORK, then let the engine read them
 * (at once: nothing else of this process faults now).  The first FORK of
 * the client's own: have the second fork happen now, and return once its
 * FORK is queued.
 */
static void hook(struct serve_engine *e, enum serve_hook_point where, struct serve_mm *mm)
{
	if (where == SERVE_HOOK_STARTED) {
		__atomic_store_n(&started, 1, __ATOMIC_RELEASE);
		/* (one wait after the other: each thread stays where it waits
		 * until the engine reads, after this returns) */
		if (!t_wait_in(&toucher_tid, "handle_userfault", FORK_WAIT_MS))
			FAIL_STUCK("the toucher's fault did not wait within %d ms", FORK_WAIT_MS);
		if (!t_wait_in(&main_tid, "userfaultfd_event_wait_completion", FORK_WAIT_MS))
			FAIL_STUCK("the first fork did not wait for its FORK within %d ms",
				   FORK_WAIT_MS);
		return;
	}
	if (!mm->root || __atomic_add_fetch(&root_forks, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	__atomic_store_n(&second_go, 1, __ATOMIC_RELEASE);
	if (queued(e->u.fd, FORK_WAIT_MS))
		__atomic_store_n(&second_queued, 1, __ATOMIC_RELEASE);
}

/* A child reads every page: the half the server served was there at the
 * fork, the rest comes from the fallback.  0, or 10 + the first bad page. */
static int child(void)
{
	size_t i;

	for (i = 0; i < NPAGES; i++)
		if (!t_ps_page_ok(mem + i * PAGE, i, im.seed))
			return 10 + (int)i;
	return 0;
}

/* Reads a page the server never served: its fault waits for the fallback. */
static void *toucher(void *arg)
{
	(void)arg;
	__atomic_store_n(&toucher_tid, gettid(), __ATOMIC_RELEASE);
	memcpy(touched_page, mem + TOUCHED * PAGE, PAGE);
	__atomic_store_n(&touched, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *second_forker(void *arg)
{
	pid_t pid;

	(void)arg;
	/* (from before the server's death: the client's deadlines come first) */
	if (!t_wait_flag(&second_go, 30000))
		FAIL_STUCK("the first FORK's callback did not run within 30 s");
	pid = fork();
	if (pid == 0)
		_exit(child());
	if (pid < 0)
		FAIL_STUCK("fork: %s", strerror(errno));
	second_pid = pid;
	__atomic_store_n(&second_forked, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int client(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach_forking(&im, 0, "client, before");
	pthread_t forker, touch;
	int ret;

	(void)arg;
	mem = uffd_serve_client_addr(c, 0);
	t_ps_check("client, before", mem, 0, NPAGES / 2, im.seed);
	main_tid = gettid();
	uffd__serve_engine_hook(hook);
	CHECK_EQ(pthread_create(&forker, NULL, second_forker, NULL), 0);
	t_ps_say(up[1]);
	t_ps_hear(down[0], 10000);				/* the server is dead */
	if (!t_wait_flag(&started, 10000))
		FAIL_STUCK("no fallback within 10 s of the server's death");
	/* (no fork is under way yet: a thread may be started) */
	CHECK_EQ(pthread_create(&touch, NULL, toucher, NULL), 0);

	first_pid = fork();
	if (first_pid == 0)
		_exit(child());
	if (first_pid < 0)
		FAIL_STUCK("fork: %s", strerror(errno));
	if (!t_wait_flag(&second_forked, FORK_WAIT_MS))
		FAIL_STUCK("the second fork did not return within %d ms: the fallback's thread "
			   "waits for a lock the fork holds", FORK_WAIT_MS);
	pthread_join(forker, NULL);
	if (!__atomic_load_n(&second_queued, __ATOMIC_ACQUIRE))
		FAIL_STUCK("the second fork's FORK was not queued during the first's callback");
	if (!t_wait_flag(&touched, FORK_WAIT_MS))
		FAIL_STUCK("the toucher's fault was not served within %d ms", FORK_WAIT_MS);
	pthread_join(touch, NULL);
	if (!t_ps_page_ok(touched_page, TOUCHED, im.seed))
		FAIL_STUCK("the toucher read page %d wrong", TOUCHED);
	ret = t_wait_child_fork_safe(first_pid, CHILD_WAIT_MS, kill_children, NULL);
	if (ret)
		FAIL_STUCK("first child: page %d is not the image's", ret - 10);
	ret = t_wait_child_fork_safe(second_pid, CHILD_WAIT_MS, kill_children, NULL);
	if (ret)
		FAIL_STUCK("second child: page %d is not the image's", ret - 10);
	CHECK_EQ(__atomic_load_n(&root_forks, __ATOMIC_ACQUIRE), 2);
	t_ps_check("client, after", mem, 0, NPAGES, im.seed);
	t_ps_finish_alone(c);
	uffd__serve_engine_hook(NULL);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	pid_t server, a;
	int ret;

	t_require(UFFD_FEAT_EVENT_FORK);	/* (the client's is the same) */
	t_ps_make_image(&im, NPAGES, 29);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(up));
	CHECK_OK(pipe(down));
	a = t_ps_spawn(client, NULL);
	t_ps_hear(up[0], 10000);
	t_ps_server_kill(server);
	t_ps_say(down[1]);
	ret = t_ps_join(a, 60000);
	if (ret == T_EXIT_SKIP)
		return ret;
	CHECK_EQ(ret, 0);
	return T_EXIT_PASS;
}
