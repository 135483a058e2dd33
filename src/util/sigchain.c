/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Handing a signal on to the action libuffd's handler replaced (see
 * sigchain.h).  Only system calls that are async-signal-safe, since this
 * runs inside a handler.
 */
#include <pthread.h>
#include <signal.h>

#include "sigchain.h"

/* Raised by the instruction that faulted: it runs again after a return. */
static bool synchronous_fault(int sig, const siginfo_t *si)
{
	if (si->si_code <= 0)		/* kill(2), sigqueue(3), tgkill(2) */
		return false;
	switch (sig) {
	case SIGBUS:
		/* A memory error found in the background: nothing re-faults. */
		return si->si_code != BUS_MCEERR_AO;
	case SIGSEGV:
	case SIGILL:
	case SIGFPE:
		return true;
	default:
		return false;
	}
}

void uffd__async_signals(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGSEGV);
	sigdelset(set, SIGBUS);
	sigdelset(set, SIGILL);
	sigdelset(set, SIGFPE);
	sigdelset(set, SIGTRAP);
	sigdelset(set, SIGSYS);
}

void uffd__sigchain_forward(const struct sigaction *prev, int sig, siginfo_t *si, void *uc)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t block, old;

	if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
		block = prev->sa_mask;
		if (!(prev->sa_flags & SA_NODEFER))
			sigaddset(&block, sig);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		if (prev->sa_flags & SA_SIGINFO)
			prev->sa_sigaction(sig, si, uc);
		else
			prev->sa_handler(sig);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return;
	}
	if (synchronous_fault(sig, si)) {
		sigaction(sig, &dfl, NULL);
		return;
	}
	if (prev->sa_handler == SIG_IGN)
		return;
	sigaction(sig, &dfl, NULL);
	raise(sig);		/* delivered once the handler returns, if blocked */
}

bool uffd__sigchain_is_ours(int sig, void (*fn)(int, siginfo_t *, void *))
{
	struct sigaction now;

	return !sigaction(sig, NULL, &now) && (now.sa_flags & SA_SIGINFO) &&
	       now.sa_sigaction == fn;
}
