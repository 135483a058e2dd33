#!/usr/bin/env bash
# An umap program builds against include/umap/umap.h and links with -lumap
# alone: libumap.so (soname libumap.so.1) exports only umap's C API (umap*,
# uunmap, umapcfg_*) and carries libuffd inside, and the program maps a
# file, writes through the map, and finds its writes in the file after
# uunmap.
set -u
src=${SRCDIR:?SRCDIR is the source tree}
build=${BUILD:?BUILD is the build directory}
case $build in /*) ;; *) build=$src/$build ;; esac
lib=$build/libumap.so
[ -e "$lib" ] || { echo "SKIP: $lib not built"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libumap.so.1 ] || fail "soname is '$soname'"
exports=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRW]/ {print $3}')
bad=$(echo "$exports" | grep -Ev '^(umap|umap_.*|uunmap|umapcfg_.*)$' || true)
[ -z "$bad" ] || fail "exports outside umap's API: $bad"
for f in umap uunmap umap_flush umap_prefetch umap_fetch_and_pin \
	 umap_has_write_support umapcfg_get_umap_page_size \
	 umapcfg_get_max_pages_in_buffer umapcfg_get_read_ahead; do
	echo "$exports" | grep -qx "$f" || fail "$f not exported"
done

cat > "$tmp/prog.c" <<'PROG'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <umap/umap.h>

int main(int argc, char **argv)
{
	uint64_t psize = umapcfg_get_umap_page_size();
	int fd = open(argv[1], O_RDWR);
	char *p, buf[6] = "";

	if (fd < 0 || ftruncate(fd, 4 * psize))
		return 2;
	p = umap(NULL, 4 * psize, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
	if (p == UMAP_FAILED)
		return errno == EOPNOTSUPP ? 77 : 3;
	memcpy(p + 2 * psize, "hello", 5);
	if (uunmap(p, 4 * psize) || pread(fd, buf, 5, 2 * psize) != 5)
		return 4;
	printf("%s\n", buf);
	return 0;
}
PROG
# A sanitizer build of libumap needs its runtime linked into the program.
san=
case $(readelf -d "$lib") in
*libasan*) san=-fsanitize=address ;;
*libtsan*) san=-fsanitize=thread ;;
*libubsan*) san=-fsanitize=undefined ;;
esac
${CC:-cc} $san -o "$tmp/prog" "$tmp/prog.c" -I"$src/include" -L"$build" -lumap ||
	fail "compile and link with -lumap"
touch "$tmp/data"
out=$(LD_LIBRARY_PATH=$build "$tmp/prog" "$tmp/data")
rc=$?
[ $rc -eq 77 ] && { echo "SKIP: the pager is not available here"; exit 77; }
[ $rc -eq 0 ] || fail "program exited $rc"
[ "$out" = hello ] || fail "program printed '$out'"
needed=$(readelf -d "$tmp/prog" | grep NEEDED)
echo "$needed" | grep -q 'libumap.so.1' || fail "not linked to libumap.so.1: $needed"
echo "$needed" | grep -q 'libuffd' && fail "needs libuffd as well: $needed"
exit 0
