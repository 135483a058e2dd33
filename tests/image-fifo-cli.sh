#!/usr/bin/env bash
# uffd snapshot-info and uffd restore (eager and lazy) refuse a FIFO, as
# the image or as a delta's parent, at once: exit 1 with "not a regular
# file" naming the FIFO, never blocked waiting for a writer (each run has
# 10 s before it counts as blocked).
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# run ARGS...: sets rc, out, err
run() {
	timeout -k 2 10 "$uffd" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
	[ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "$* blocked for 10 s"
}
# expect_refused FIFO-PATH ARGS...
expect_refused() {
	local fifo=$1
	shift
	run "$@"
	[ "$rc" = 1 ] || fail "$*: exit $rc, want 1: $err"
	grep -q "^uffd [a-z-]*: $fifo: not a regular file\$" <<<"$err" ||
		fail "$*: message: $err"
}

mkfifo "$tmp/fifo.img"
expect_refused "$tmp/fifo.img" snapshot-info "$tmp/fifo.img"
expect_refused "$tmp/fifo.img" restore --anywhere "$tmp/fifo.img"
expect_refused "$tmp/fifo.img" restore --lazy --anywhere "$tmp/fifo.img"

mkdir "$tmp/chain"
"$build/tests/image-delta-chain" --make-chain "$tmp/chain" || fail "make chain"
rm "$tmp/chain/base.img"
mkfifo "$tmp/chain/base.img"
expect_refused "$tmp/chain/base.img" snapshot-info "$tmp/chain/d2.img"
expect_refused "$tmp/chain/base.img" restore --anywhere "$tmp/chain/d2.img"
expect_refused "$tmp/chain/base.img" restore --lazy --anywhere "$tmp/chain/d2.img"
exit 0
