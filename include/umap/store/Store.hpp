/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LLNL umap's C++ Store API over the libuffd pager, header-only: a program
 * that gives umap its own store (a class derived from Umap::Store, or
 * umap's Umap::SparseStore) builds against these headers and links with
 * -lumap alone.
 *
 * Umap::umap_ex() wraps the Store in a pager store (struct uffd_store, see
 * uffd/pager.h) whose operations call the object's read_from_store() and
 * write_to_store(), and maps it with umap_with_store() from libumap.  The
 * one idea: umap calls a Store one umap page at a time, at offsets
 * counted from the start of the region, and a Store written for umap may
 * count on that; the pager reads and writes runs of pages (read-ahead
 * windows, write-back runs) from any thread, so the wrapper cuts every
 * I/O into umap pages before it calls the object.  A page the Store reads
 * short is zero-filled past what it gave; a negative answer is -EIO for
 * the pager (SIGBUS for a read).
 *
 * As in umap, the Store stays the caller's: uunmap() frees the wrapper,
 * never the object, which must outlive the map.  With a NULL store,
 * umap_ex() is umap() on the fd.
 */
#ifndef LIBUFFD_UMAP_STORE_HPP
#define LIBUFFD_UMAP_STORE_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <sys/types.h>
#include <unistd.h>

#include <uffd/pager.h>
#include <umap/umap.h>

namespace Umap {

class Store {
public:
	/* A store over the file open on fd (what umap() uses): a StoreFile.
	 * region, rsize and alignsize are umap's, kept for its signature. */
	static Store *make_store(void *region, std::size_t rsize, std::size_t alignsize, int fd);

	virtual ssize_t read_from_store(char *buf, std::size_t nb, off_t off) = 0;
	virtual ssize_t write_to_store(char *buf, std::size_t nb, off_t off) = 0;
	virtual ~Store() {}
};

/* A file, read and written with pread(2) and pwrite(2) at the offsets
 * asked (umap's StoreFile). */
class StoreFile : public Store {
public:
	/* (region, rsize and alignsize are umap's: its StoreFile aligns
	 * I/O for O_DIRECT, which this one does not use.) */
	StoreFile(void *region_, std::size_t rsize_, std::size_t alignsize_, int fd_)
		: fd(fd_)
	{
		(void)region_;
		(void)rsize_;
		(void)alignsize_;
	}

	ssize_t read_from_store(char *buf, std::size_t nb, off_t off)
	{
		return pread(fd, buf, nb, off);
	}

	ssize_t write_to_store(char *buf, std::size_t nb, off_t off)
	{
		return pwrite(fd, buf, nb, off);
	}

private:
	int fd;
};

inline Store *Store::make_store(void *region, std::size_t rsize, std::size_t alignsize, int fd)
{
	return new StoreFile(region, rsize, alignsize, fd);
}

namespace detail {

/* The pager store around a Store object, freed by uunmap (close).  (Its
 * operations are static members: C++ compilers take them where the C
 * header's function pointers are.) */
struct StoreAdapter {
	struct uffd_store store;
	struct uffd_store_ops ops;
	Store *obj;
	std::size_t page;		/* umap's page: the unit of every call */

	static ssize_t read(void *data, void *buf, std::size_t len, std::uint64_t off)
	{
		StoreAdapter *a = static_cast<StoreAdapter *>(data);
		char *p = static_cast<char *>(buf);
		std::size_t done = 0;

		while (done < len) {
			std::size_t n = len - done < a->page ? len - done : a->page;
			ssize_t got = a->obj->read_from_store(p + done, n, (off_t)(off + done));

			if (got < 0)
				return -EIO;
			if ((std::size_t)got < n)
				std::memset(p + done + got, 0, n - got);
			done += n;
		}
		return (ssize_t)len;
	}

	static ssize_t write(void *data, const void *buf, std::size_t len, std::uint64_t off)
	{
		StoreAdapter *a = static_cast<StoreAdapter *>(data);
		char *p = static_cast<char *>(const_cast<void *>(buf));
		std::size_t done = 0;

		while (done < len) {
			std::size_t n = len - done < a->page ? len - done : a->page;

			if (a->obj->write_to_store(p + done, n, (off_t)(off + done)) != (ssize_t)n)
				return -EIO;
			done += n;
		}
		return (ssize_t)len;
	}

	/* A Store tells no size: the map's length is the caller's word. */
	static std::int64_t size(void *)
	{
		return -1;
	}

	static int flush(void *)
	{
		return 0;
	}

	static void close(void *data)
	{
		delete static_cast<StoreAdapter *>(data);
	}
};

} /* namespace detail */

/*
 * umap() over store (umap's signature): length bytes at addr (exactly,
 * with UMAP_FIXED), the store's offsets counted from offset (umap counts
 * them from 0, and umap programs pass 0).  With store NULL, umap() of fd.
 * The region, or UMAP_FAILED with errno.
 */
inline void *umap_ex(void *addr, std::size_t length, int prot, int flags, int fd,
		     off_t offset, Store *store)
{
	detail::StoreAdapter *a;
	void *map;
	int err;

	if (!store)
		return ::umap(addr, length, prot, flags, fd, offset);
	a = new (std::nothrow) detail::StoreAdapter();
	if (!a) {
		errno = ENOMEM;
		return UMAP_FAILED;
	}
	a->obj = store;
	a->page = umapcfg_get_umap_page_size();
	a->ops.read = detail::StoreAdapter::read;
	a->ops.write = detail::StoreAdapter::write;
	a->ops.size = detail::StoreAdapter::size;
	a->ops.flush = detail::StoreAdapter::flush;
	a->ops.close = detail::StoreAdapter::close;
	a->store.ops = &a->ops;
	a->store.data = a;
	a->store.kind = "umap-store";
	map = umap_with_store(addr, length, prot, flags, &a->store, offset);
	if (map == UMAP_FAILED) {
		err = errno;
		delete a;
		errno = err;
	}
	return map;
}

} /* namespace Umap */

#endif
