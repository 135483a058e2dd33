/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the seed corpora of the fuzz targets (fuzz/corpus/NAME/), small
 * and sound, so each fuzzer starts from inputs that reach deep:
 *
 *   image         images as the library writes them (base, delta, mixed
 *                 data and zero chunks, two regions, a version 1 file)
 *   chain         chains of 1 to 3 of them, packed as fuzz/chain.c reads,
 *                 and one of 4 KiB pages (mostly zero), which it restores
 *   store-server  a client's side of whole conversations
 *   store-client  a server's side, answering fuzz/store-client.c's I/O
 *
 *   build/fuzz/fuzz-seeds DIR     (make fuzz-seeds: DIR = fuzz/corpus)
 *
 * Pages are 512 bytes, the smallest the format allows, to keep them small
 * (restore takes only 4 KiB pages: that chain records one data page).
 */
#include <sys/stat.h>
#include <uffd/image.h>

#include "fuzz.h"

#define PS	512

static const char *out_dir;

static void emit(const char *target, const char *name, const uint8_t *data, size_t n)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	fuzz_write_file(path, data, n);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		abort();
	buf = malloc(len + 1);
	if (!buf || fread(buf, 1, len, f) != (size_t)len)
		abort();
	fclose(f);
	*n = len;
	return buf;
}

static void fill(uint8_t *p, size_t n, int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = seed * 31 + i;
}

static const struct uffd_image_region regions[2] = {
	{ .addr = 0x10000, .len = 16 * PS, .page_size = PS, .flags = UFFD_IMAGE_ANON },
	{ .addr = 0x40000, .len = 4 * PS, .page_size = PS, .flags = UFFD_IMAGE_SHMEM },
};

/* An image at path: base (parent NULL) or delta; which picks the pages. */
static void write_image(const char *path, const char *parent, int which)
{
	struct uffd_image_writer *w = uffd_image_create(path, regions, 2, parent, 1000 + which);
	uint8_t data[3 * PS];

	if (!w)
		abort();
	fill(data, sizeof(data), which);
	if (which == 0) {
		if (uffd_image_put(w, 0, 0, 3, data, 0) ||
		    uffd_image_put(w, 0, 5, 4, data, 0x6) ||
		    uffd_image_put_page(w, 1, 2, data))
			abort();
	} else if (which == 1) {
		if (uffd_image_put_page(w, 0, 1, data + PS) ||
		    uffd_image_put_page(w, 0, 6, NULL) || uffd_image_put(w, 1, 0, 2, data, 0x1))
			abort();
	} else {
		if (uffd_image_put(w, 0, 2, 2, data, 0) || uffd_image_put_page(w, 0, 15, NULL))
			abort();
	}
	if (uffd_image_commit(w))
		abort();
}

/* The image target's input: a flags byte, then the file. */
static void emit_image(const char *name, const char *path, uint8_t flags)
{
	size_t n;
	uint8_t *f = slurp(path, &n), *in = malloc(n + 1);

	in[0] = flags;
	memcpy(in + 1, f, n);
	emit("image", name, in, n + 1);
	free(in);
	free(f);
}

/* Version 1: the same bytes but the version, the copy of the chunk
 * headers (version 3: dropped) and the trailer's headers CRC. */
static void make_v1(const char *path)
{
	size_t n;
	uint8_t *f = slurp(path, &n), *t;
	uint64_t copy = fuzz_le(f + n - 32 + 8, 8) * 32;

	memmove(f + n - 32 - copy, f + n - 32, 32);
	n -= copy;
	t = f + n - 32;
	fuzz_put_le32(f + 8, 1);
	fuzz_put_le32(t + 24, 0);
	fuzz_fix_image(f, n);
	fuzz_write_file(path, f, n);
	free(f);
}

/* The chain target's input: flags, count - 1, then [len][file]... */
static void emit_chain(const char *name, char paths[][256], int nfiles)
{
	uint8_t *in = malloc(2), *f;
	size_t len = 2, n;
	int i;

	in[0] = FUZZ_FIX_CRCS;
	in[1] = nfiles - 1;
	for (i = 0; i < nfiles; i++) {
		f = slurp(paths[i], &n);
		in = realloc(in, len + 4 + n);
		fuzz_put_le32(in + len, n);
		memcpy(in + len + 4, f, n);
		len += 4 + n;
		free(f);
	}
	emit("chain", name, in, len);
	free(in);
}

/* A base of 4 KiB pages (one data, three zero) and a delta of it. */
static void restorable_chain(char paths[][256])
{
	struct uffd_image_region r = { .addr = 0x200000, .len = 8 * 4096, .page_size = 4096,
				       .flags = UFFD_IMAGE_ANON };
	struct uffd_image_writer *w = uffd_image_create(paths[1], &r, 1, NULL, 1);
	uint8_t data[4096];

	fill(data, sizeof(data), 9);
	if (!w || uffd_image_put(w, 0, 2, 4, data, 0xd) || uffd_image_commit(w))
		abort();
	w = uffd_image_create(paths[0], &r, 1, paths[1], 2);
	if (!w || uffd_image_put_page(w, 0, 3, NULL) || uffd_image_put_page(w, 0, 7, NULL) ||
	    uffd_image_commit(w))
		abort();
}

static void images_and_chains(void)
{
	const char *dir = fuzz_dir();
	char paths[3][256];
	int i;

	for (i = 0; i < 3; i++)
		snprintf(paths[i], sizeof(paths[i]), "%s/f%d", dir, i);
	/* f2 base, f1 its delta, f0 the newest */
	write_image(paths[2], NULL, 0);
	write_image(paths[1], paths[2], 1);
	write_image(paths[0], paths[1], 2);
	emit_image("base", paths[2], 0);
	emit_image("base-fix", paths[2], FUZZ_FIX_CRCS);
	emit_image("delta", paths[1], FUZZ_FIX_CRCS | 0x02);
	emit_chain("three", paths, 3);
	emit_chain("two", paths + 1, 2);
	emit_chain("one", paths + 2, 1);
	make_v1(paths[2]);
	emit_image("base-v1", paths[2], FUZZ_FIX_CRCS);
	for (i = 0; i < 3; i++)
		unlink(paths[i]);
	restorable_chain(paths);
	emit_chain("restore-4k", paths, 2);
}

/* The wire protocol of src/pager/store_socket.c, in this machine's order. */
struct hello { uint32_t magic; uint16_t version, flags; };
struct welcome { uint32_t magic; uint16_t version, flags; int32_t status; uint32_t max_io;
		 uint64_t size; };
struct request { uint32_t op, len; uint64_t off, tag; };
struct response { int32_t status; uint32_t len; uint64_t tag; };
#define MAGIC 0x50534655u

struct stream {
	uint8_t buf[16384];
	size_t n;
};

static void put(struct stream *s, const void *p, size_t n)
{
	if (s->n + n > sizeof(s->buf))
		abort();
	memcpy(s->buf + s->n, p, n);
	s->n += n;
}

static void put_request(struct stream *s, uint32_t op, uint32_t len, uint64_t off,
			uint64_t tag, bool data)
{
	struct request r = { op, len, off, tag };
	uint8_t d[1024];

	put(s, &r, sizeof(r));
	if (data) {
		fill(d, len, 7);
		put(s, d, len);
	}
}

static void server_seeds(void)
{
	struct hello h = { MAGIC, 1, 0 };
	struct stream s = { .n = 0 };

	put(&s, &h, sizeof(h));
	put_request(&s, 1, 512, 0, 1, false);		/* READ */
	put_request(&s, 2, 64, 8, 2, true);		/* WRITE */
	put_request(&s, 3, 0, 0, 3, false);		/* FLUSH */
	put_request(&s, 1, 100, 65500, 4, false);	/* READ over the end */
	put_request(&s, 2, 16, 65530, 5, true);		/* WRITE over the end */
	put_request(&s, 1, 10, 1 << 20, 6, false);	/* READ past the end */
	emit("store-server", "session", s.buf, s.n);
	put_request(&s, 9, 0, 0, 7, false);		/* an unknown op */
	emit("store-server", "bad-op", s.buf, s.n);
	s.n = 0;
	h.version = 2;
	put(&s, &h, sizeof(h));
	emit("store-server", "version-2", s.buf, s.n);
}

static void put_response(struct stream *s, int32_t status, uint32_t len, uint64_t tag,
			 bool data)
{
	struct response r = { status, len, tag };
	uint8_t d[1536];

	put(s, &r, sizeof(r));
	if (data) {
		fill(d, len, 3);
		put(s, d, len);
	}
}

/* Answers to store-client.c: read 512 @0, 1536 @512, write 64, flush, read 100 @end-50. */
static void client_seeds(void)
{
	struct welcome w = { MAGIC, 1, 0, 0, 4096, 65536 };
	struct stream s = { .n = 0 };

	put(&s, &w, sizeof(w));
	put_response(&s, 0, 512, 1, true);
	put_response(&s, 0, 1536, 2, true);
	put_response(&s, 0, 64, 3, false);
	put_response(&s, 0, 0, 4, false);
	put_response(&s, 0, 50, 5, true);
	emit("store-client", "session", s.buf, s.n);

	s.n = 0;
	w.max_io = 1024;		/* the 1536-byte read is split in two */
	put(&s, &w, sizeof(w));
	put_response(&s, 0, 512, 1, true);
	put_response(&s, 0, 1024, 2, true);
	put_response(&s, 0, 512, 3, true);
	put_response(&s, -22, 0, 4, false);	/* the write refused */
	put_response(&s, -5, 0, 5, false);	/* the flush failed */
	put_response(&s, 0, 50, 6, true);
	emit("store-client", "split", s.buf, s.n);

	s.n = 0;
	w.status = -93;			/* -EPROTONOSUPPORT */
	put(&s, &w, sizeof(w));
	emit("store-client", "refused", s.buf, s.n);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-seeds DIR\n");
		return 2;
	}
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	images_and_chains();
	server_seeds();
	client_seeds();
	return 0;
}
