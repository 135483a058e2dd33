/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd snapshot-info: what a memory image holds, and whether it can be
 * trusted.  The image and each ancestor are opened one by one (parents by
 * name, in the image's directory) so that a failure names the file it is
 * in and the offset the library reports; every chunk CRC of every image is
 * checked unless --no-verify.  Finally the library opens the chain itself,
 * so the tool never calls "ok" a chain the library would refuse.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uffd/image.h>

#include "args.h"
#include "uffd.h"

#define MAX_CHAIN 4096	/* ancestors followed before calling it a loop */

struct report {
	bool json, verify;
	int images;
};

static void fmt_size(char *buf, size_t size, uint64_t n)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	int u = -1;
	double v = n;

	if (n < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (v == (uint64_t)v)
		snprintf(buf, size, "%" PRIu64 " %s", (uint64_t)v, units[u]);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

static void fmt_flags(char *buf, size_t size, uint32_t flags)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ UFFD_IMAGE_ANON, "anon" },
		{ UFFD_IMAGE_SHMEM, "shmem" },
		{ UFFD_IMAGE_HUGETLB, "hugetlb" },
	};
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].bit) {
			len += snprintf(buf + len, size - len, "%s%s", len ? "," : "",
					names[i].name);
			flags &= ~names[i].bit;
		}
	}
	if (flags)
		snprintf(buf + len, size - len, "%s0x%x", len ? "," : "", flags);
	else if (!len)
		snprintf(buf, size, "-");
}

static void fmt_instant(char *buf, size_t size, uint64_t ns)
{
	time_t sec = ns / 1000000000ULL;
	struct tm tm;
	size_t len;

	if (!gmtime_r(&sec, &tm)) {
		snprintf(buf, size, "?");
		return;
	}
	len = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + len, size - len, ".%09" PRIu64 " UTC", (uint64_t)(ns % 1000000000ULL));
}

static void print_text(const char *file, const struct uffd_image_info *info, bool verified)
{
	char a[32], b[32], flags[64], when[64];
	int i;

	printf("%s: %s image, version %u\n", file, info->delta ? "delta" : "base",
	       info->version);
	printf("  id         0x%016" PRIx64 "\n", info->id);
	if (info->delta)
		printf("  parent     %s (id 0x%016" PRIx64 ")\n", info->parent,
		       info->parent_id);
	fmt_instant(when, sizeof(when), info->instant_ns);
	printf("  instant    %s (%" PRIu64 " ns)\n", when, info->instant_ns);
	printf("  regions    %d\n", info->nregions);
	printf("    %-4s %-18s  %-10s  %-9s  %s\n", "#", "address", "length", "page size",
	       "flags");
	for (i = 0; i < info->nregions; i++) {
		const struct uffd_image_region *r = &info->regions[i];

		fmt_size(a, sizeof(a), r->len);
		fmt_size(b, sizeof(b), r->page_size);
		fmt_flags(flags, sizeof(flags), r->flags);
		printf("    %-4d 0x%016" PRIx64 "  %-10s  %-9s  %s\n", i, r->addr, a, b, flags);
	}
	printf("  chunks     %" PRIu64 "\n", info->chunks);
	printf("  pages      %" PRIu64 " (%" PRIu64 " data, %" PRIu64 " zero)\n", info->pages,
	       info->pages - info->zero_pages, info->zero_pages);
	fmt_size(a, sizeof(a), info->file_size);
	printf("  file size  %" PRIu64 " bytes (%s)\n", info->file_size, a);
	printf("  checksums  %s\n", verified ? "ok" : "not verified");
}

static void print_json(const char *file, const struct uffd_image_info *info, bool verified,
		       bool first)
{
	int i;

	printf("%s{", first ? "" : ",");
	json_str(stdout, "file", file, true);
	printf("\"version\":%u,\"delta\":%s,\"id\":\"0x%016" PRIx64 "\",", info->version,
	       info->delta ? "true" : "false", info->id);
	json_str(stdout, "parent", info->parent, true);
	printf("\"parent_id\":\"0x%016" PRIx64 "\",\"instant_ns\":%" PRIu64 ",\"regions\":[",
	       info->parent_id, info->instant_ns);
	for (i = 0; i < info->nregions; i++) {
		const struct uffd_image_region *r = &info->regions[i];

		printf("%s{\"addr\":\"0x%" PRIx64 "\",\"len\":%" PRIu64 ",\"page_size\":%u,"
		       "\"flags\":%u}", i ? "," : "", r->addr, r->len, r->page_size, r->flags);
	}
	printf("],\"chunks\":%" PRIu64 ",\"pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64
	       ",\"file_size\":%" PRIu64 ",\"verified\":%s}", info->chunks, info->pages,
	       info->zero_pages, info->file_size, verified ? "true" : "false");
}

/* The one message of a failure: on stderr, and in the JSON on stdout. */
static int fail(const struct report *rep, const char *file, bool has_offset,
		uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail(const struct report *rep, const char *file, bool has_offset,
		uint64_t offset, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (has_offset)
		fprintf(stderr, "uffd snapshot-info: %s: %s at offset %" PRIu64 "\n", file, msg,
			offset);
	else
		fprintf(stderr, "uffd snapshot-info: %s: %s\n", file, msg);
	if (rep->json) {
		printf("],\"ok\":false,\"error\":{");
		json_str(stdout, "file", file, true);
		if (has_offset)
			printf("\"offset\":%" PRIu64 ",", offset);
		json_str(stdout, "message", msg, false);
		printf("}}\n");
	}
	return EXIT_FAILED;
}

/* Why uffd_image_open() refused a file. */
static int open_failed(const struct report *rep, const char *file, uint64_t bad)
{
	int err = errno;

	if (err == EBADMSG)
		return fail(rep, file, true, bad, "not a sound image: bad structure or checksum");
	if (err == EPROTO)
		return fail(rep, file, false, 0,
			    "image format version not readable by this libuffd (reads 1 to %d)",
			    UFFD_IMAGE_VERSION);
	if (err == EINVAL || err == EISDIR)
		return fail(rep, file, false, 0, "not a regular file");
	return fail(rep, file, false, 0, "%s", strerror(err));
}

/* dir of file + "/" + name */
static char *sibling(const char *file, const char *name)
{
	const char *slash = strrchr(file, '/');
	char *s;
	int n = slash ? (int)(slash - file) : 1;

	if (asprintf(&s, "%.*s/%s", n, slash ? (slash == file ? "/" : file) : ".", name) < 0)
		return NULL;
	return s;
}

/* The child's link to the image just opened holds?  0, or the exit status. */
static int check_link(const struct report *rep, const char *child_file,
		      const struct uffd_image_info *child, const char *file,
		      const struct uffd_image_info *info, const uint64_t *ids, int n)
{
	int i;

	if (info->id != child->parent_id)
		return fail(rep, child_file, true, 40,
			    "parent %s has id 0x%016" PRIx64 ", not the recorded 0x%016" PRIx64,
			    file, info->id, child->parent_id);
	for (i = 0; i < n; i++)
		if (ids[i] == info->id)
			return fail(rep, child_file, true, 40, "the chain loops back to %s", file);
	if (child->nregions != info->nregions ||
	    memcmp(child->regions, info->regions, info->nregions * sizeof(*info->regions)))
		return fail(rep, child_file, true, 320,
			    "regions differ from those of its parent %s", file);
	return 0;
}

static int walk_chain(struct report *rep, const char *path)
{
	struct uffd_image_info info, child = { 0 };
	struct uffd_image *img, *prev = NULL;
	struct uffd_image_chain *chain;
	char *file = strdup(path), *child_file = NULL, *next;
	uint64_t ids[MAX_CHAIN], bad = 0;
	int ret = EXIT_OK, err;

	if (!file)
		return fail(rep, path, false, 0, "%s", strerror(ENOMEM));
	for (;;) {
		img = uffd_image_open(file, &bad);
		if (!img) {
			if (prev && errno == ENOENT)
				ret = fail(rep, child_file, true, 64, "parent %s: %s", file,
					   strerror(ENOENT));
			else
				ret = open_failed(rep, file, bad);
			break;
		}
		uffd_image_info(img, &info);
		if (prev) {
			ret = check_link(rep, child_file, &child, file, &info, ids, rep->images);
			if (ret)
				break;
		}
		if (rep->verify) {
			err = uffd_image_verify(img, &bad);
			if (err == -EBADMSG) {
				ret = fail(rep, file, true, bad,
					   "checksum mismatch or damage in the chunk");
				break;
			}
			if (err) {
				ret = fail(rep, file, false, 0, "verify: %s", strerror(-err));
				break;
			}
		}
		if (rep->json)
			print_json(file, &info, rep->verify, !rep->images);
		else
			print_text(file, &info, rep->verify);
		ids[rep->images++] = info.id;
		if (!info.delta)
			break;
		if (rep->images == MAX_CHAIN) {
			ret = fail(rep, file, false, 0, "more than %d images in the chain",
				   MAX_CHAIN);
			break;
		}
		next = sibling(path, info.parent);
		if (!next) {
			ret = fail(rep, file, false, 0, "%s", strerror(ENOMEM));
			break;
		}
		uffd_image_close(prev);
		prev = img;
		img = NULL;
		child = info;
		free(child_file);
		child_file = file;
		file = next;
	}
	uffd_image_close(img);
	uffd_image_close(prev);
	free(child_file);
	if (ret) {
		free(file);
		return ret;
	}

	chain = uffd_image_chain_open(path, &bad);
	if (!chain)
		ret = fail(rep, path, errno == EBADMSG, bad, "the library refuses the chain: %s",
			   strerror(errno));
	else if (uffd_image_chain_length(chain) != rep->images)
		ret = fail(rep, path, false, 0, "the library sees a chain of %d images, not %d",
			   uffd_image_chain_length(chain), rep->images);
	uffd_image_chain_close(chain);
	free(file);
	return ret;
}

int cmd_snapshot_info(int argc, char **argv)
{
	struct report rep = { .verify = true };
	bool no_verify = false;
	const struct arg_opt opts[] = {
		OPT_FLAG("json", 'j', &rep.json, "one JSON object"),
		OPT_FLAG("no-verify", 'n', &no_verify, "do not read every chunk to check its "
			 "checksum"),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd snapshot-info", .synopsis = "FILE [--json] [--no-verify]",
		.about = "What a memory image holds: version, base or delta, id, parent, instant,\n"
			 "regions, chunks, pages; then the same for each ancestor of a delta\n"
			 "(parents are found by name in FILE's directory).  Every checksum of\n"
			 "every image is verified unless --no-verify.  Exit 0 if the chain is\n"
			 "sound, 1 if a file is missing, unreadable or corrupt (the message names\n"
			 "the file and the offset), 2 on a usage error.\n",
		.opts = opts, .min_args = 1, .max_args = 1, .arg_name = "FILE",
	};
	const char *file;
	int ret;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	rep.verify = !no_verify;
	file = spec.args[0];
	if (rep.json) {
		printf("{");
		json_str(stdout, "file", file, true);
		printf("\"chain\":[");
	}
	ret = walk_chain(&rep, file);
	if (ret)
		return ret;
	if (rep.json)
		printf("],\"images\":%d,\"verified\":%s,\"ok\":true}\n", rep.images,
		       rep.verify ? "true" : "false");
	else if (rep.verify)
		printf("chain of %d image%s: ok\n", rep.images, rep.images == 1 ? "" : "s");
	else
		printf("chain of %d image%s: ok (checksums not verified)\n", rep.images,
		       rep.images == 1 ? "" : "s");
	return EXIT_OK;
}
