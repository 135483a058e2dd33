/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the page-server tests share: a test image (and the same bytes as a
 * raw memory file) whose every page can be checked exactly, a server run
 * in a child process that says when it listens and reports its counters
 * when stopped, and clients run in children of their own (a client is a
 * process whose memory the server fills; the test process itself stays
 * single-threaded so it can fork them safely).
 */
#ifndef LIBUFFD_TEST_PSERVE_H
#define LIBUFFD_TEST_PSERVE_H

#include <sys/types.h>
#include <uffd/serve.h>

#include "harness.h"

/*
 * Where test images record their one region: free in a fresh child, above
 * where a PIE binary loads (0x5555... plus up to 1 TiB of randomisation),
 * and application memory for every sanitizer (ThreadSanitizer allows
 * 0x5500... to 0x5680...; AddressSanitizer anything above 0x1000...).
 */
#define T_PS_ADDR 0x567000000000ull

struct t_ps_image {
	char dir[256];
	char path[512];		/* the image */
	char raw[512];		/* the same bytes, a raw memory file */
	char sock[512];		/* a socket path for this test's server */
	size_t npages;
	unsigned seed;
};

/*
 * A scratch directory (removed at exit of the test process) holding an
 * image of npages pages in one region at T_PS_ADDR: page i holds
 * t_ps_fill(i, seed), except that every page i with i % 7 == 3 is a hole
 * (zero).  The raw file holds the same bytes.
 */
void t_ps_make_image(struct t_ps_image *im, size_t npages, unsigned seed);
/* The same in an existing directory, left there at exit. */
void t_ps_make_image_in(struct t_ps_image *im, const char *dir, size_t npages, unsigned seed);
/* Page i's contents in the image. */
void t_ps_fill(void *page, size_t i, unsigned seed);
/* Fail naming the first page of mem (npages pages, from page first of the
 * image) that is not exactly the image's. */
void t_ps_check(const char *what, const void *mem, size_t first, size_t npages,
		unsigned seed);
bool t_ps_page_ok(const void *page, size_t i, unsigned seed);

/*
 * Start a server with these options in a child; returns its pid once it
 * listens (fails the test if uffd_serve_new fails).  Its log goes to
 * stderr, each line prefixed "server: ".
 */
pid_t t_ps_server_start(const struct uffd_serve_opts *o);
/* SIGTERM it, reap it (5 s at most), and its counters at the end. */
void t_ps_server_stop(pid_t pid, struct uffd_serve_stats *st);
/* Stop it at once, clients or not (uffd_serve_free() with them still
 * there: 20 s at most), and reap it; its counters before the free. */
void t_ps_server_stop_now(pid_t pid, struct uffd_serve_stats *st);
/* SIGKILL it and reap it. */
void t_ps_server_kill(pid_t pid);

/* fn(arg) in a child (which _exits with its return); the child's pid. */
pid_t t_ps_spawn(int (*fn)(void *), void *arg);
/* Its exit code within ms, or fail. */
int t_ps_join(pid_t pid, int ms);

/* A client of the server at im->sock with these flags: attach or fail
 * with the reason (in a client child: exits 1). */
struct uffd_serve_client *t_ps_attach(const struct t_ps_image *im, unsigned flags);

/* A client that forks: t_ps_attach(), skip the test unless its
 * userfaultfd has EVENT_FORK, and its first 32 pages checked (what says
 * whose). */
struct uffd_serve_client *t_ps_attach_forking(const struct t_ps_image *im, unsigned flags,
					      const char *what);

/* The client finishes on its own (within 10 s) after its server stopped
 * or died: done, by the fallback, with no error; then detach it. */
void t_ps_finish_alone(struct uffd_serve_client *c);

/* A connection to the server at im->sock (fail if there is none). */
int t_ps_connect(const struct t_ps_image *im);
/* A libuffd frame of type with payload, and pass_fd with it unless -1
 * (fail if it cannot be sent). */
void t_ps_send_frame(int fd, uint16_t type, const void *payload, uint32_t len, int pass_fd);

/* Steps between a test and its children, over pipes: say one byte on fd;
 * hear one within ms or fail ("the other side did not get this far"). */
void t_ps_say(int fd);
void t_ps_hear(int fd, int ms);

/* A second client, in a child: when fd_go says so, attach, check every
 * page of the image (what: who it is, in the failure), say so on fd_done
 * and detach.  Returns 0 for t_ps_spawn(). */
int t_ps_second_client(const struct t_ps_image *im, int fd_go, int fd_done, const char *what);

/* Whether the mapping at addr is registered for MISSING faults (its
 * VmFlags in /proc/self/smaps say "um"). */
bool t_ps_registered(const void *addr);

/* In a child: fail with exit code 1 after saying why (FAIL exits too). */
#define T_CHILD_CHECK(cond) CHECK(cond)

#endif
