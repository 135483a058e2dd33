/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd restore FILE: restore an image (or the chain it ends) into this
 * process - eagerly, or lazily with pages arriving on first touch while a
 * background thread prefetches - and report how it went.  As a tool it
 * proves an image restores; a program restores with uffd_restore_open().
 * A failure names the file at fault in the chain, and where the damage is
 * (uffd_image_chain_check()).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <uffd/image.h>
#include <uffd/snapshot.h>

#include "args.h"
#include "uffd.h"

/*
 * Why the restore of path failed with err: the file of the chain at fault
 * and the offset of the damage when the chain check finds them, else err
 * against path.
 */
static void explain(const char *path, int err)
{
	char file[PATH_MAX];
	uint64_t off = 0;
	int found;

	found = err == EEXIST || err == ENOMEM ? 0 :
		uffd_image_chain_check(path, file, sizeof(file), &off);
	if (found == -EBADMSG)
		fprintf(stderr, "uffd restore: %s: not a sound image (bad structure, checksum "
			"or parent link) at offset %" PRIu64 "\n", file, off);
	else if (found == -EINVAL || found == -EISDIR)
		fprintf(stderr, "uffd restore: %s: not a regular file\n", file);
	else if (found == -EPROTO)
		fprintf(stderr, "uffd restore: %s: image format version not readable by this "
			"libuffd (reads 1 to %d)\n", file, UFFD_IMAGE_VERSION);
	else if (found < 0 && *file)
		fprintf(stderr, "uffd restore: %s: %s\n", file, strerror(-found));
	else
		fprintf(stderr, "uffd restore: %s: %s%s\n", path, strerror(err),
			err == EEXIST ? " (something is mapped at the image's addresses: "
					"try --anywhere)" : "");
}

int cmd_restore(int argc, char **argv)
{
	bool lazy = false, anywhere = false, json = false;
	const struct arg_opt opts[] = {
		OPT_FLAG("lazy", 'l', &lazy, "map now, fill on first touch (and a "
			 "background prefetch)"),
		OPT_FLAG("anywhere", 'a', &anywhere, "new mappings wherever the kernel puts "
			 "them, not the image's addresses"),
		OPT_FLAG("json", 'j', &json, "one JSON object"),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd restore",
		.synopsis = "FILE [--lazy] [--anywhere] [--json]",
		.about = "Restore an image into this process (at its recorded addresses unless\n"
			 "--anywhere) and report pages, faults, prefetches and time.\n",
		.opts = opts, .min_args = 1, .max_args = 1, .arg_name = "FILE",
	};
	struct uffd_restore_stats st;
	struct uffd_restore *r;
	unsigned flags = 0;
	const char *file;
	int ret;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	file = spec.args[0];
	if (lazy)
		flags |= UFFD_RESTORE_LAZY;
	if (anywhere)
		flags |= UFFD_RESTORE_ANYWHERE;
	r = uffd_restore_open(file, flags);
	if (!r) {
		explain(file, errno);
		return EXIT_FAILED;
	}
	ret = uffd_restore_wait(r, -1);
	uffd_restore_stats(r, &st);
	if (json)
		printf("{\"file\":\"%s\",\"regions\":%d,\"pages\":%llu,\"faulted\":%llu,"
		       "\"prefetched\":%llu,\"zero\":%llu,\"ms\":%.3f,\"error\":%d}\n",
		       file, uffd_restore_regions(r), (unsigned long long)st.pages,
		       (unsigned long long)st.faulted, (unsigned long long)st.prefetched,
		       (unsigned long long)st.zero, st.duration_ns / 1e6, ret);
	else
		printf("%s: %d regions, %llu pages (%llu zero) restored %s in %.1f ms%s%s\n",
		       file, uffd_restore_regions(r), (unsigned long long)st.pages,
		       (unsigned long long)st.zero, flags & UFFD_RESTORE_LAZY ?
		       "lazily" : "eagerly", st.duration_ns / 1e6,
		       ret ? ": " : "", ret ? strerror(-ret) : "");
	uffd_restore_close(r, true);
	if (ret)
		explain(file, -ret);
	return ret ? EXIT_FAILED : EXIT_OK;
}
