#!/usr/bin/env bash
# uffd restore never restores a wrong page with success: in the chain of
# image-chain-lying-header (base: pages 0, 1 = A; d1: page 0 = B; d2: page
# 1 = C; one bit of d1's chunk header flipped so it claims page 1, which
# would leave page 0 = A), eager and lazy restores of d2.img exit 1 and
# name d1.img and the chunk's offset - for a version 3 chain (the headers
# read from their copy: the damaged chunk fails its CRC at the first read),
# a version 2 chain (refused at open) and a version 1 chain (refused at the
# first read) alike - and uffd snapshot-info names the same file and offset.
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# run ARGS...: sets rc, out, err
run() {
	"$uffd" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

for v in v3 v2 v1; do
	dir=$tmp/$v
	mkdir "$dir"
	flag=
	[ $v = v3 ] || flag=--$v
	read -r _ off < <("$build/tests/image-chain-lying-header" --make-chain "$dir" $flag) ||
		fail "make chain $v"
	[ -n "$off" ] || fail "$v: no chunk offset"
	for mode in "" --lazy; do
		run restore --anywhere $mode "$dir/d2.img"
		[ "$rc" = 1 ] || fail "$v restore $mode: exit $rc, want 1 (out: $out; err: $err)"
		grep -q "^uffd restore: $dir/d1.img: .* at offset $off\$" <<<"$err" ||
			fail "$v restore $mode: message: $err"
	done
	run snapshot-info "$dir/d2.img"
	[ "$rc" = 1 ] || fail "$v snapshot-info: exit $rc, want 1"
	grep -q "^uffd snapshot-info: $dir/d1.img: .* at offset $off\$" <<<"$err" ||
		fail "$v snapshot-info: message: $err"
done
exit 0
