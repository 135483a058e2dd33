/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Signal handlers that share a signal with the program: libuffd's SIGSEGV
 * handler (the mprotect tracker, the in-thread runtime's guarded copies)
 * and SIGBUS handler (the in-thread runtime) take the signals that are
 * theirs and hand every other one to the action they replaced, as if
 * libuffd were not there.
 */
#ifndef LIBUFFD_UTIL_SIGCHAIN_H
#define LIBUFFD_UTIL_SIGCHAIN_H

#include <signal.h>
#include <stdbool.h>

/*
 * Hand sig to prev, the action that was installed before ours, from inside
 * our handler.  A handler is called with the mask it asked for (its
 * sa_mask, and sig unless SA_NODEFER).  SIG_DFL and SIG_IGN: a fault
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE raised by an instruction) puts the
 * default action back and returns, so that the instruction faults again and
 * the process dies as it would have, with the right address in its core
 * (the kernel does not let a fault be ignored either); any other signal is
 * ignored, or raised again under the default action.  Async-signal-safe.
 */
void uffd__sigchain_forward(const struct sigaction *prev, int sig, siginfo_t *si, void *uc);

/*
 * Every signal but those an instruction raises (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE, SIGTRAP, SIGSYS): what libuffd's own threads and its signal
 * handlers hold off, so that no program handler interrupts them - one
 * that touched memory an in-thread fault resolves could wait for the very
 * thread it interrupted.
 */
void uffd__async_signals(sigset_t *set);

/* Whether the action installed for sig now is fn (an SA_SIGINFO handler). */
bool uffd__sigchain_is_ours(int sig, void (*fn)(int, siginfo_t *, void *));

#endif
