/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Accesses that may raise SIGBUS, and what the signal said.  The handler
 * installed by t_sigbus_catch() siglongjmps back into the access that
 * raised the signal, so a test can assert on si_code and si_addr and carry
 * on.  The jump target is per thread, so a worker thread can take the
 * signal while the main thread waits for it; a SIGBUS outside such an
 * access still fails the test.
 */
#ifndef LIBUFFD_TEST_SIGBUS_H
#define LIBUFFD_TEST_SIGBUS_H

#include "harness.h"

struct t_sigbus {
	int code;		/* si_code */
	void *addr;		/* si_addr */
};

/* Install the SIGBUS handler (process-wide); fail if that fails. */
void t_sigbus_catch(void);

/*
 * One access at p from this thread: write *value there, or read it into
 * *value.  True if it raised SIGBUS, whose details are then in *bus (else
 * *bus is zeroed).
 */
bool t_access_catching_sigbus(volatile char *p, bool write, char *value,
			      struct t_sigbus *bus);

/*
 * The si_code a poison marker's SIGBUS carries on this kernel:
 * BUS_MCEERR_AR with CONFIG_MEMORY_FAILURE (which also creates
 * /proc/sys/vm/memory_failure_early_kill), else the generic BUS_ADRERR (x86
 * do_sigbus() only sends the MCE code for memory failure).
 */
int t_poison_sigbus_code(void);

/* A worker thread that reads one byte at addr, catching SIGBUS. */
struct t_sigbus_read {
	pthread_t thread;
	volatile char *addr;
	int done;		/* atomic: 1 when the attempt finished */
	bool got_sigbus;
	struct t_sigbus bus;
	char value;
};
void t_sigbus_read_start(struct t_sigbus_read *r, void *addr);
/* Wait up to ms for the attempt to finish; true if it did. */
bool t_sigbus_read_wait(struct t_sigbus_read *r, int ms);
void t_sigbus_read_join(struct t_sigbus_read *r);

#endif
