/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A relay between a migration's source and destination, for faults on the
 * link: it forwards one connection's bytes both ways, and on the way to
 * the destination it can flip a byte of a page (the k-th PAGES message's
 * first data byte), hold everything back until told, or break the
 * connection (shut both sides down) once so many bytes went through.
 * Messages to the destination are forwarded whole (the relay reads the
 * 16-byte header and its length), so the actions land on message
 * boundaries.
 */
#ifndef LIBUFFD_TEST_RELAY_H
#define LIBUFFD_TEST_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct t_relay {
	/* set before t_relay_start */
	int corrupt_pages;	/* flip a byte of the k-th PAGES with data (0: no) */
	uint64_t cut_after;	/* break after this many bytes forwarded to
				   the destination (0: never) */
	int hold;		/* atomic: while set, nothing goes to the destination */
	int hold_after;		/* hold once a message of this type went (0: no) */
	/* state */
	int src_fd, dst_fd;	/* the relay's ends */
	pthread_t thread;
	int stop, cut;		/* atomic */
	uint64_t forwarded;	/* atomic: bytes to the destination */
	int pages_seen;
};

/* Relay between src_fd and dst_fd (its ends of two connections). */
void t_relay_start(struct t_relay *r, int src_fd, int dst_fd);
/* Break the connection now (both sides see it shut down). */
void t_relay_cut(struct t_relay *r);
/* Stop and join (the fds are closed). */
void t_relay_stop(struct t_relay *r);

#endif
