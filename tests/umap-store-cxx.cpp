/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * umap's C++ Store API (umap/store/Store.hpp, SparseStore.h) over the
 * pager: Umap::umap_ex() maps a Store of the program's own, calls it one
 * umap page at a time at offsets from the region's start, and writes its
 * pages back through it at uunmap; a SparseStore made in a new directory,
 * mapped at a fixed address (UMAP_FIXED, as LLNL's umap-sparsestore does),
 * keeps every word written, files of its size made as they are used, and
 * reads them back when opened again; umap_ex() with no store is umap() of
 * the fd, and Store::make_store() a file store.
 */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <umap/store/SparseStore.h>
#include <umap/umap.h>

#define FAIL(...) do { fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);	\
		       fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define CHECK(c) do { if (!(c)) FAIL("%s", #c); } while (0)

static const size_t PAGE = 4096;

/* Memory, and a record of every call's size and offset. */
class MemStore : public Umap::Store {
public:
	explicit MemStore(size_t len) : mem(len, 0), bad_calls(0), reads(0), writes(0) {}

	ssize_t read_from_store(char *buf, size_t nb, off_t off)
	{
		note(nb, off);
		__atomic_fetch_add(&reads, 1, __ATOMIC_RELAXED);
		memcpy(buf, &mem[off], nb);
		return nb;
	}

	ssize_t write_to_store(char *buf, size_t nb, off_t off)
	{
		note(nb, off);
		__atomic_fetch_add(&writes, 1, __ATOMIC_RELAXED);
		memcpy(&mem[off], buf, nb);
		return nb;
	}

	std::vector<char> mem;
	int bad_calls, reads, writes;

private:
	void note(size_t nb, off_t off)
	{
		/* umap's contract: one umap page, at a page's offset */
		if (nb != umapcfg_get_umap_page_size() || off % nb ||
		    (size_t)off + nb > mem.size())
			__atomic_fetch_add(&bad_calls, 1, __ATOMIC_RELAXED);
	}
};

static uint64_t word(uint64_t i, uint64_t seed)
{
	uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ULL ^ seed;

	z ^= z >> 31;
	return z * 0xbf58476d1ce4e5b9ULL;
}

static void *map_or_skip(void *addr, size_t len, int prot, int flags, int fd, Umap::Store *s)
{
	void *p = Umap::umap_ex(addr, len, prot, flags, fd, 0, s);

	if (p == UMAP_FAILED && (errno == EOPNOTSUPP || errno == EPERM)) {
		fprintf(stderr, "SKIP: the pager is not available here: %s\n", strerror(errno));
		exit(77);
	}
	if (p == UMAP_FAILED)
		FAIL("umap_ex: %s", strerror(errno));
	return p;
}

static void own_store(void)
{
	const size_t len = 64 * PAGE;
	MemStore s(len);
	uint64_t *map;
	size_t i;

	for (i = 0; i < len / 8; i++)
		((uint64_t *)s.mem.data())[i] = word(i, 1);
	map = (uint64_t *)map_or_skip(NULL, len, PROT_READ | PROT_WRITE, UMAP_PRIVATE, -1, &s);
	for (i = 0; i < len / 8; i += 7)
		CHECK(map[i] == word(i, 1));
	for (i = 0; i < len / 8; i += 3)
		map[i] = word(i, 2);
	CHECK(uunmap(map, len) == 0);
	for (i = 0; i < len / 8; i++)
		CHECK(((uint64_t *)s.mem.data())[i] == (i % 3 ? word(i, 1) : word(i, 2)));
	CHECK(s.reads >= (int)(len / PAGE));
	CHECK(s.writes >= (int)(len / PAGE));
	CHECK(s.bad_calls == 0);
}

static void sparse_store(const std::string &dir)
{
	const size_t len = 256 * PAGE, file_size = 32 * PAGE;
	Umap::SparseStore *store;
	uint64_t *map;
	void *at;
	size_t i;

	/* Where the region goes: a reservation the fixed map replaces. */
	at = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(at != MAP_FAILED);
	store = new Umap::SparseStore(len, PAGE, dir, file_size);
	map = (uint64_t *)map_or_skip(at, len, PROT_READ | PROT_WRITE,
				      UMAP_PRIVATE | MAP_FIXED, -1, store);
	CHECK(map == at);
	/* A third of the region: the files past it are never made. */
	for (i = 0; i < len / 8 / 3; i++)
		map[i] = word(i, 3);
	CHECK(uunmap(map, len) == 0);
	CHECK(store->close_files() == 0);
	CHECK(store->get_current_capacity() == len);
	delete store;
	CHECK(Umap::SparseStore::get_capacity(dir) == len);
	for (i = 0; i < len / file_size; i++) {
		struct stat st;
		std::string f = dir + "/" + std::to_string(i);
		bool used = i * file_size < len / 3;

		CHECK((stat(f.c_str(), &st) == 0) == used);
		CHECK(!used || (size_t)st.st_size == file_size);
	}
	/* Creating over it again is refused. */
	try {
		Umap::SparseStore again(len, PAGE, dir, file_size);
		FAIL("a second SparseStore created in %s", dir.c_str());
	} catch (const std::system_error &e) {
		CHECK(e.code().value() == EEXIST);
	}

	/* Opened again, read-only: every word, zeros past what was written. */
	store = new Umap::SparseStore(dir, true);
	map = (uint64_t *)map_or_skip(at, len, PROT_READ, UMAP_PRIVATE | MAP_FIXED, -1, store);
	CHECK(map == at);
	for (i = 0; i < len / 8; i++)
		if (map[i] != (i < len / 8 / 3 ? word(i, 3) : 0))
			FAIL("word %zu: %#llx", i, (unsigned long long)map[i]);
	CHECK(uunmap(map, len) == 0);
	CHECK(store->close_files() == 0);
	delete store;
}

static void file_stores(void)
{
	char path[] = "/tmp/umap-store-cxx.XXXXXX";
	std::vector<uint64_t> data(16 * PAGE / 8);
	Umap::Store *s;
	uint64_t *map;
	size_t i;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	unlink(path);
	for (i = 0; i < data.size(); i++)
		data[i] = word(i, 4);
	CHECK(pwrite(fd, data.data(), 16 * PAGE, 0) == (ssize_t)(16 * PAGE));
	/* No store: umap() of the fd. */
	map = (uint64_t *)map_or_skip(NULL, 16 * PAGE, PROT_READ, UMAP_PRIVATE, fd, NULL);
	CHECK(map[100] == word(100, 4));
	CHECK(uunmap(map, 16 * PAGE) == 0);
	/* make_store: the same file as a Store. */
	s = Umap::Store::make_store(NULL, 16 * PAGE, PAGE, fd);
	map = (uint64_t *)map_or_skip(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, UMAP_PRIVATE, -1, s);
	CHECK(map[1000] == word(1000, 4));
	map[1001] = 42;
	CHECK(uunmap(map, 16 * PAGE) == 0);
	CHECK(pread(fd, &data[0], 8, 1001 * 8) == 8 && data[0] == 42);
	delete s;
	close(fd);
}

int main(void)
{
	char dir[] = "/tmp/umap-store-cxx-dir.XXXXXX";
	std::string cmd;

	if (!mkdtemp(dir))
		FAIL("mkdtemp: %s", strerror(errno));
	own_store();
	sparse_store(std::string(dir) + "/sparse");
	file_stores();
	cmd = std::string("rm -rf '") + dir + "'";
	CHECK(system(cmd.c_str()) == 0);
	return 0;
}
