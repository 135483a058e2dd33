/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mm_zalloc and friends: one anonymous mapping per allocation, its size in
 * a 64-byte header (keeps the caller's memory cache-line aligned). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "mmalloc.h"
#include "sigchain.h"

#define HDR 64

static size_t mapped_size(size_t size)
{
	return (size + HDR + 4095) & ~(size_t)4095;
}

void *mm_zalloc(size_t size)
{
	size_t len = mapped_size(size);
	char *p;

	if (size > SIZE_MAX - HDR - 4095) {
		errno = ENOMEM;
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	*(size_t *)p = len;
	return p + HDR;
}

void mm_free(void *p)
{
	char *base;

	if (!p)
		return;
	base = (char *)p - HDR;
	munmap(base, *(size_t *)base);
}

void *mm_realloc(void *p, size_t size)
{
	char *base, *nbase;
	size_t old, len;

	if (!p)
		return mm_zalloc(size);
	base = (char *)p - HDR;
	old = *(size_t *)base;
	len = mapped_size(size);
	if (len == old)
		return p;
	/* New pages of an anonymous mapping are zero already. */
	nbase = mremap(base, old, len, MREMAP_MAYMOVE);
	if (nbase == MAP_FAILED)
		return NULL;
	*(size_t *)nbase = len;
	return nbase + HDR;
}

/* The servicing threads' batches and events live on their stacks. */
#define THREAD_STACK (1UL << 20)

int mm_thread_create(pthread_t *thread, void **stack, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	sigset_t mask;
	int ret;

	*stack = mmap(NULL, THREAD_STACK, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (*stack == MAP_FAILED) {
		*stack = NULL;
		return -errno;
	}
	pthread_attr_init(&attr);
	/* The program's handlers of asynchronous signals never run on our
	 * threads: they hold libuffd's locks and claims (sigchain.h).  The
	 * signals go to the program's own threads; faults still raise theirs. */
	uffd__async_signals(&mask);
	ret = -pthread_attr_setstack(&attr, *stack, THREAD_STACK);
	if (!ret)
		ret = -pthread_attr_setsigmask_np(&attr, &mask);
	if (!ret)
		ret = -pthread_create(thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (ret) {
		munmap(*stack, THREAD_STACK);
		*stack = NULL;
	}
	return ret;
}

void mm_thread_join(pthread_t thread, void *stack)
{
	pthread_join(thread, NULL);
	if (stack)
		munmap(stack, THREAD_STACK);
}
