/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd restore FILE: restore an image (or the chain it ends) into this
 * process - eagerly, or lazily with pages arriving on first touch while a
 * background thread prefetches - and report how it went.  As a tool it
 * proves an image restores; a program restores with uffd_restore_open().
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <uffd/snapshot.h>

#include "uffd.h"

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: uffd restore FILE [--lazy] [--anywhere] [--json]\n\n"
		   "Restore an image into this process (at its recorded addresses unless\n"
		   "--anywhere) and report pages, faults, prefetches and time.\n");
	return status;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lazy", no_argument, NULL, 'l' },
		{ "anywhere", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct uffd_restore_stats st;
	struct uffd_restore *r;
	unsigned flags = 0;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "lajh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': flags |= UFFD_RESTORE_LAZY; break;
		case 'a': flags |= UFFD_RESTORE_ANYWHERE; break;
		case 'j': json = true; break;
		case 'h': return usage(stdout, EXIT_OK);
		default: return usage(stderr, EXIT_USAGE);
		}
	}
	if (optind != argc - 1)
		return usage(stderr, EXIT_USAGE);
	r = uffd_restore_open(argv[optind], flags);
	if (!r) {
		fprintf(stderr, "uffd restore: %s: %s%s\n", argv[optind], strerror(errno),
			errno == EEXIST ? " (something is mapped at the image's addresses: "
					  "try --anywhere)" : "");
		return EXIT_FAILED;
	}
	ret = uffd_restore_wait(r, -1);
	uffd_restore_stats(r, &st);
	if (json)
		printf("{\"file\":\"%s\",\"regions\":%d,\"pages\":%llu,\"faulted\":%llu,"
		       "\"prefetched\":%llu,\"zero\":%llu,\"ms\":%.3f,\"error\":%d}\n",
		       argv[optind], uffd_restore_regions(r), (unsigned long long)st.pages,
		       (unsigned long long)st.faulted, (unsigned long long)st.prefetched,
		       (unsigned long long)st.zero, st.duration_ns / 1e6, ret);
	else
		printf("%s: %d regions, %llu pages (%llu zero) restored %s in %.1f ms%s%s\n",
		       argv[optind], uffd_restore_regions(r), (unsigned long long)st.pages,
		       (unsigned long long)st.zero, flags & UFFD_RESTORE_LAZY ?
		       "lazily" : "eagerly", st.duration_ns / 1e6,
		       ret ? ": " : "", ret ? strerror(-ret) : "");
	uffd_restore_close(r, true);
	return ret ? EXIT_FAILED : EXIT_OK;
}
