/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "All writable anonymous memory of this process", from /proc/self/maps.
 *
 * Taken: private and shared anonymous mappings ([heap], unnamed, memfd,
 * /dev/zero, SysV shm, hugetlb).  Left out, each with a line saying why:
 * anything not writable, file-backed mappings (their contents live in the
 * file), the kernel's [vvar]/[vdso]/[vsyscall], the main [stack], and the
 * static data of shared libraries (the anonymous mapping right after a
 * library's file mapping: libc's and libuffd's own globals live there).
 *
 * The list is taken before uffd_snap_begin(), whose own state is all
 * allocated afterwards in fresh mappings (util/mmalloc.h): the threads
 * that serve the snapshot never write to memory they protect.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uffd/snapshot.h>

#define HUGE_2M (2UL << 20)

struct mapping {
	uint64_t start, end;
	char perms[5];
	char path[256];
};

static bool parse_line(const char *line, struct mapping *m)
{
	unsigned long long start, end, off;
	unsigned devmaj, devmin;
	unsigned long inode;
	int n = 0;

	m->path[0] = '\0';
	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %lu %n", &start, &end, m->perms,
		   &off, &devmaj, &devmin, &inode, &n) < 7)
		return false;
	m->start = start;
	m->end = end;
	if (n > 0) {
		snprintf(m->path, sizeof(m->path), "%s", line + n);
		m->path[strcspn(m->path, "\n")] = '\0';
	}
	return true;
}

static bool is_anonymous(const char *path)
{
	static const char *const prefixes[] = { "[heap]", "[anon:", "/memfd:", "/dev/zero",
						"/SYSV", "/anon_hugepage" };
	size_t i;

	if (!path[0])
		return true;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(path, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

static bool is_shared_library(const char *path)
{
	return path[0] == '/' && strstr(path, ".so");
}

static void note(char *buf, size_t len, size_t *used, const struct mapping *m,
		 const char *why)
{
	int n;

	if (!buf || *used >= len)
		return;
	n = snprintf(buf + *used, len - *used, "%llx-%llx %s %s: %s\n",
		     (unsigned long long)m->start, (unsigned long long)m->end, m->perms,
		     m->path[0] ? m->path : "(anonymous)", why);
	if (n > 0)
		*used += (size_t)n;
}

int uffd_snap_all_regions(struct uffd_image_region **out, char *skipped, size_t skipped_len)
{
	struct uffd_image_region *v = NULL;
	struct mapping m, prev = { 0 };
	size_t used = 0;
	char line[512];
	int n = 0, cap = 0;
	FILE *f;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (skipped && skipped_len)
		skipped[0] = '\0';
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		const char *why = NULL;
		bool after_library;

		if (!parse_line(line, &m))
			continue;
		after_library = prev.end == m.start && is_shared_library(prev.path);
		if (m.perms[0] != 'r' || m.perms[1] != 'w')
			why = NULL;	/* not writable: nothing to note, it cannot change */
		else if (!strcmp(m.path, "[stack]"))
			why = "the main thread's stack";
		else if (m.path[0] == '[' && strcmp(m.path, "[heap]") && strncmp(m.path, "[anon:", 6))
			why = "kernel mapping";
		else if (!is_anonymous(m.path))
			why = "file-backed (its contents are in the file)";
		else if (!m.path[0] && after_library)
			why = "a shared library's static data";
		if (m.perms[0] == 'r' && m.perms[1] == 'w' && !why) {
			if (n == cap) {
				struct uffd_image_region *nv;

				cap = cap ? 2 * cap : 64;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					fclose(f);
					return -ENOMEM;
				}
				v = nv;
			}
			v[n++] = (struct uffd_image_region){
				.addr = m.start, .len = m.end - m.start,
				.page_size = strstr(m.path, "anon_hugepage") ? HUGE_2M : 4096,
				.flags = m.perms[3] == 's' ? UFFD_IMAGE_SHMEM : UFFD_IMAGE_ANON,
			};
		} else if (why) {
			note(skipped, skipped_len, &used, &m, why);
		}
		prev = m;
	}
	fclose(f);
	*out = v;
	return n;
}
