/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Two "hosts" on one machine, for migrations between namespaces: each of
 * two child processes moves into a network namespace of its own, and the
 * parent joins them with a veth pair (addresses from the benchmarking range
 * 198.18.0.0/15), its rate shaped by tbf.  The namespaces have no name:
 * they go away with the processes, and the veth with them, however the
 * run ends (a killed test leaves nothing behind).  This kernel has no
 * netem, so a delay is added by a relay (below) instead.
 */
#ifndef UFFD_TOOL_TWOHOSTS_H
#define UFFD_TOOL_TWOHOSTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define TWOHOSTS_ADDR_A "198.18.0.1"	/* the source's end */
#define TWOHOSTS_ADDR_B "198.18.0.2"	/* the destination's end */

/* Can this process make network namespaces and run ip(8)?  0, or -errno
 * with a reason in why. */
int twohosts_available(char *why, size_t len);

/*
 * In a child, first thing: move into a new network namespace and tell the
 * parent (ready_fd), then wait for the veth (go_fd) and bring up its end
 * (a: the source's, else the destination's) with the address and, when
 * mbit > 0, a tbf of that rate.  0 or -errno.
 */
int twohosts_child_enter(int ready_fd, int go_fd, bool a, unsigned mbit, char *why, size_t len);

/* In the parent, once both children said they are ready: the veth pair
 * between their namespaces, named after this process.  0 or -errno. */
int twohosts_link(pid_t a, pid_t b, char *why, size_t len);

/*
 * A relay that delays: listens on bind_host (*port receives the port),
 * and for each connection accepted connects to host:to_port and forwards
 * both ways, holding each chunk for delay_ms before sending it on.  Runs
 * as a child process (killed with its parent); returns its pid or -errno.
 * Put it on the receiving side of the bottleneck: the sender's packets
 * then reach the shaped link with their own sockets' priority.
 */
pid_t delay_relay_start(const char *bind_host, const char *host, int to_port, double delay_ms,
			int *port);

#endif
