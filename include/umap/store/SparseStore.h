/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * umap's Umap::SparseStore, header-only, for umap_ex(): a region kept in a
 * directory of equal files, each made only when a page in it is first
 * read or written, so a large region that is mostly never touched costs
 * little disk.
 *
 * The directory's layout is umap's, so a directory made by either opens in
 * the other: files named 0, 1, 2 ... of file_size bytes each (a multiple of
 * the page size given at creation), file i holding the region's bytes from
 * i * file_size, and a file _metadata of two lines, file_size and the
 * region's capacity (the larger of the region's size and file_size).
 * Files are opened with O_DIRECT where the file system allows it (the
 * pager's buffers are page-aligned; an I/O O_DIRECT refuses is done again
 * through the page cache), and a file made for writing is given its whole
 * size at once (posix_fallocate), as umap does.
 *
 * Opened read-only, a file never made reads as zeros.  Where umap stops
 * the program (UMAP_ERROR), the constructors throw std::system_error;
 * reads and writes return -1 with errno, which the
 * pager turns into SIGBUS for a read and -EIO from uunmap for a write.  An
 * I/O that crosses from one file into the next is split, and one past the
 * capacity fails with EINVAL.  Reads, writes and close_files() may run in
 * several threads at once.
 */
#ifndef LIBUFFD_UMAP_SPARSE_STORE_H
#define LIBUFFD_UMAP_SPARSE_STORE_H

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <system_error>
#include <unistd.h>
#include <vector>

#include <umap/store/Store.hpp>
#include <umap/umap.h>

namespace Umap {

class SparseStore : public Store {
public:
	/* Create: a new directory root_path for a region of rsize bytes in
	 * files of file_size (rounded up to a multiple of aligned_size). */
	SparseStore(std::size_t rsize_, std::size_t aligned_size_, std::string root_path_,
		    std::size_t file_size_)
		: file_size(round_up(file_size_, aligned_size_)), rsize(rsize_),
		  aligned_size(aligned_size_), read_only(false), root_path(root_path_),
		  numreads(0), numwrites(0)
	{
		if (!aligned_size || !file_size)
			throw std::system_error(EINVAL, std::generic_category(),
						"SparseStore: a page or file size of 0");
		if (mkdir(root_path.c_str(), S_IRWXU | S_IRWXG | S_IROTH | S_IXOTH))
			throw std::system_error(errno, std::generic_category(),
						"SparseStore: creating " + root_path +
						" (open an existing one with SparseStore(path, "
						"read_only))");
		current_capacity = std::max(file_size, rsize);
		std::ofstream meta(metadata_path(root_path));
		meta << file_size << std::endl << current_capacity;
		if (!meta.flush())
			throw std::system_error(EIO, std::generic_category(),
						"SparseStore: writing " + metadata_path(root_path));
		make_table();
	}

	/* Open: the directory a SparseStore was created in. */
	SparseStore(std::string root_path_, bool read_only_)
		: file_size(0), rsize(0), aligned_size(0), read_only(read_only_),
		  root_path(root_path_), numreads(0), numwrites(0)
	{
		std::ifstream meta(metadata_path(root_path));

		if (!(meta >> file_size >> current_capacity) || !file_size)
			throw std::system_error(errno ? errno : EINVAL, std::generic_category(),
						"SparseStore: reading " + metadata_path(root_path));
		rsize = current_capacity;
		make_table();
	}

	~SparseStore()
	{
		close_files();
	}

	ssize_t read_from_store(char *buf, std::size_t nb, off_t off)
	{
		numreads++;
		return io(buf, nb, off, false);
	}

	ssize_t write_to_store(char *buf, std::size_t nb, off_t off)
	{
		if (read_only) {
			errno = EBADF;
			return -1;
		}
		numwrites++;
		return io(buf, nb, off, true);
	}

	std::size_t get_current_capacity()
	{
		return current_capacity;
	}

	/* The capacity of the region in base_path, without opening it. */
	static std::size_t get_capacity(std::string base_path)
	{
		std::ifstream meta(metadata_path(base_path));
		std::size_t fsize = 0, capacity = 0;

		if (!(meta >> fsize >> capacity))
			throw std::system_error(errno ? errno : EINVAL, std::generic_category(),
						"SparseStore: reading " + metadata_path(base_path));
		return capacity;
	}

	/* Close the files opened so far: 0, or -1 if a close failed. */
	int close_files()
	{
		std::lock_guard<std::mutex> hold(open_lock);
		int ret = 0;

		for (std::size_t i = 0; i < nfiles; i++) {
			int fd = fds[i].exchange(-1);

			if (fd >= 0 && close(fd))
				ret = -1;
		}
		return ret;
	}

private:
	std::size_t file_size, rsize, aligned_size, current_capacity, nfiles;
	bool read_only;
	std::string root_path;
	std::atomic<std::int64_t> numreads, numwrites;
	std::unique_ptr<std::atomic<int>[]> fds;
	std::unique_ptr<std::atomic<bool>[]> direct;
	std::mutex open_lock;

	static std::size_t round_up(std::size_t v, std::size_t to)
	{
		return to ? (v + to - 1) / to * to : v;
	}

	static std::string metadata_path(const std::string &root)
	{
		return root + "/_metadata";
	}

	void make_table()
	{
		nfiles = (current_capacity + file_size - 1) / file_size;
		fds.reset(new std::atomic<int>[nfiles]);
		direct.reset(new std::atomic<bool>[nfiles]);
		for (std::size_t i = 0; i < nfiles; i++) {
			fds[i] = -1;
			direct[i] = false;
		}
	}

	/* File i, opened (and made) at its first use.  fd, or -1 with errno. */
	int file(std::size_t i)
	{
		int fd = fds[i].load();

		if (fd >= 0)
			return fd;
		std::lock_guard<std::mutex> hold(open_lock);
		fd = fds[i].load();
		if (fd >= 0)
			return fd;
		std::string path = root_path + "/" + std::to_string(i);
		int flags = (read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC;

		fd = open(path.c_str(), flags | O_DIRECT, S_IRUSR | S_IWUSR);
		direct[i] = fd >= 0;
		if (fd < 0)		/* (a file system without O_DIRECT) */
			fd = open(path.c_str(), flags, S_IRUSR | S_IWUSR);
		if (fd < 0)
			return -1;
		if (!read_only) {
			int err = posix_fallocate(fd, 0, file_size);

			if (err) {
				close(fd);
				errno = err;
				return -1;
			}
		}
		fds[i] = fd;
		return fd;
	}

	/* One I/O within file i, through the page cache when O_DIRECT
	 * refuses it. */
	ssize_t file_io(std::size_t i, char *buf, std::size_t n, off_t at, bool write)
	{
		int fd = file(i);
		ssize_t got;

		if (fd < 0 && errno == ENOENT && read_only && !write) {
			std::memset(buf, 0, n);		/* never written: zeros */
			return (ssize_t)n;
		}
		if (fd < 0)
			return -1;
		got = write ? pwrite(fd, buf, n, at) : pread(fd, buf, n, at);
		if (got < 0 && errno == EINVAL && direct[i]) {
			std::string path = root_path + "/" + std::to_string(i);
			int bfd = open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

			if (bfd < 0)
				return -1;
			got = write ? pwrite(bfd, buf, n, at) : pread(bfd, buf, n, at);
			close(bfd);
		}
		return got;
	}

	ssize_t io(char *buf, std::size_t nb, off_t off, bool write)
	{
		std::size_t done = 0;

		if (off < 0 || (std::size_t)off > current_capacity ||
		    nb > current_capacity - (std::size_t)off) {
			errno = EINVAL;
			return -1;
		}
		while (done < nb) {
			std::size_t at = (std::size_t)off + done, i = at / file_size,
				    in = at % file_size, n = std::min(nb - done, file_size - in);
			ssize_t got = file_io(i, buf + done, n, (off_t)in, write);

			if (got < 0)
				return done ? (ssize_t)done : -1;
			if (got == 0)
				break;
			done += got;
		}
		return (ssize_t)done;
	}
};

} /* namespace Umap */

#endif
