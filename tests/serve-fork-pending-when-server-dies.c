/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client forks while its server is alive but not reading (stopped); the
 * server is killed with the fork still waiting for its FORK to be read,
 * and the fork returns: the client's take-over waits for no lock that the
 * fork holds.  glibc's fork() holds the allocator's locks (and stdio's and
 * pthread_atfork's) across the system call, and with EVENT_FORK that call
 * waits until its FORK message is read - here by nobody but the client,
 * once it knows its server is dead.  A take-over that allocated (checking
 * the image, starting the fallback's threads) before it read that FORK
 * would wait for the fork, and the fork for it: the client's faults, forks
 * and exit() stuck for ever.
 *
 * A client of a demand-only server touches half its memory.  The server
 * is stopped (SIGSTOP); threads of the client, one after the other, read
 * a page the server never served (and wait in the fault), give back pages
 * it never served (madvise DONTNEED: they wait for their REMOVE to be
 * read), move others (mremap: REMAP) and fork (FORK); the server is
 * killed.  The fork must return, the fault must be served, the pages
 * given back must read zero and the moved ones the image's where they
 * are now, the child must read the image's pages too - it is served by
 * the client, whose server never heard of it - and the client must finish
 * alone, with no error: what the server never read is followed as if it
 * had told the client.  A stuck fork is reported and the client ends with
 * _exit(): exit() would wait for the locks the fork holds.
 */
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/pserve.h"

#define NPAGES 64
#define TOUCHED 48		/* a page the server never served (not a hole) */
/* Never served either: given back, and moved. */
#define REMOVED 36
#define NREMOVED 4
#define MOVED 40
#define NMOVED 8
/* Deadlines of the waits a stuck fork would make endless. */
#define WAIT_MS 5000
#define CHILD_WAIT_MS 10000

static struct t_ps_image im;
static int up[2], down[2];		/* test <-> client */
static char *mem, *moved;		/* moved: where MOVED goes */
static pid_t child_pid = -1;
static pid_t toucher_tid, remover_tid, mover_tid, forker_tid;	/* atomic */
static int touched;		/* atomic: the toucher read its page */
static char touched_page[PAGE];
static int removed, remapped;	/* atomic: madvise and mremap returned 0 */
static int fork_go;		/* atomic: the main thread says fork */
static int forked;		/* atomic: fork() returned in the parent */

/* No child is left waiting for pages nobody will serve. */
static void kill_child(void *arg)
{
	(void)arg;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
}

/* Fail where a fork may be stuck holding glibc's locks: the child killed,
 * and no exit(). */
#define FAIL_STUCK(...) FAIL_FORK_SAFE(kill_child, NULL, __VA_ARGS__)

/* Wait up to ms for *flag (atomic).  poll(), not usleep() (which
 * ThreadSanitizer makes wait for a lock that its fork() holds), and no
 * allocation: a fork may be under way. */
static bool wait_flag(const int *flag, int ms)
{
	int waited;

	for (waited = 0; waited < ms; waited++) {
		if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
			return true;
		poll(NULL, 0, 1);
	}
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

/* t_ps_hear(), failing with FAIL_STUCK. */
static void hear(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;

	if (poll(&p, 1, ms) != 1 || read(fd, &b, 1) != 1)
		FAIL_STUCK("the test did not get this far within %d ms", ms);
}

/* The image's page i is at p. */
static bool page_ok(const char *p, size_t i)
{
	return t_ps_page_ok(p, i, im.seed);
}

/* The child reads the image's pages (the half the server served was there
 * at the fork, the rest comes from the client), the moved ones where they
 * went; not the given-back ones, which were given back in its parent as
 * it was forked.  0, or 10 + the first bad page. */
static int child(void)
{
	size_t i;

	for (i = 0; i < NPAGES; i++) {
		if (i >= REMOVED && i < REMOVED + NREMOVED)
			continue;
		if (i >= MOVED && i < MOVED + NMOVED) {
			if (!page_ok(moved + (i - MOVED) * PAGE, i))
				return 10 + (int)i;
		} else if (!page_ok(mem + i * PAGE, i)) {
			return 10 + (int)i;
		}
	}
	return 0;
}

/* Reads a page the server never served: its fault waits. */
static void *toucher(void *arg)
{
	(void)arg;
	__atomic_store_n(&toucher_tid, gettid(), __ATOMIC_RELEASE);
	memcpy(touched_page, mem + TOUCHED * PAGE, PAGE);
	__atomic_store_n(&touched, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Gives back pages never served: waits until their REMOVE is read. */
static void *remover(void *arg)
{
	(void)arg;
	__atomic_store_n(&remover_tid, gettid(), __ATOMIC_RELEASE);
	if (!madvise(mem + REMOVED * PAGE, NREMOVED * PAGE, MADV_DONTNEED))
		__atomic_store_n(&removed, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Moves pages never served: waits until their REMAP is read. */
static void *mover(void *arg)
{
	(void)arg;
	__atomic_store_n(&mover_tid, gettid(), __ATOMIC_RELEASE);
	if (mremap(mem + MOVED * PAGE, NMOVED * PAGE, NMOVED * PAGE,
		   MREMAP_MAYMOVE | MREMAP_FIXED, moved) == moved)
		__atomic_store_n(&remapped, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *forker(void *arg)
{
	pid_t pid;

	(void)arg;
	__atomic_store_n(&forker_tid, gettid(), __ATOMIC_RELEASE);
	if (!wait_flag(&fork_go, 30000))
		FAIL_STUCK("the main thread did not say fork within 30 s");
	pid = fork();
	if (pid == 0)
		_exit(child());
	if (pid < 0)
		FAIL_STUCK("fork: %s", strerror(errno));
	child_pid = pid;
	__atomic_store_n(&forked, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void check_zero(const char *what, const char *p, size_t npages)
{
	static const char zero[PAGE];
	size_t i;

	for (i = 0; i < npages; i++)
		t_check_bytes(what, p + i * PAGE, zero, PAGE);
}

/* Start fn in a thread and wait until *tid waits in want. */
static pthread_t start_waiting(void *(*fn)(void *), const pid_t *tid, const char *want,
			       const char *who)
{
	pthread_t t;

	CHECK_EQ(pthread_create(&t, NULL, fn, NULL), 0);
	if (!t_wait_in(tid, want, WAIT_MS))
		FAIL_STUCK("the %s did not wait in %s within %d ms", who, want, WAIT_MS);
	return t;
}

static int client(void *arg)
{
	struct uffd_serve_client *c = t_ps_attach_forking(&im, 0, "client, before");
	pthread_t fork_thread, touch_thread, remove_thread, move_thread;
	int ret;

	(void)arg;
	mem = uffd_serve_client_addr(c, 0);
	t_ps_check("client, before", mem, 0, NPAGES / 2, im.seed);
	moved = mmap(NULL, NMOVED * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(moved != MAP_FAILED);
	/* The forker's thread before the fork: starting one allocates. */
	CHECK_EQ(pthread_create(&fork_thread, NULL, forker, NULL), 0);
	t_ps_say(up[1]);
	t_ps_hear(down[0], 10000);				/* the server is stopped */
	/* Queued in this order: a fault, REMOVE, REMAP, FORK. */
	touch_thread = start_waiting(toucher, &toucher_tid, "handle_userfault", "toucher");
	remove_thread = start_waiting(remover, &remover_tid, "userfaultfd_event_wait_completion",
				      "remover");
	move_thread = start_waiting(mover, &mover_tid, "userfaultfd_event_wait_completion",
				    "mover");
	__atomic_store_n(&fork_go, 1, __ATOMIC_RELEASE);
	if (!t_wait_in(&forker_tid, "userfaultfd_event_wait_completion", WAIT_MS))
		FAIL_STUCK("the fork did not wait for its FORK within %d ms", WAIT_MS);
	if (__atomic_load_n(&touched, __ATOMIC_ACQUIRE))
		FAIL_STUCK("the toucher's fault was served by a stopped server");
	if (__atomic_load_n(&removed, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&remapped, __ATOMIC_ACQUIRE))
		FAIL_STUCK("madvise or mremap returned with the server stopped");
	t_ps_say(up[1]);
	hear(down[0], 10000);					/* the server is dead */

	if (!wait_flag(&forked, WAIT_MS))
		FAIL_STUCK("the fork did not return within %d ms of the server's death: the "
			   "take-over waits for a lock the fork holds", WAIT_MS);
	pthread_join(fork_thread, NULL);
	if (!wait_flag(&touched, WAIT_MS))
		FAIL_STUCK("the toucher's fault was not served within %d ms", WAIT_MS);
	pthread_join(touch_thread, NULL);
	if (!page_ok(touched_page, TOUCHED))
		FAIL_STUCK("the toucher read page %d wrong", TOUCHED);
	pthread_join(remove_thread, NULL);
	pthread_join(move_thread, NULL);
	if (!__atomic_load_n(&removed, __ATOMIC_ACQUIRE) ||
	    !__atomic_load_n(&remapped, __ATOMIC_ACQUIRE))
		FAIL_STUCK("madvise or mremap failed");
	ret = t_wait_child_fork_safe(child_pid, CHILD_WAIT_MS, NULL, NULL);
	if (ret)
		FAIL_STUCK("child: page %d is not the image's", ret - 10);
	t_ps_check("client, before the removed", mem, 0, REMOVED, im.seed);
	check_zero("client, removed", mem + REMOVED * PAGE, NREMOVED);
	t_ps_check("client, moved", moved, MOVED, NMOVED, im.seed);
	t_ps_check("client, after the moved", mem + (MOVED + NMOVED) * PAGE, MOVED + NMOVED,
		   NPAGES - MOVED - NMOVED, im.seed);
	t_ps_finish_alone(c);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true);
	pid_t server, a;
	int ret, status;

	t_require(UFFD_FEAT_EVENT_FORK);	/* (the client's is the same) */
	t_ps_make_image(&im, NPAGES, 31);
	so.socket_path = im.sock;
	so.image = im.path;
	server = t_ps_server_start(&so);
	CHECK_OK(pipe(up));
	CHECK_OK(pipe(down));
	a = t_ps_spawn(client, NULL);
	t_ps_hear(up[0], 10000);
	/* Alive, and reading nothing: what the client queues stays queued. */
	CHECK_OK(kill(server, SIGSTOP));
	CHECK_EQ(waitpid(server, &status, WUNTRACED), server);
	CHECK(WIFSTOPPED(status));
	t_ps_say(down[1]);
	t_ps_hear(up[0], 20000);		/* four messages wait to be read */
	t_ps_server_kill(server);
	t_ps_say(down[1]);
	ret = t_ps_join(a, 60000);
	if (ret == T_EXIT_SKIP)
		return ret;
	CHECK_EQ(ret, 0);
	return T_EXIT_PASS;
}
