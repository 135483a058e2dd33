#!/usr/bin/env bash
# make install puts a usable libuffd where pkg-config finds it: headers
# under include/uffd/, libuffd.so with soname libuffd.so.1 exporting only
# uffd_* symbols, libuffd.a, libuffd.pc, the uffd tool, man pages and the
# umap-compatible header and library; a
# program built with `pkg-config --cflags --libs libuffd` against the
# installed shared library handles a MISSING fault.
set -u
src=${SRCDIR:?SRCDIR is the source tree}
command -v pkg-config >/dev/null || { echo "SKIP: pkg-config not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

MAKEFLAGS= MAKELEVEL= make -s -j"$(nproc)" -C "$src" install SAN= PREFIX=/usr DESTDIR="$tmp/root" BUILD="$tmp/build" \
	>"$tmp/log" 2>&1 || { tail -20 "$tmp/log"; fail "make install"; }
root=$tmp/root
for f in usr/include/uffd/uffd.h usr/include/uffd/handler.h usr/lib/libuffd.a \
	 usr/lib/libuffd.so usr/lib/libuffd.so.1 usr/lib/pkgconfig/libuffd.pc \
	 usr/bin/uffd usr/share/man/man3/uffd_copy.3 usr/share/man/man1/uffd.1 \
	 usr/include/umap/umap.h usr/lib/libumap.so.1 usr/share/man/man3/umap.3 \
	 usr/share/man/man3/uffd_pager_new.3; do
	[ -e "$root/$f" ] || fail "missing $f"
done
soname=$(readelf -d "$root/usr/lib/libuffd.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libuffd.so.1 ] || fail "soname is '$soname'"
bad=$(nm -D --defined-only "$root/usr/lib/libuffd.so" | awk '$2 ~ /[TDBR]/ {print $3}' |
      grep -v '^uffd_' | grep -v '^LIBUFFD' || true)
[ -z "$bad" ] || fail "exports outside uffd_*: $bad"

export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/pkgconfig
flags=$(pkg-config --cflags --libs libuffd) || fail "pkg-config libuffd"
${CC:-cc} -o "$tmp/prog" "$src/examples/missing-fault.c" $flags -pthread ||
	fail "compile against the installed headers: $flags"
out=$(LD_LIBRARY_PATH=$root/usr/lib "$tmp/prog") || fail "program exited $?"
[ "$out" = "reader saw: filled by the handler" ] || fail "program printed '$out'"
ldd_out=$(LD_LIBRARY_PATH=$root/usr/lib ldd "$tmp/prog")
echo "$ldd_out" | grep -q "libuffd.so.1 => $root/usr/lib/libuffd.so.1" ||
	fail "not linked to the installed shared library: $ldd_out"
exit 0
