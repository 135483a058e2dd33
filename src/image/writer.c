/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writing a memory image (layout: format.h and man/uffd-image.5).
 *
 * Many threads put pages at once, and the lock is held only to reserve
 * space: under the mutex a put checks and sets its pages' bits in the
 * region's bitmap of written pages (a second put of a page is -EEXIST) and
 * moves the end of the file past its chunk; it then writes the chunk with
 * one pwritev at the offset it reserved, outside the lock, so chunks never
 * interleave and I/O runs in parallel.  The file is built as NAME.tmp-PID
 * and only a complete one (trailer written, fsynced) is renamed to NAME.
 * The first I/O error is remembered: it fails every later put and the
 * commit, which then unlinks the temporary file.
 *
 * Every chunk header is also kept in memory, in file order (32 bytes per
 * chunk of up to 64 pages), and the commit writes them all again just
 * before the trailer (version 3): a reader learns every header with one
 * read instead of one per chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "util/bitmap.h"
#include "util/clock.h"
#include "util/mmalloc.h"
#include "util/crc32c.h"
#include "util/fileio.h"

struct uffd_image_writer {
	pthread_mutex_t lock;
	pthread_mutex_t io_lock;	/* one write at a time: see uffd_image_putv() */
	int fd;
	char *path;
	char *tmp_path;
	int nregions;
	struct uffd_image_region *regions;
	struct bitmap *written;		/* per region: pages put so far */
	uint64_t end;			/* where the next chunk goes */
	uint64_t kicked;		/* atomic: write-back started up to here */
	uint64_t chunks, pages;
	uint32_t hdrs_crc;		/* of the chunk headers, in file order */
	uint8_t *hdrs;			/* the chunk headers, in file order */
	size_t hdrs_cap;		/* bytes allocated for them */
	int error;			/* first I/O error, or 0 */
};

/* A random non-zero id that is not avoid (the parent's). */
static uint64_t new_image_id(uint64_t avoid)
{
	static uint64_t counter;
	struct timespec ts;
	uint64_t id = 0;

	while (!id || id == avoid) {
		if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id)) {
			/* no entropy yet: time, pid and a counter still differ */
			clock_gettime(CLOCK_REALTIME, &ts);
			id = (uint64_t)ts.tv_sec * 1000000007ULL ^ ts.tv_nsec ^
			     (uint64_t)getpid() << 40 ^
			     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 20;
		}
	}
	return id;
}

/*
 * The parent of a delta: it must be an image in the directory the new one
 * is written to (chains find parents by file name there), with the same
 * region table.  Its id goes into the header.  0 or -errno.
 */
static int check_parent(const char *path, const char *parent,
			const struct uffd_image_region *regions, int nregions,
			uint64_t *parent_id)
{
	const char *name = img_basename(parent);
	struct uffd_image_info info;
	struct uffd_image *img;
	struct stat a, b;
	char *dir, *there;
	int err = 0;

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (strlen(name) >= UFFD_IMAGE_PARENT_MAX)
		return -ENAMETOOLONG;
	dir = img_dirname(path);
	there = dir ? img_join(dir, name) : NULL;
	free(dir);
	if (!there)
		return -ENOMEM;
	if (stat(parent, &a))
		err = -errno;
	else if (stat(there, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		err = -EINVAL;	/* not where a chain will look for it */
	free(there);
	if (err)
		return err;

	img = uffd_image_open(parent, NULL);
	if (!img)
		return -errno;
	uffd_image_info(img, &info);
	if (!img_regions_equal(info.regions, info.nregions, regions, nregions))
		err = -EINVAL;
	*parent_id = info.id;
	uffd_image_close(img);
	return err;
}

/* Header, parent name, region table and its CRC: the first bytes of the file. */
static int write_head(struct uffd_image_writer *w, const char *parent,
		      uint64_t id, uint64_t parent_id, uint64_t instant_ns)
{
	size_t len = img_chunks_start(w->nregions);
	uint8_t *buf = calloc(1, len), *table = buf + IMG_REGIONS_OFF;
	size_t table_len = (size_t)w->nregions * IMG_REGION_SIZE;
	long sys_page = sysconf(_SC_PAGESIZE);
	int i, err;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, IMG_MAGIC, IMG_MAGIC_LEN);
	put_le32(buf + IMG_HDR_VERSION, UFFD_IMAGE_VERSION);
	put_le32(buf + IMG_HDR_FLAGS, parent ? IMG_FLAG_DELTA : 0);
	put_le32(buf + IMG_HDR_PAGE_SIZE, sys_page > 0 ? sys_page : 4096);
	put_le32(buf + IMG_HDR_NREGIONS, w->nregions);
	put_le32(buf + IMG_HDR_CHUNK_PAGES, IMG_CHUNK_PAGES);
	put_le64(buf + IMG_HDR_ID, id);
	put_le64(buf + IMG_HDR_PARENT_ID, parent_id);
	put_le64(buf + IMG_HDR_INSTANT, instant_ns);
	if (parent)
		strcpy((char *)buf + IMG_PARENT_OFF, img_basename(parent));
	put_le32(buf + IMG_HDR_CRC, img_header_crc(buf));

	for (i = 0; i < w->nregions; i++)
		img_encode_region(table + i * IMG_REGION_SIZE, &w->regions[i]);
	put_le32(table + table_len, crc32c(0, table, table_len));

	err = uffd__pwrite_full(w->fd, buf, len, 0);
	free(buf);
	w->end = len;
	return err;
}

static void writer_free(struct uffd_image_writer *w)
{
	int i;

	if (w->fd >= 0)
		close(w->fd);
	for (i = 0; w->written && i < w->nregions; i++)
		bitmap_free(&w->written[i]);
	mm_free(w->written);
	mm_free(w->regions);
	mm_free(w->hdrs);
	free(w->path);
	free(w->tmp_path);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->io_lock);
	mm_free(w);
}

struct uffd_image_writer *uffd_image_create(const char *path,
					    const struct uffd_image_region *regions,
					    int nregions, const char *parent,
					    uint64_t instant_ns)
{
	struct uffd_image_writer *w;
	uint64_t parent_id = 0, total = 0;
	int i, err;

	if (!path || !regions || nregions < 1 || nregions > UFFD_IMAGE_MAX_REGIONS) {
		errno = EINVAL;
		return NULL;
	}
	for (i = 0; i < nregions; i++) {
		if (!img_region_valid(&regions[i]) ||
		    regions[i].len > UFFD_IMAGE_MAX_BYTES - total) {
			errno = EINVAL;
			return NULL;
		}
		total += regions[i].len;
	}
	if (parent) {
		err = check_parent(path, parent, regions, nregions, &parent_id);
		if (err) {
			errno = -err;
			return NULL;
		}
	}

	w = mm_zalloc(sizeof(*w));
	if (!w) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->io_lock, NULL);
	w->fd = -1;
	w->nregions = nregions;
	w->path = strdup(path);
	w->regions = mm_zalloc(nregions * sizeof(*regions));
	w->written = mm_zalloc(nregions * sizeof(*w->written));
	if (!w->path || !w->regions || !w->written ||
	    asprintf(&w->tmp_path, "%s.tmp-%d", path, (int)getpid()) < 0) {
		w->tmp_path = NULL;
		err = -ENOMEM;
		goto out_free;
	}
	memcpy(w->regions, regions, nregions * sizeof(*regions));
	for (i = 0; i < nregions; i++) {
		err = bitmap_resize(&w->written[i], regions[i].len / regions[i].page_size);
		if (err)
			goto out_free;
	}

	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		err = -errno;
		goto out_free;
	}
	err = write_head(w, parent, new_image_id(parent_id), parent_id,
			 instant_ns ? instant_ns : wall_ns());
	if (err)
		goto out_unlink;
	return w;

out_unlink:
	unlink(w->tmp_path);
out_free:
	writer_free(w);
	errno = -err;
	return NULL;
}

/* Remember the first I/O error; every later call fails with it. */
static int writer_fail(struct uffd_image_writer *w, int err)
{
	pthread_mutex_lock(&w->lock);
	if (!w->error)
		w->error = err;
	err = w->error;
	pthread_mutex_unlock(&w->lock);
	return err;
}

/*
 * Claim the pages [first, first + count) and len bytes of file: the
 * chunk's offset in *off, or -EEXIST / the remembered error.  The chunk's
 * header (hdr) joins the trailer's CRC of headers here, where the order of
 * chunks in the file is decided.
 */
static int reserve_chunk(struct uffd_image_writer *w, int region, uint64_t first,
			 uint32_t count, const uint8_t *hdr, uint64_t len, uint64_t *off)
{
	struct bitmap *written = &w->written[region];
	uint64_t i;
	int err = 0;

	pthread_mutex_lock(&w->lock);
	if (w->error) {
		err = w->error;
		goto out;
	}
	if ((w->chunks + 1) * IMG_CHUNK_HDR_SIZE > w->hdrs_cap) {
		size_t cap = w->hdrs_cap ? 2 * w->hdrs_cap : 64 * IMG_CHUNK_HDR_SIZE;
		uint8_t *grown = mm_realloc(w->hdrs, cap);

		if (!grown) {
			err = -ENOMEM;
			goto out;
		}
		w->hdrs = grown;
		w->hdrs_cap = cap;
	}
	for (i = first; i < first + count; i++) {
		if (bitmap_test(written, i)) {
			err = -EEXIST;
			goto out;
		}
	}
	bitmap_set_range(written, first, first + count);
	*off = w->end;
	__atomic_store_n(&w->end, w->end + len, __ATOMIC_RELAXED);
	memcpy(w->hdrs + w->chunks * IMG_CHUNK_HDR_SIZE, hdr, IMG_CHUNK_HDR_SIZE);
	w->chunks++;
	w->pages += count;
	w->hdrs_crc = crc32c(w->hdrs_crc, hdr, IMG_CHUNK_HDR_SIZE);
out:
	pthread_mutex_unlock(&w->lock);
	return err;
}

/*
 * Write-back started every KICK_BYTES, as redis-server's
 * rdb-save-incremental-fsync does every 4 MiB.  Left to the kernel's
 * background threshold (10% of RAM here), write-back came in gigabyte
 * batches whose completion work (ext4 converting unwritten extents, in a
 * kworker that does not yield on this non-preemptible kernel) held a CPU
 * for 20 ms at a time, and the final fsync had it all to do: a 3M-key
 * uffd-kv save took 11-17 s and its clients waited up to 15-20 ms; with
 * write-back from 8 MiB on, 4.1-5.5 s and 4.1-8.8 ms.  The price is seen
 * by writers that touch every page at once (bench snapshot, 1 GiB): the
 * image is durable sooner (0.88-1.0 s against 1.45-1.58 s) and they lose
 * about as much writing time in all (0.83-0.86 s against 0.93 s),
 * but packed into that shorter time their throughput during it is
 * 0.06-0.14 of the baseline against 0.36-0.41.  Only the background
 * writer asks, between batches: never a thread a program waits on.
 */
#define KICK_BYTES	(8ULL << 20)

void uffd__image_start_writeback(struct uffd_image_writer *w)
{
	uint64_t end = __atomic_load_n(&w->end, __ATOMIC_RELAXED);
	uint64_t from = __atomic_load_n(&w->kicked, __ATOMIC_RELAXED);

	if (end - from < KICK_BYTES ||
	    !__atomic_compare_exchange_n(&w->kicked, &from, end, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;
	/* Advice: an error here shows again at the commit's fsync. */
	(void)sync_file_range(w->fd, (off64_t)from, (off64_t)(end - from), SYNC_FILE_RANGE_WRITE);
}

int uffd_image_putv(struct uffd_image_writer *w, int region, uint64_t first, uint32_t count,
		  const void *const *pages)
{
	uint8_t hdr[IMG_CHUNK_HDR_SIZE], crc_le[IMG_CRC_SIZE];
	struct img_chunk_header ch = { .region = region, .count = count, .first = first };
	struct iovec iov[IMG_CHUNK_PAGES + 2];
	uint64_t npages, off;
	uint32_t page_size, crc, i;
	int err, n = 1;

	if (!w || !pages || region < 0 || region >= w->nregions || !count || count > IMG_CHUNK_PAGES)
		return -EINVAL;
	page_size = w->regions[region].page_size;
	npages = w->regions[region].len / page_size;
	if (first >= npages || count > npages - first)
		return -EINVAL;
	for (i = 0; i < count; i++) {
		if (!pages[i]) {
			ch.zero |= 1ULL << i;
			continue;
		}
		ch.present |= 1ULL << i;
		iov[n++] = (struct iovec){ .iov_base = (void *)pages[i], .iov_len = page_size };
	}
	img_encode_chunk_header(hdr, &ch);
	err = reserve_chunk(w, region, first, count, hdr,
			    IMG_CHUNK_HDR_SIZE + (uint64_t)(n - 1) * page_size + IMG_CRC_SIZE, &off);
	if (err)
		return err;

	crc = crc32c(0, hdr, sizeof(hdr));
	for (i = 1; i < (uint32_t)n; i++)
		crc = crc32c(crc, iov[i].iov_base, page_size);
	put_le32(crc_le, crc);
	iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	iov[n++] = (struct iovec){ .iov_base = crc_le, .iov_len = sizeof(crc_le) };
	/*
	 * The kernel writes one file one call at a time (the inode's lock),
	 * and a caller waiting for that lock spins while the holder copies:
	 * with a snapshot's fault handler and writer thread both writing on
	 * 2 CPUs, that spinning took a CPU and stretched a 1 GiB snapshot
	 * from 1 s to 3-6 s.  Waiting here sleeps instead.
	 */
	pthread_mutex_lock(&w->io_lock);
	err = uffd__pwritev_full(w->fd, iov, n, off);
	pthread_mutex_unlock(&w->io_lock);
	return err ? writer_fail(w, err) : 0;
}

int uffd_image_put(struct uffd_image_writer *w, int region, uint64_t first,
		   uint32_t count, const void *data, uint64_t zero_mask)
{
	const void *pages[IMG_CHUNK_PAGES];
	const char *next = data;
	uint32_t page_size, i;

	if (!w || region < 0 || region >= w->nregions || !count || count > IMG_CHUNK_PAGES ||
	    (zero_mask & ~img_count_mask(count)))
		return -EINVAL;
	page_size = w->regions[region].page_size;
	for (i = 0; i < count; i++) {
		if (zero_mask >> i & 1) {
			pages[i] = NULL;
			continue;
		}
		if (!data)
			return -EINVAL;
		pages[i] = next;
		next += page_size;
	}
	return uffd_image_putv(w, region, first, count, pages);
}

int uffd_image_put_page(struct uffd_image_writer *w, int region, uint64_t page,
			const void *data)
{
	return uffd_image_put(w, region, page, 1, data, data ? 0 : 1);
}

/* The copy of the chunk headers, then the trailer: the file's last bytes. */
static int write_trailer(struct uffd_image_writer *w)
{
	uint64_t copy_len = w->chunks * IMG_CHUNK_HDR_SIZE;
	uint8_t t[IMG_TRAILER_SIZE] = { 0 };
	int err;

	memcpy(t, IMG_TRAILER_MAGIC, IMG_MAGIC_LEN);
	put_le64(t + IMG_TRAILER_CHUNKS, w->chunks);
	put_le64(t + IMG_TRAILER_PAGES, w->pages);
	put_le32(t + IMG_TRAILER_HDRS_CRC, w->hdrs_crc);
	put_le32(t + IMG_TRAILER_CRC, crc32c(0, t, IMG_TRAILER_CRC));
	err = copy_len ? uffd__pwrite_full(w->fd, w->hdrs, copy_len, w->end) : 0;
	return err ? err : uffd__pwrite_full(w->fd, t, sizeof(t), w->end + copy_len);
}

/* fsync the directory holding path, so the rename itself is durable. */
static int sync_dir_of(const char *path)
{
	char *dir = img_dirname(path);
	int fd, err = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

int uffd_image_commit(struct uffd_image_writer *w)
{
	int err, fd;

	if (!w)
		return -EINVAL;
	err = w->error;
	if (!err)
		err = write_trailer(w);
	if (!err && fsync(w->fd))
		err = -errno;
	fd = w->fd;
	w->fd = -1;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(w->tmp_path, w->path))
		err = -errno;
	if (err) {
		unlink(w->tmp_path);
		goto out;
	}
	err = sync_dir_of(w->path);
	if (err)
		unlink(w->path);	/* not known to be durable: claim nothing */
out:
	writer_free(w);
	return err;
}

void uffd_image_abort(struct uffd_image_writer *w)
{
	if (!w)
		return;
	unlink(w->tmp_path);
	writer_free(w);
}

uint64_t uffd_image_bytes(const struct uffd_image_writer *w)
{
	return w ? __atomic_load_n(&w->end, __ATOMIC_RELAXED) : 0;
}
