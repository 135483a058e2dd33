/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd demo: a tour that shows each working capability on a built-in
 * workload, live, and says what happened.  Each capability is one section;
 * a section that cannot run on this machine says why and the tour goes on.
 * The exit status is 1 if any section that could run went wrong.
 */
#include <getopt.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <uffd/uffd.h>

#include "uffd.h"

#define DEMO_PAGE 4096
#define DEMO_WAIT_MS 5000

/* A thread that touches one page (read or write) the way an application would. */
struct toucher {
	pthread_t thread;
	char *addr;
	const char *text;	/* written when non-NULL */
	char seen[64];		/* what it read afterwards */
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	if (t->text)
		strcpy(t->addr, t->text);
	snprintf(t->seen, sizeof(t->seen), "%s", t->addr);
	return NULL;
}

static int wait_fault(struct uffd *u, struct uffd_event *ev)
{
	int n = uffd_read_events(u, ev, 1, DEMO_WAIT_MS);

	if (n == 1 && ev->type == UFFD_EV_FAULT)
		return 0;
	printf("  no fault message arrived (%s)\n", n < 0 ? strerror(-n) : "timeout");
	return -1;
}

static int demo_missing(void)
{
	static char src[DEMO_PAGE] __attribute__((aligned(DEMO_PAGE)));
	struct toucher t = { 0 };
	struct uffd_event ev;
	struct uffd u;
	char *area;
	int ret = -1;

	if (uffd_open(&u, 0, 0, UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY)) {
		printf("  cannot open a userfaultfd: skipped\n");
		return 0;
	}
	area = mmap(NULL, DEMO_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || uffd_register(&u, area, DEMO_PAGE, UFFD_REG_MISSING, NULL))
		goto out;
	printf("  registered 1 page at %p for MISSING faults\n", (void *)area);
	t.addr = area;
	pthread_create(&t.thread, NULL, touch_main, &t);
	printf("  a worker thread reads the page ...\n");
	if (wait_fault(&u, &ev))
		goto out_join;
	printf("  handler: %s fault (%s) at %#llx\n", uffd_fault_kind_name(ev.fault.kind),
	       ev.fault.write ? "write" : "read", (unsigned long long)ev.fault.addr);
	snprintf(src, sizeof(src), "hello from the fault handler");
	if (uffd_copy(&u, (void *)(uintptr_t)ev.fault.addr, src, DEMO_PAGE, 0, NULL))
		goto out_join;
	printf("  handler: UFFDIO_COPY of a page that says \"%s\"\n", src);
	ret = 0;
out_join:
	if (ret)	/* unblock the worker whatever happened */
		uffd_zeropage(&u, area, DEMO_PAGE, 0, NULL);
	pthread_join(t.thread, NULL);
	if (!ret) {
		printf("  worker: read \"%s\"\n", t.seen);
		ret = strcmp(t.seen, src) ? -1 : 0;
	}
out:
	if (area != MAP_FAILED)
		munmap(area, DEMO_PAGE);
	uffd_close(&u);
	return ret;
}

static int demo_wp(void)
{
	struct toucher t = { 0 };
	char before[64] = "";
	struct uffd_event ev;
	struct uffd u;
	char *area;
	int ret = -1;

	if (uffd_open(&u, UFFD_F(UFFD_FEAT_PAGEFAULT_FLAG_WP), 0,
		      UFFD_NONBLOCK | UFFD_ALLOW_USER_ONLY)) {
		printf("  write-protect faults not available: skipped\n");
		return 0;
	}
	area = mmap(NULL, DEMO_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		goto out;
	strcpy(area, "version 1");
	if (uffd_register(&u, area, DEMO_PAGE, UFFD_REG_WP, NULL) ||
	    uffd_writeprotect(&u, area, DEMO_PAGE, true, 0))
		goto out;
	printf("  page says \"%s\"; write-protected it\n", area);
	t.addr = area;
	t.text = "version 2";
	pthread_create(&t.thread, NULL, touch_main, &t);
	printf("  a worker thread writes \"version 2\" ...\n");
	if (wait_fault(&u, &ev))
		goto out_join;
	snprintf(before, sizeof(before), "%s", area);
	printf("  handler: %s fault (%s) at %#llx; the page still says \"%s\"\n",
	       uffd_fault_kind_name(ev.fault.kind), ev.fault.write ? "write" : "read",
	       (unsigned long long)ev.fault.addr, before);
	printf("  handler: (a snapshot would copy it now) un-protecting\n");
	ret = 0;
out_join:
	uffd_writeprotect(&u, area, DEMO_PAGE, false, 0);
	pthread_join(t.thread, NULL);
	if (!ret) {
		printf("  worker: its write landed, the page says \"%s\"\n", t.seen);
		ret = strcmp(before, "version 1") || strcmp(t.seen, "version 2") ? -1 : 0;
	}
out:
	if (area != MAP_FAILED)
		munmap(area, DEMO_PAGE);
	uffd_close(&u);
	return ret;
}

static int demo_probe(void)
{
	printf("  ");
	probe_summary(stdout);
	printf("  (uffd probe prints the full table)\n");
	return 0;
}

static const struct {
	const char *title;
	int (*run)(void);
} sections[] = {
	{ "What this machine offers", demo_probe },
	{ "A MISSING fault, resolved by copying a page in", demo_missing },
	{ "A WRITE-PROTECT fault: the handler sees the page before the write", demo_wp },
};

int cmd_demo(int argc, char **argv)
{
	size_t i, failed = 0;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: uffd demo\n\nA tour of libuffd's capabilities, live.\n");
		return EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "uffd demo: unexpected argument '%s'\n", argv[1]);
		return EXIT_USAGE;
	}
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		int ret;

		printf("\n== %zu. %s\n", i + 1, sections[i].title);
		fflush(stdout);
		ret = sections[i].run();
		printf("  -> %s\n", ret ? "FAILED" : "ok");
		failed += ret != 0;
	}
	printf("\n%zu of %zu sections ok\n", i - failed, i);
	return failed ? EXIT_FAILED : EXIT_OK;
}
