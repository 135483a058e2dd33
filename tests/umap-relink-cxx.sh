#!/usr/bin/env bash
# A C++ umap program that gives umap its own store - umap/store/SparseStore.h
# and Umap::umap_ex at a fixed address, as LLNL's umap-sparsestore does -
# builds against include/umap and links with -lumap alone, and the words it
# wrote through the map are in the store's files after uunmap.
set -u
src=${SRCDIR:?SRCDIR is the source tree}
build=${BUILD:?BUILD is the build directory}
case $build in /*) ;; *) build=$src/$build ;; esac
lib=$build/libumap.so
cxx=${CXX:-c++}
[ -e "$lib" ] || { echo "SKIP: $lib not built"; exit 77; }
command -v "$cxx" >/dev/null || { echo "SKIP: no C++ compiler ($cxx)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/prog.cpp" <<'PROG'
#include <cstdint>
#include <cstdio>
#include <string>
#include <sys/mman.h>
#include <umap/store/SparseStore.h>
#include <umap/umap.h>

int main(int argc, char **argv)
{
	const size_t len = 1 << 20, page = umapcfg_get_umap_page_size();
	Umap::SparseStore *store = new Umap::SparseStore(len, page, argv[1], len / 4);
	void *at = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *region;

	region = (uint64_t *)umap_ex(at, len, PROT_READ | PROT_WRITE,
				     UMAP_PRIVATE | MAP_FIXED, -1, 0, store);
	if (region == UMAP_FAILED)
		return errno == EOPNOTSUPP ? 77 : 3;
	if (region != at)
		return 4;
	for (size_t i = 0; i < len / 8; i++)
		region[i] = len / 8 - i;
	if (uunmap(region, len) || store->close_files())
		return 5;
	delete store;
	printf("%zu\n", Umap::SparseStore::get_capacity(argv[1]));
	return 0;
}
PROG
san=
case $(readelf -d "$lib") in
*libasan*) san=-fsanitize=address ;;
*libtsan*) san=-fsanitize=thread ;;
*libubsan*) san=-fsanitize=undefined ;;
esac
"$cxx" $san -o "$tmp/prog" "$tmp/prog.cpp" -I"$src/include" -L"$build" -lumap ||
	fail "compile and link with -lumap"
out=$(LD_LIBRARY_PATH=$build "$tmp/prog" "$tmp/store")
rc=$?
[ $rc -eq 77 ] && { echo "SKIP: the pager is not available here"; exit 77; }
[ $rc -eq 0 ] || fail "program exited $rc"
[ "$out" = 1048576 ] || fail "capacity '$out'"
[ "$(tr '\n' ' ' < "$tmp/store/_metadata")" = "262144 1048576" ] ||
	fail "_metadata: $(cat "$tmp/store/_metadata")"
# Word i is len/8 - i: the first of file 1 (byte 262144) is 131072 - 32768.
first=$(od -An -t u8 -j 0 -N 8 "$tmp/store/1" | tr -d ' ')
[ "$first" = 98304 ] || fail "file 1 starts with '$first', want 98304"
last=$(od -An -t u8 -j $((262144 - 8)) -N 8 "$tmp/store/3" | tr -d ' ')
[ "$last" = 1 ] || fail "file 3 ends with '$last', want 1"
needed=$(readelf -d "$tmp/prog" | grep NEEDED)
echo "$needed" | grep -q 'libumap.so.1' || fail "not linked to libumap.so.1: $needed"
echo "$needed" | grep -q 'libuffd' && fail "needs libuffd as well: $needed"
exit 0
