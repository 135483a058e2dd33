/* A thread reads a page nobody has filled; we fill it on demand. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <uffd/uffd.h>

static void *reader(void *page) { printf("reader saw: %s\n", (char *)page); return NULL; }

int main(void)
{
	static char src[4096] __attribute__((aligned(4096))) = "filled by the handler";
	struct uffd u;
	struct uffd_event ev;
	pthread_t t;
	char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (uffd_open(&u, 0, 0, UFFD_ALLOW_USER_ONLY) ||
	    uffd_register(&u, page, 4096, UFFD_REG_MISSING, NULL))
		return 1;
	pthread_create(&t, NULL, reader, page);		/* it faults and blocks */
	if (uffd_read_events(&u, &ev, 1, -1) != 1 || ev.type != UFFD_EV_FAULT)
		return 1;
	uffd_copy(&u, (void *)(uintptr_t)ev.fault.addr, src, 4096, 0, NULL);
	pthread_join(t, NULL);				/* woken by the copy */
	uffd_close(&u);
	return 0;
}
