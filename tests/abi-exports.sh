#!/usr/bin/env bash
# The ABI is exactly the documented API.  libuffd.so exports every function
# its version script names and nothing else, each under a LIBUFFD_ version
# node and each with a man page in man/; every function man page names an
# export; libuffd.a defines no global symbol outside uffd_ (internal helpers
# are hidden and localized); libumap.so exports only umap's C API, each
# function documented in man/umap.3.
set -u
src=${SRCDIR:?SRCDIR is the source tree}
build=${BUILD:?BUILD is the build directory}
case $build in /*) ;; *) build=$src/$build ;; esac
fail() { echo "FAIL: $*"; exit 1; }
for f in "$build/libuffd.so" "$build/libuffd.a" "$build/libumap.so"; do
	[ -e "$f" ] || fail "$f not built"
done

# What the version script names.
mapped=$(sed -n 's/^[[:space:]]*\(uffd_[a-z0-9_]*\);.*/\1/p' "$src/src/libuffd.map" | sort)
[ -n "$mapped" ] || fail "no names in src/libuffd.map"
[ -z "$(grep -E '^[[:space:]]*[a-z_]*\*;' "$src/src/libuffd.map" | grep -v 'local' |
	grep -vx '[[:space:]]*\*;')" ] || fail "src/libuffd.map uses a wildcard"

# What the shared library exports, with its version node.
dyn=$(nm -D --defined-only --with-symbol-versions "$build/libuffd.so" |
      awk '$2 ~ /[TDBRWVi]/ {print $3}')
exported=$(echo "$dyn" | grep -v '^LIBUFFD_' | sed 's/@.*//' | sort)
unversioned=$(echo "$dyn" | grep -v '^LIBUFFD_' | grep -v '@@\?LIBUFFD_[0-9.]*$' || true)
[ -z "$unversioned" ] || fail "exported without a LIBUFFD_ node: $unversioned"
extra=$(comm -13 <(echo "$mapped") <(echo "$exported"))
[ -z "$extra" ] || fail "exported but not in the version script: $extra"
missing=$(comm -23 <(echo "$mapped") <(echo "$exported"))
[ -z "$missing" ] || fail "in the version script but not exported: $missing"

# Every export documented, and every function page an export.
pages=$(cd "$src/man" && ls uffd_*.3 2>/dev/null | sed 's/\.3$//' | sort)
undocumented=$(comm -23 <(echo "$exported") <(echo "$pages"))
[ -z "$undocumented" ] || fail "exported without a man page: $undocumented"
stale=$(comm -13 <(echo "$exported") <(echo "$pages"))
[ -z "$stale" ] || fail "man pages of functions not exported: $stale"

# The static library: one object, only uffd_ globals.
globals=$(nm -g --defined-only "$build/libuffd.a" | awk 'NF == 3 {print $3}' | sort)
[ -n "$globals" ] || fail "libuffd.a defines nothing"
foreign=$(echo "$globals" | grep -v '^uffd_' || true)
[ -z "$foreign" ] || fail "libuffd.a defines globals outside uffd_: $foreign"
[ "$globals" = "$exported" ] || fail "libuffd.a and libuffd.so differ: $(diff <(echo "$globals") <(echo "$exported") | tr '\n' ' ')"

# libumap: umap's C API only, each function in man/umap.3.
umap_exports=$(nm -D --defined-only "$build/libumap.so" | awk '$2 ~ /[TDBRW]/ {print $3}')
bad=$(echo "$umap_exports" | grep -Ev '^(umap|umap_.*|uunmap|umapcfg_.*)$' || true)
[ -z "$bad" ] || fail "libumap.so exports outside umap's API: $bad"
for f in $umap_exports; do
	grep -q "^\.B[RI]* $f\b\|^\.BR* \"\?$f\b\|\b$f\b" "$src/man/umap.3" ||
		fail "libumap.so exports $f, which man/umap.3 does not document"
done
echo "libuffd.so: $(echo "$exported" | wc -l) functions; libumap.so: $(echo "$umap_exports" | wc -l)"
exit 0
