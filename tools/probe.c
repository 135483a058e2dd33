/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd probe: what this kernel and machine support, and how libuffd will
 * use it.  Every answer comes from the library's probe table; this file
 * only lays it out (a table for people, one JSON object with --json).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <uffd/track.h>

#include "args.h"
#include "uffd.h"

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled. */
static void read_thp(char *buf, size_t size)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "", *l, *r;

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		l = strchr(line, '[');
		r = l ? strchr(l, ']') : NULL;
		if (l && r) {
			*r = '\0';
			snprintf(buf, size, "%s", l + 1);
		}
	}
	fclose(f);
}

static const char *how_name(unsigned how)
{
	if (how & UFFD_OPENED_DEV)
		return how & UFFD_OPENED_USER_ONLY ? "/dev/userfaultfd (user-mode only)" :
						     "/dev/userfaultfd";
	if (how & UFFD_OPENED_SYSCALL)
		return how & UFFD_OPENED_USER_ONLY ? "userfaultfd(2) user-mode only" :
						     "userfaultfd(2)";
	return "none";
}

static const char *answer(int v)
{
	return v == 1 ? "yes" : v == 0 ? "no" : "unknown";
}

struct machine {
	struct utsname uts;
	long nr_hugepages, free_hugepages, max_map_count, unprivileged;
	char thp[32];
	const char *open_path;
	int open_err;
	const char *backend;
};

static void read_machine(struct machine *m)
{
	struct uffd u;

	uname(&m->uts);
	m->nr_hugepages = read_long("/proc/sys/vm/nr_hugepages");
	m->free_hugepages =
		read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
	m->max_map_count = read_long("/proc/sys/vm/max_map_count");
	m->unprivileged = read_long("/proc/sys/vm/unprivileged_userfaultfd");
	read_thp(m->thp, sizeof(m->thp));
	m->open_err = uffd_open(&u, 0, 0, UFFD_ALLOW_USER_ONLY);
	m->open_path = m->open_err ? "none" : how_name(u.how);
	uffd_close(&u);
	m->backend = uffd_track_backend_name(uffd_tracking_backend());
}

static void print_json(const struct machine *m)
{
	int f;

	printf("{");
	json_str(stdout, "kernel", m->uts.release, true);
	printf("\"usable\":%s,", m->open_err ? "false" : "true");
	json_str(stdout, "open_path", m->open_path, true);
	json_str(stdout, "tracking_backend", m->backend, true);
	json_str(stdout, "thp", m->thp, true);
	printf("\"nr_hugepages\":%ld,\"free_hugepages\":%ld,", m->nr_hugepages,
	       m->free_hugepages);
	printf("\"max_map_count\":%ld,\"unprivileged_userfaultfd\":%ld,",
	       m->max_map_count, m->unprivileged);
	printf("\"kernel_features\":\"0x%llx\",\"features\":{",
	       (unsigned long long)uffd_kernel_features());
	for (f = 0; f < UFFD_FEAT_COUNT; f++) {
		int v;

		if (!uffd_feature_name(f))
			continue;
		v = uffd_feature_supported(f);
		printf("%s\"%s\":%s", f ? "," : "", uffd_feature_name(f),
		       v == 1 ? "true" : v == 0 ? "false" : "null");
	}
	printf("}}\n");
}

static void print_row(const char *what, enum uffd_feature f, const char *use)
{
	printf("  %-22s %-8s %s\n", what, answer(uffd_feature_supported(f)), use);
}

static void print_table(const struct machine *m)
{
	static const struct { enum uffd_feature f; const char *use; } kernel[] = {
		{ UFFD_FEAT_PAGEFAULT_FLAG_WP, "write-protect faults (snapshots, tracking)" },
		{ UFFD_FEAT_EVENT_FORK, "follow memory into forked children" },
		{ UFFD_FEAT_EVENT_REMAP, "follow mremap of registered ranges" },
		{ UFFD_FEAT_EVENT_REMOVE, "learn of MADV_DONTNEED/REMOVE" },
		{ UFFD_FEAT_EVENT_UNMAP, "learn of munmap" },
		{ UFFD_FEAT_MISSING_SHMEM, "MISSING faults on shmem/memfd" },
		{ UFFD_FEAT_MISSING_HUGETLBFS, "MISSING faults on hugetlbfs" },
		{ UFFD_FEAT_MINOR_SHMEM, "MINOR faults on shmem (UFFDIO_CONTINUE)" },
		{ UFFD_FEAT_MINOR_HUGETLBFS, "MINOR faults on hugetlbfs" },
		{ UFFD_FEAT_WP_HUGETLBFS_SHMEM, "write-protect shmem and hugetlbfs" },
		{ UFFD_FEAT_WP_UNPOPULATED, "protect never-touched pages too" },
		{ UFFD_FEAT_WP_ASYNC, "kernel resolves WP faults (dirty tracking)" },
		{ UFFD_FEAT_SIGBUS, "SIGBUS instead of a fault message" },
		{ UFFD_FEAT_THREAD_ID, "faulting thread id in messages" },
		{ UFFD_FEAT_EXACT_ADDRESS, "exact fault address" },
		{ UFFD_FEAT_POISON, "UFFDIO_POISON (SIGBUS on access)" },
		{ UFFD_FEAT_MOVE, "UFFDIO_MOVE (zero-copy fill)" },
	};
	static const char *const types[] = { "private anon", "shmem/memfd", "hugetlbfs" };
	size_t i;

	printf("kernel %s: userfaultfd %s\n", m->uts.release,
	       m->open_err ? "NOT usable" : "usable");
	if (m->open_err)
		printf("  (open failed: %s)\n", strerror(-m->open_err));
	printf("\nopening                  answer   \n");
	print_row("/dev/userfaultfd", UFFD_FEAT_DEV_USERFAULTFD, "");
	print_row("userfaultfd(2)", UFFD_FEAT_SYSCALL, "");
	print_row("user-mode only", UFFD_FEAT_USER_MODE_ONLY, "");
	printf("  libuffd opens via:     %s\n", m->open_path);

	printf("\nkernel feature           answer   used for\n");
	for (i = 0; i < sizeof(kernel) / sizeof(kernel[0]); i++)
		print_row(uffd_feature_name(kernel[i].f), kernel[i].f, kernel[i].use);

	printf("\nregister mode            missing  wp       minor\n");
	for (i = 0; i < 3; i++) {
		enum uffd_feature base = UFFD_FEAT_REG_MISSING_ANON + 3 * i;

		printf("  %-22s %-8s %-8s %s\n", types[i],
		       answer(uffd_feature_supported(base)),
		       answer(uffd_feature_supported(base + 1)),
		       answer(uffd_feature_supported(base + 2)));
	}

	printf("\nresolve ioctl            answer\n");
	for (i = UFFD_FEAT_IOCTL_COPY; i <= UFFD_FEAT_IOCTL_POISON; i++)
		print_row(uffd_feature_name(i) + strlen("IOCTL_"), i, "");

	printf("\ndirty tracking           answer\n");
	print_row("PAGEMAP_SCAN", UFFD_FEAT_PAGEMAP_SCAN, "collect + re-arm in one call");
	print_row("soft-dirty", UFFD_FEAT_SOFT_DIRTY, "probed by effect (bit 55)");
	printf("  backend chosen:        %s\n", m->backend);

	printf("\nmachine\n");
	printf("  hugetlb 2 MiB pages    %ld reserved, %ld free%s\n", m->nr_hugepages,
	       m->free_hugepages,
	       m->nr_hugepages > 0 ? "" : " (root can reserve: vm.nr_hugepages)");
	printf("  transparent hugepages  %s\n", m->thp);
	printf("  vm.max_map_count       %ld (bounds mprotect tracking to ~%ld pages)\n",
	       m->max_map_count, m->max_map_count > 0 ? m->max_map_count / 2 : 0);
	printf("  vm.unprivileged_userfaultfd %ld%s\n", m->unprivileged,
	       m->unprivileged == 0 ? " (others need user-mode-only or /dev/userfaultfd)" : "");
}

/* Used by the demo too: the short summary. */
void probe_summary(FILE *f)
{
	struct machine m;

	read_machine(&m);
	fprintf(f, "kernel %s, userfaultfd %s via %s; %d of 17 kernel features; "
		   "dirty tracking: %s\n", m.uts.release,
		m.open_err ? "NOT usable" : "usable", m.open_path,
		__builtin_popcountll(uffd_kernel_features()), m.backend);
}

int cmd_probe(int argc, char **argv)
{
	bool json = false;
	const struct arg_opt opts[] = {
		OPT_FLAG("json", 'j', &json, "the same facts as one JSON object"),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd probe", .synopsis = "[--json]",
		.about = "What this kernel supports and how libuffd will use it.\n"
			 "Exit 0 if a userfaultfd can be opened at all, 1 if not.\n",
		.opts = opts,
	};
	struct machine m;
	int ret;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	read_machine(&m);
	if (json)
		print_json(&m);
	else
		print_table(&m);
	return m.open_err ? EXIT_FAILED : EXIT_OK;
}
