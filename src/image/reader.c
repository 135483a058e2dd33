/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading a memory image (layout: format.h and man/uffd-image.5).
 *
 * Opening checks the header, the region table and the trailer, and builds
 * an index by walking the chunks: only each 32-byte chunk header is read,
 * since the popcount of its present bitmap says how much data to skip to
 * reach the next one - from version 3 all of them with one read, from the
 * copy of the headers before the trailer (one read per chunk was 0.2-1 s
 * for a 1 GiB image out of the page cache).  The index is, per region, the chunks sorted by first
 * page, so a page is found by binary search and read with one pread.
 *
 * The index is only as true as the headers, and a header that lies (claims
 * another page) hides the page it holds without any read ever touching it.
 * A version 2 trailer carries the CRC of all the headers, checked as they
 * are walked: the index is trusted at open at no extra I/O.  A version 1
 * file has none, so it is trusted only once every chunk's CRC has passed,
 * which its first read_page makes sure of.  Data CRCs are checked by
 * uffd_image_verify(), which streams the whole file through one buffer, and
 * by the first read of each chunk (open reads them only to name the chunk
 * behind a failed headers CRC, or one of two that claim the same page).
 *
 * Every failure names an offset.  The last 32 bytes are read first: when
 * they are a sound trailer the file has its full length, so a chunk that
 * runs past it is itself corrupt (its offset is reported); when they are
 * not, a chunk that runs past the end means the file was cut short, and the
 * offset reported is where the data ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "util/crc32c.h"
#include "util/fileio.h"

/* A chunk, as the index keeps it. */
struct img_chunk {
	uint64_t offset;	/* of its header in the file */
	uint64_t first;		/* page index in its region */
	uint64_t present, zero;
	uint32_t count;
	int verified;		/* atomic: CRC checked by a read_page */
};

/* One region's chunks, sorted by first page (they never overlap). */
struct img_region_index {
	struct img_chunk *chunks;
	size_t n, cap;
};

/* Can the chunk headers be trusted (what the index says of each page)? */
enum headers_state {
	HEADERS_UNCHECKED,	/* version 1: not until every chunk CRC passed */
	HEADERS_TRUSTED,	/* version 2 (checked at open), or verified */
	HEADERS_DAMAGED,	/* a version 1 file whose verify failed */
};

struct uffd_image {
	int fd;
	struct uffd_image_info info;
	int headers;			/* enum headers_state, atomic */
	uint64_t damage_offset;		/* HEADERS_DAMAGED: where */
	pthread_mutex_t headers_lock;	/* one verify of a version 1 file */
	struct uffd_image_region *regions;	/* info.regions */
	struct img_region_index *index;		/* one per region */
	uint32_t chunk_pages;			/* from the header */
	uint64_t chunks_start, chunks_end;	/* chunks_end: the headers' copy
						   (version 3), then the trailer */
	uint64_t trailer_off;
	uint8_t trailer[IMG_TRAILER_SIZE];
};

/* Read-ahead of uffd_image_verify(): chunks and pages pass through it. */
#define VERIFY_BUF_SIZE (1u << 20)

/* The failure at a file offset: EBADMSG, the offset for the caller. */
static int bad_at(uint64_t *bad, uint64_t off)
{
	*bad = off;
	return -EBADMSG;
}

static int read_header(struct uffd_image *img, uint64_t size, uint64_t *bad)
{
	uint8_t h[IMG_REGIONS_OFF], *name = h + IMG_PARENT_OFF;
	struct uffd_image_info *info = &img->info;
	size_t want = size < sizeof(h) ? size : sizeof(h);
	uint32_t flags, chunk_pages;
	ssize_t n;
	size_t len;

	n = uffd__pread_full(img->fd, h, want, 0);
	if (n < 0)
		return n;
	if (memcmp(h, IMG_MAGIC, n < IMG_MAGIC_LEN ? n : IMG_MAGIC_LEN))
		return bad_at(bad, 0);
	if (n < IMG_HDR_SIZE)
		return bad_at(bad, n);
	info->version = get_le32(h + IMG_HDR_VERSION);
	if (info->version < 1 || info->version > UFFD_IMAGE_VERSION) {
		*bad = IMG_HDR_VERSION;
		return -EPROTO;
	}
	if ((size_t)n < sizeof(h))
		return bad_at(bad, n);
	if (get_le32(h + IMG_HDR_CRC) != img_header_crc(h))
		return bad_at(bad, 0);

	/* Sound CRC, nonsense values: a writer bug, pointed at exactly. */
	flags = get_le32(h + IMG_HDR_FLAGS);
	chunk_pages = get_le32(h + IMG_HDR_CHUNK_PAGES);
	info->delta = flags & IMG_FLAG_DELTA;
	info->nregions = get_le32(h + IMG_HDR_NREGIONS);
	info->id = get_le64(h + IMG_HDR_ID);
	info->parent_id = get_le64(h + IMG_HDR_PARENT_ID);
	info->instant_ns = get_le64(h + IMG_HDR_INSTANT);
	img->chunk_pages = chunk_pages;
	if (flags & ~IMG_FLAGS_KNOWN)
		return bad_at(bad, IMG_HDR_FLAGS);
	if (!img_page_size_valid(get_le32(h + IMG_HDR_PAGE_SIZE)))
		return bad_at(bad, IMG_HDR_PAGE_SIZE);
	if (get_le32(h + IMG_HDR_NREGIONS) < 1 ||
	    get_le32(h + IMG_HDR_NREGIONS) > UFFD_IMAGE_MAX_REGIONS)
		return bad_at(bad, IMG_HDR_NREGIONS);
	if (chunk_pages < 1 || chunk_pages > IMG_CHUNK_PAGES)
		return bad_at(bad, IMG_HDR_CHUNK_PAGES);
	if (get_le32(h + IMG_HDR_RESERVED1))
		return bad_at(bad, IMG_HDR_RESERVED1);
	if (!info->id)
		return bad_at(bad, IMG_HDR_ID);
	if (get_le32(h + IMG_HDR_RESERVED2))
		return bad_at(bad, IMG_HDR_RESERVED2);
	if (info->delta != (info->parent_id != 0))
		return bad_at(bad, IMG_HDR_PARENT_ID);

	/* A delta names a file in its directory: a plain name, NUL-padded. */
	len = strnlen((char *)name, IMG_PARENT_SIZE);
	if (len == IMG_PARENT_SIZE || (info->delta && !len) || (!info->delta && len) ||
	    memchr(name, '/', len) || !strcmp((char *)name, ".") ||
	    !strcmp((char *)name, ".."))
		return bad_at(bad, IMG_PARENT_OFF);
	while (len < IMG_PARENT_SIZE)
		if (name[len++])
			return bad_at(bad, IMG_PARENT_OFF);
	memcpy(info->parent, name, IMG_PARENT_SIZE);
	return 0;
}

static int read_regions(struct uffd_image *img, uint64_t *bad)
{
	size_t table_len = (size_t)img->info.nregions * IMG_REGION_SIZE;
	uint64_t total = 0;	/* bytes described: at most UFFD_IMAGE_MAX_BYTES */
	uint8_t *table, *e;
	ssize_t n;
	int i, err = 0;

	table = malloc(table_len + IMG_CRC_SIZE);
	img->regions = calloc(img->info.nregions, sizeof(*img->regions));
	if (!table || !img->regions) {
		free(table);
		return -ENOMEM;
	}
	n = uffd__pread_full(img->fd, table, table_len + IMG_CRC_SIZE, IMG_REGIONS_OFF);
	if (n < 0) {
		err = n;
		goto out;
	}
	if ((size_t)n < table_len + IMG_CRC_SIZE) {
		err = bad_at(bad, IMG_REGIONS_OFF + n);
		goto out;
	}
	if (get_le32(table + table_len) != crc32c(0, table, table_len)) {
		err = bad_at(bad, IMG_REGIONS_OFF);
		goto out;
	}
	for (i = 0; i < img->info.nregions; i++) {
		struct uffd_image_region *r = &img->regions[i];

		e = table + i * IMG_REGION_SIZE;
		r->addr = get_le64(e + IMG_REGION_ADDR);
		r->len = get_le64(e + IMG_REGION_LEN);
		r->page_size = get_le32(e + IMG_REGION_PAGE_SIZE);
		r->flags = get_le32(e + IMG_REGION_FLAGS);
		if (!img_region_valid(r) || get_le64(e + IMG_REGION_RESERVED) ||
		    r->len > UFFD_IMAGE_MAX_BYTES - total) {
			err = bad_at(bad, IMG_REGIONS_OFF + i * IMG_REGION_SIZE);
			goto out;
		}
		total += r->len;
	}
	img->info.regions = img->regions;
out:
	free(table);
	return err;
}

/*
 * A chunk header that makes sense for this image: a region it has, 1 to
 * chunk_pages pages inside it, each either present or zero.  Its length
 * (header, data, CRC) in *len.
 */
static bool chunk_header_valid(const struct uffd_image *img,
			       const struct img_chunk_header *h, uint64_t *len)
{
	const struct uffd_image_region *r;
	uint64_t npages;

	if (h->region >= (uint32_t)img->info.nregions || !h->count ||
	    h->count > img->chunk_pages)
		return false;
	r = &img->regions[h->region];
	npages = r->len / r->page_size;
	if (h->first >= npages || h->count > npages - h->first ||
	    (h->present & h->zero) || (h->present | h->zero) != img_count_mask(h->count))
		return false;
	*len = IMG_CHUNK_HDR_SIZE + IMG_CRC_SIZE +
	       (uint64_t)__builtin_popcountll(h->present) * r->page_size;
	return true;
}

/* Version 1 has zero where version 2 has the CRC of the chunk headers. */
static bool trailer_sound(const uint8_t *t, uint32_t version)
{
	return !memcmp(t, IMG_TRAILER_MAGIC, IMG_MAGIC_LEN) &&
	       get_le32(t + IMG_TRAILER_CRC) == crc32c(0, t, IMG_TRAILER_CRC) &&
	       (version >= IMG_VERSION_HDRS_CRC || !get_le32(t + IMG_TRAILER_HDRS_CRC));
}

static int index_add(struct img_region_index *ix, const struct img_chunk *c)
{
	struct img_chunk *grown;
	size_t cap;

	if (ix->n == ix->cap) {
		cap = ix->cap ? 2 * ix->cap : 16;
		grown = realloc(ix->chunks, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		ix->chunks = grown;
		ix->cap = cap;
	}
	ix->chunks[ix->n++] = *c;
	return 0;
}

static int first_bad_chunk(struct uffd_image *img, uint64_t *bad);

/*
 * Version 3, under a sound trailer: the copy of every chunk header before
 * the trailer, read at once into *copy (malloc'd; NULL when there are no
 * chunks), its length in *copy_len.  A copy whose CRC is not the
 * trailer's is left unread (*copy NULL, *copy_bad): the headers are then
 * read from the chunks, and if those match, the copy is what is damaged.
 */
static int read_headers_copy(struct uffd_image *img, uint64_t size, uint64_t *bad,
			     uint8_t **copy, uint64_t *copy_len, bool *copy_bad)
{
	uint64_t chunks = get_le64(img->trailer + IMG_TRAILER_CHUNKS), room, off;
	ssize_t n;

	*copy = NULL;
	*copy_len = 0;
	*copy_bad = false;
	room = size - IMG_TRAILER_SIZE - img->chunks_start;
	/* each chunk takes its header twice, and a CRC */
	if (chunks > room / (IMG_CHUNK_HDR_SIZE + IMG_CHUNK_MIN_SIZE))
		return bad_at(bad, size - IMG_TRAILER_SIZE);
	*copy_len = chunks * IMG_CHUNK_HDR_SIZE;
	if (!chunks)
		return 0;
	off = size - IMG_TRAILER_SIZE - *copy_len;
	*copy = malloc(*copy_len);
	if (!*copy)
		return -ENOMEM;
	n = uffd__pread_full(img->fd, *copy, *copy_len, off);
	if (n < 0 || (uint64_t)n < *copy_len ||
	    crc32c(0, *copy, *copy_len) != get_le32(img->trailer + IMG_TRAILER_HDRS_CRC)) {
		free(*copy);
		*copy = NULL;
		if (n < 0)
			return n;
		*copy_bad = true;
	}
	return 0;
}

/*
 * Walk the chunk headers from the region table to the trailer, taking
 * them from their copy when the file has one (version 3) instead of one
 * read per chunk.  From version 2 they must add up to the trailer's CRC
 * of headers; when they do not, the chunk to blame is the first whose own
 * CRC fails (reading them all: a damaged file is the rare case), else
 * the trailer.
 */
static int scan_chunks(struct uffd_image *img, uint64_t size, uint64_t *bad)
{
	uint8_t raw[IMG_CHUNK_HDR_SIZE], first_raw[IMG_CHUNK_HDR_SIZE], *copy = NULL;
	struct img_chunk_header h;
	struct img_chunk c;
	uint64_t p = img->chunks_start, room, len, copy_len = 0, k = 0;
	uint32_t hdrs_crc = 0;
	bool sound, copy_bad = false;
	ssize_t n;
	int err = 0;

	if (size < p + IMG_TRAILER_SIZE)
		return bad_at(bad, size);
	n = uffd__pread_full(img->fd, img->trailer, IMG_TRAILER_SIZE, size - IMG_TRAILER_SIZE);
	if (n < 0)
		return n;
	sound = n == IMG_TRAILER_SIZE && trailer_sound(img->trailer, img->info.version);
	if (sound && img->info.version >= IMG_VERSION_HDRS_COPY) {
		err = read_headers_copy(img, size, bad, &copy, &copy_len, &copy_bad);
		if (err)
			return err;
	}
	img->trailer_off = size - IMG_TRAILER_SIZE;

	for (;;) {
		room = size - p;	/* bytes left for chunks */
		if (sound)
			room -= IMG_TRAILER_SIZE + copy_len;
		if (sound && !room)
			break;
		if (!sound && room < IMG_CHUNK_HDR_SIZE) {
			err = bad_at(bad, size);	/* cut inside a chunk or the trailer */
			goto out;
		}
		if (copy && k < copy_len / IMG_CHUNK_HDR_SIZE) {
			memcpy(raw, copy + k++ * IMG_CHUNK_HDR_SIZE, sizeof(raw));
		} else if (copy) {
			err = bad_at(bad, p);	/* more chunks than the trailer counts */
			goto out;
		} else {
			n = uffd__pread_full(img->fd, raw, sizeof(raw), p);
			if (n < 0) {
				err = n;
				goto out;
			}
			if (n < (ssize_t)sizeof(raw)) {
				err = bad_at(bad, p + n);
				goto out;
			}
		}
		/*
		 * Version 3 without a sound trailer: the copy of the headers
		 * starts with the first chunk's header again (no two chunks
		 * have the same).  The file has its full length if a copy of
		 * every header and a trailer fill the rest: the trailer is
		 * garbled; else the file was cut short.
		 */
		if (!sound && img->info.version >= IMG_VERSION_HDRS_COPY && img->info.chunks &&
		    !memcmp(raw, first_raw, sizeof(raw))) {
			err = size - p == img->info.chunks * IMG_CHUNK_HDR_SIZE + IMG_TRAILER_SIZE ?
			      bad_at(bad, size - IMG_TRAILER_SIZE) : bad_at(bad, size);
			goto out;
		}
		if (!img_decode_chunk_header(raw, &h) || !chunk_header_valid(img, &h, &len)) {
			err = bad_at(bad, p);	/* also: a garbled trailer */
			goto out;
		}
		if (len > room) {
			err = bad_at(bad, sound ? p : size);
			goto out;
		}

		c = (struct img_chunk){ .offset = p, .first = h.first, .present = h.present,
					.zero = h.zero, .count = h.count };
		err = index_add(&img->index[h.region], &c);
		if (err)
			goto out;
		hdrs_crc = crc32c(hdrs_crc, raw, sizeof(raw));
		if (!img->info.chunks)
			memcpy(first_raw, raw, sizeof(raw));
		img->info.chunks++;
		img->info.pages += h.count;
		img->info.zero_pages += __builtin_popcountll(h.zero);
		p += len;
	}
	img->chunks_end = p;
	if (get_le64(img->trailer + IMG_TRAILER_CHUNKS) != img->info.chunks ||
	    get_le64(img->trailer + IMG_TRAILER_PAGES) != img->info.pages) {
		err = bad_at(bad, img->trailer_off);
		goto out;
	}
	if (img->info.version < IMG_VERSION_HDRS_CRC)
		goto out;
	if (get_le32(img->trailer + IMG_TRAILER_HDRS_CRC) != hdrs_crc) {
		err = first_bad_chunk(img, bad);
		err = err ? err : bad_at(bad, img->trailer_off);
		goto out;
	}
	if (copy_bad) {		/* the chunks' headers are sound: the copy is not */
		err = bad_at(bad, p);
		goto out;
	}
	img->headers = HEADERS_TRUSTED;
out:
	free(copy);
	return err;
}

/*
 * A buffered sequential reader: verify and the overlap check read chunks
 * through it, so many small chunks cost one pread per megabyte.
 */
struct stream {
	int fd;
	uint8_t *buf;
	uint64_t start;		/* file offset of buf[0] */
	size_t len;		/* valid bytes in buf */
};

/*
 * Point *p at the n (<= VERIFY_BUF_SIZE) bytes at off: 0, -ENODATA (the
 * file ends before them) or -errno.
 */
static int stream_get(struct stream *s, uint64_t off, size_t n, const uint8_t **p)
{
	ssize_t got;

	if (off < s->start || off + n > s->start + s->len) {
		got = uffd__pread_full(s->fd, s->buf, VERIFY_BUF_SIZE, off);
		if (got < 0)
			return got;
		s->start = off;
		s->len = got;
		if ((size_t)got < n)
			return -ENODATA;
	}
	*p = s->buf + (off - s->start);
	return 0;
}

/*
 * Check the chunk at off: a sound header and a matching CRC32C of header
 * and data.  0 with the next chunk's offset in *next, -EBADMSG, -ENODATA
 * (cut short) or -errno.
 */
static int check_chunk(const struct uffd_image *img, struct stream *s, uint64_t off,
		       uint64_t *next)
{
	struct img_chunk_header h;
	const uint8_t *p;
	uint64_t len, data, piece;
	uint32_t crc;
	int err;

	err = stream_get(s, off, IMG_CHUNK_HDR_SIZE, &p);
	if (err)
		return err;
	if (!img_decode_chunk_header(p, &h) || !chunk_header_valid(img, &h, &len))
		return -EBADMSG;
	crc = crc32c(0, p, IMG_CHUNK_HDR_SIZE);
	for (data = off + IMG_CHUNK_HDR_SIZE; data < off + len - IMG_CRC_SIZE; data += piece) {
		piece = off + len - IMG_CRC_SIZE - data;
		if (piece > VERIFY_BUF_SIZE)
			piece = VERIFY_BUF_SIZE;
		err = stream_get(s, data, piece, &p);
		if (err)
			return err;
		crc = crc32c(crc, p, piece);
	}
	err = stream_get(s, off + len - IMG_CRC_SIZE, IMG_CRC_SIZE, &p);
	if (err)
		return err;
	if (get_le32(p) != crc)
		return -EBADMSG;
	*next = off + len;
	return 0;
}

/* Where the data ends now: for a file cut short after it was opened. */
static int cut_short(const struct uffd_image *img, uint64_t *bad)
{
	struct stat st;

	if (fstat(img->fd, &st))
		return -errno;
	return bad_at(bad, st.st_size);
}

static int stream_open(struct stream *s, int fd)
{
	*s = (struct stream){ .fd = fd, .buf = malloc(VERIFY_BUF_SIZE) };
	return s->buf ? 0 : -ENOMEM;
}

/*
 * The first chunk, in file order, whose CRC fails: -EBADMSG with its
 * offset, 0 if every one passes, or -errno.  A file cut short since it was
 * opened gives its length.
 */
static int first_bad_chunk(struct uffd_image *img, uint64_t *bad)
{
	struct stream s;
	uint64_t p, next;
	int err;

	err = stream_open(&s, img->fd);
	if (err)
		return err;
	for (p = img->chunks_start; p < img->chunks_end; p = next) {
		err = check_chunk(img, &s, p, &next);
		if (err == -EBADMSG)
			err = bad_at(bad, p);
		if (err)
			break;
	}
	free(s.buf);
	return err == -ENODATA ? cut_short(img, bad) : err;
}

static int cmp_chunk_first(const void *a, const void *b)
{
	const struct img_chunk *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * Two chunks that claim the same page: the file is corrupt, and the chunk
 * whose CRC fails is the one to blame (else the later one in the file).
 */
static int blame_overlap(struct uffd_image *img, const struct img_chunk *a,
			 const struct img_chunk *b, uint64_t *bad)
{
	const struct img_chunk *first = a->offset < b->offset ? a : b;
	const struct img_chunk *second = first == a ? b : a;
	struct stream s;
	uint64_t next;
	int err;

	err = stream_open(&s, img->fd);
	if (err)
		return err;
	if (check_chunk(img, &s, first->offset, &next))
		err = bad_at(bad, first->offset);
	else
		err = bad_at(bad, second->offset);
	free(s.buf);
	return err;
}

static int sort_index(struct uffd_image *img, uint64_t *bad)
{
	struct img_region_index *ix;
	size_t i;
	int r;

	for (r = 0; r < img->info.nregions; r++) {
		ix = &img->index[r];
		if (ix->n > 1)
			qsort(ix->chunks, ix->n, sizeof(*ix->chunks), cmp_chunk_first);
		for (i = 1; i < ix->n; i++)
			if (ix->chunks[i - 1].first + ix->chunks[i - 1].count >
			    ix->chunks[i].first)
				return blame_overlap(img, &ix->chunks[i - 1],
						     &ix->chunks[i], bad);
	}
	return 0;
}

struct uffd_image *uffd_image_open(const char *path, uint64_t *bad_offset)
{
	struct uffd_image *img;
	uint64_t bad_local;
	uint64_t *bad = bad_offset ? bad_offset : &bad_local;
	struct stat st;
	int err;

	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	img = calloc(1, sizeof(*img));
	if (!img) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&img->headers_lock, NULL);
	img->fd = uffd__image_open_regular(path, &st);
	if (img->fd < 0) {
		err = img->fd;
		goto out_free;
	}
	img->info.file_size = st.st_size;
	err = read_header(img, st.st_size, bad);
	if (err)
		goto out_free;
	img->chunks_start = img_chunks_start(img->info.nregions);
	err = read_regions(img, bad);
	if (err)
		goto out_free;
	img->index = calloc(img->info.nregions, sizeof(*img->index));
	if (!img->index) {
		err = -ENOMEM;
		goto out_free;
	}
	err = scan_chunks(img, st.st_size, bad);
	if (!err)
		err = sort_index(img, bad);
	if (err)
		goto out_free;
	return img;

out_free:
	uffd_image_close(img);
	errno = -err;
	return NULL;
}

void uffd_image_close(struct uffd_image *img)
{
	int r;

	if (!img)
		return;
	if (img->fd >= 0)
		close(img->fd);
	for (r = 0; img->index && r < img->info.nregions; r++)
		free(img->index[r].chunks);
	free(img->index);
	free(img->regions);
	pthread_mutex_destroy(&img->headers_lock);
	free(img);
}

int uffd_image_info(struct uffd_image *img, struct uffd_image_info *info)
{
	if (!img || !info)
		return -EINVAL;
	*info = img->info;
	return 0;
}

/* Version 3: the copy of the headers still adds up to the trailer's CRC. */
static int verify_headers_copy(struct uffd_image *img, uint64_t *bad)
{
	uint64_t len = img->trailer_off - img->chunks_end, done = 0;
	uint8_t buf[64 * IMG_CHUNK_HDR_SIZE];
	uint32_t crc = 0;
	ssize_t n;

	if (img->info.version < IMG_VERSION_HDRS_COPY)
		return 0;
	while (done < len) {
		size_t piece = len - done < sizeof(buf) ? len - done : sizeof(buf);

		n = uffd__pread_full(img->fd, buf, piece, img->chunks_end + done);
		if (n < 0)
			return n;
		if ((size_t)n < piece)
			return cut_short(img, bad);
		crc = crc32c(crc, buf, piece);
		done += piece;
	}
	if (crc != get_le32(img->trailer + IMG_TRAILER_HDRS_CRC))
		return bad_at(bad, img->chunks_end);
	return 0;
}

int uffd_image_verify(struct uffd_image *img, uint64_t *bad_offset)
{
	uint8_t trailer[IMG_TRAILER_SIZE];
	uint64_t bad_local;
	uint64_t *bad = bad_offset ? bad_offset : &bad_local;
	ssize_t n;
	int err;

	if (!img)
		return -EINVAL;
	err = first_bad_chunk(img, bad);
	if (err)
		return err;
	err = verify_headers_copy(img, bad);
	if (err)
		return err;
	n = uffd__pread_full(img->fd, trailer, sizeof(trailer), img->trailer_off);
	if (n < 0)
		return n;
	if (n < (ssize_t)sizeof(trailer))
		return cut_short(img, bad);
	if (memcmp(trailer, img->trailer, sizeof(trailer)))
		return bad_at(bad, img->trailer_off);
	return 0;
}

/* The chunk of region holding page, or NULL: binary search by first page. */
static const struct img_chunk *find_chunk(const struct img_region_index *ix, uint64_t page)
{
	size_t lo = 0, hi = ix->n, mid;

	/* the last chunk with first <= page */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ix->chunks[mid].first <= page)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || page >= ix->chunks[lo - 1].first + ix->chunks[lo - 1].count)
		return NULL;
	return &ix->chunks[lo - 1];
}

/*
 * The first read of any page of a chunk checks the chunk's CRC (reading
 * all of it once), so restoring never hands out damaged data; a chunk is
 * checked once however many threads read it.  Through one allocated
 * buffer, or through scratch (a page) where nothing may be allocated.
 */
static int verify_chunk_once(struct uffd_image *img, struct img_chunk *c, uint32_t page_size,
			     void *scratch)
{
	uint64_t len = (uint64_t)__builtin_popcountll(c->present) * page_size +
		       IMG_CHUNK_HDR_SIZE, pos, piece;
	uint64_t buf_len = len < VERIFY_BUF_SIZE ? len : VERIFY_BUF_SIZE;
	uint8_t crc_le[IMG_CRC_SIZE], *buf = scratch;
	uint32_t crc = 0;
	ssize_t n;
	int ret = 0;

	if (__atomic_load_n(&c->verified, __ATOMIC_ACQUIRE))
		return 0;
	if (scratch)
		buf_len = page_size;
	else if (!(buf = malloc(buf_len)))
		return -ENOMEM;
	for (pos = 0; pos < len && !ret; pos += piece) {
		piece = len - pos < buf_len ? len - pos : buf_len;
		n = uffd__pread_full(img->fd, buf, piece, c->offset + pos);
		if (n < 0)
			ret = n;
		else if ((uint64_t)n != piece)
			ret = -EBADMSG;
		else
			crc = crc32c(crc, buf, piece);
	}
	if (!scratch)
		free(buf);
	if (ret)
		return ret;
	n = uffd__pread_full(img->fd, crc_le, IMG_CRC_SIZE, c->offset + len);
	if (n != IMG_CRC_SIZE || get_le32(crc_le) != crc)
		return n < 0 ? (int)n : -EBADMSG;
	__atomic_store_n(&c->verified, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Every chunk's CRC passed: their first reads need not check again. */
static void mark_verified(struct uffd_image *img)
{
	size_t i;
	int r;

	for (r = 0; r < img->info.nregions; r++)
		for (i = 0; i < img->index[r].n; i++)
			__atomic_store_n(&img->index[r].chunks[i].verified, 1, __ATOMIC_RELEASE);
}

int uffd__image_trust_headers(struct uffd_image *img, uint64_t *bad)
{
	int state = __atomic_load_n(&img->headers, __ATOMIC_ACQUIRE), err = 0;

	if (state == HEADERS_TRUSTED)
		return 0;
	pthread_mutex_lock(&img->headers_lock);
	state = __atomic_load_n(&img->headers, __ATOMIC_RELAXED);
	if (state == HEADERS_UNCHECKED) {
		err = uffd_image_verify(img, &img->damage_offset);
		if (!err) {
			mark_verified(img);
			state = HEADERS_TRUSTED;
		} else if (err == -EBADMSG) {
			state = HEADERS_DAMAGED;	/* for good; other errors: again */
		}
		__atomic_store_n(&img->headers, state, __ATOMIC_RELEASE);
	}
	if (state == HEADERS_DAMAGED) {
		err = -EBADMSG;
		*bad = img->damage_offset;
	}
	pthread_mutex_unlock(&img->headers_lock);
	return err;
}

int uffd_image_read_page(struct uffd_image *img, int region, uint64_t page, void *buf)
{
	return uffd__image_read_page(img, region, page, buf, IMG_READ_FILL_ZERO);
}

int uffd__image_read_page(struct uffd_image *img, int region, uint64_t page, void *buf,
			  unsigned flags)
{
	const struct uffd_image_region *r;
	struct img_chunk *c;
	uint64_t bit, before, bad;
	ssize_t n;

	if (!img || !buf || region < 0 || region >= img->info.nregions)
		return -EINVAL;
	r = &img->regions[region];
	if (page >= r->len / r->page_size)
		return -EINVAL;
	if ((flags & IMG_READ_SIGNAL_SAFE) &&
	    __atomic_load_n(&img->headers, __ATOMIC_ACQUIRE) != HEADERS_TRUSTED)
		return -EINVAL;		/* would lock: not prepared */
	n = uffd__image_trust_headers(img, &bad);
	if (n)
		return n;
	c = (struct img_chunk *)find_chunk(&img->index[region], page);
	if (!c)
		return -ENOENT;
	n = verify_chunk_once(img, c, r->page_size, flags & IMG_READ_SIGNAL_SAFE ? buf : NULL);
	if (n)
		return n;
	bit = page - c->first;
	if (c->zero & (1ULL << bit)) {
		if (flags & IMG_READ_FILL_ZERO)
			memset(buf, 0, r->page_size);
		return 0;
	}
	before = __builtin_popcountll(c->present & ((1ULL << bit) - 1));
	n = uffd__pread_full(img->fd, buf, r->page_size,
			   c->offset + IMG_CHUNK_HDR_SIZE + before * r->page_size);
	if (n < 0)
		return n;
	return (size_t)n == r->page_size ? 1 : -EBADMSG;
}

/* The first chunk of ix that ends after page, or NULL. */
static const struct img_chunk *chunk_at_or_after(const struct img_region_index *ix,
						 uint64_t page)
{
	size_t lo = 0, hi = ix->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ix->chunks[mid].first + ix->chunks[mid].count <= page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ix->n ? &ix->chunks[lo] : NULL;
}

bool uffd__image_next_run(const struct uffd_image *img, int region, uint64_t from,
			  uint64_t *start, uint64_t *end)
{
	const struct img_chunk *c;

	if (region < 0 || region >= img->info.nregions)
		return false;
	c = chunk_at_or_after(&img->index[region], from);
	if (!c)
		return false;
	*start = c->first > from ? c->first : from;
	*end = c->first + c->count;
	return true;
}
