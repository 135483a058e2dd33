#!/usr/bin/env bash
# uffd snapshot-info reports an image and its chain and verifies them: on
# sound images it prints the counts and "ok" and exits 0 (text and JSON);
# on a flipped data byte, a truncated file, a corrupt ancestor or a missing
# parent it exits 1 with a message naming the file and the exact offset;
# bad usage exits 2.  Images come from the test programs' --make-image and
# --make-chain modes.
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# run ARGS...: sets rc, out, err
run() {
	"$uffd" snapshot-info "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}
expect_rc() { [ "$rc" = "$1" ] || fail "snapshot-info $2: exit $rc, want $1: $err"; }

# --- one base image -----------------------------------------------------
img=$tmp/rt.img
"$build/tests/image-round-trip" --make-image "$img" >"$tmp/chunks" || fail "make image"
# the first chunk that has data: "chunk OFFSET SIZE", SIZE > 36
read -r _ off size < <(awk '$3 > 36' "$tmp/chunks" | head -1)
[ -n "$off" ] || fail "no data chunk listed"

run "$img"
expect_rc 0 "on a sound image"
grep -q '^  chunks     11$' <<<"$out" || fail "chunk count: $out"
grep -q '^  pages      72 (28 data, 44 zero)$' <<<"$out" || fail "page counts: $out"
grep -q '^  checksums  ok$' <<<"$out" || fail "no checksums ok: $out"
grep -q '^chain of 1 image: ok$' <<<"$out" || fail "no verdict: $out"
grep -q '0x0000000040000000  8 MiB       2 MiB      hugetlb' <<<"$out" || fail "region row: $out"

run --json "$img"
expect_rc 0 "--json on a sound image"
grep -q '"chunks":11,"pages":72,"zero_pages":44' <<<"$out" || fail "json counts: $out"
grep -q '"ok":true}$' <<<"$out" || fail "json verdict: $out"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$out" || fail "invalid JSON: $out"
fi

# a flipped byte in the middle of that chunk's data
cp "$img" "$tmp/bad.img"
pos=$((off + 32 + (size - 36) / 2))
printf '\x5a' | dd of="$tmp/bad.img" bs=1 seek="$pos" conv=notrunc status=none
run "$tmp/bad.img"
expect_rc 1 "on a flipped data byte"
grep -q "bad.img: .* at offset $off\$" <<<"$err" || fail "message: $err"
run --json "$tmp/bad.img"
expect_rc 1 "--json on a flipped data byte"
grep -q "\"ok\":false,\"error\":{\"file\":\"$tmp/bad.img\",\"offset\":$off," <<<"$out" ||
	fail "json error: $out"
run --no-verify "$tmp/bad.img"		# only the checksums can see it
expect_rc 0 "--no-verify on a flipped data byte"
grep -q '^  checksums  not verified$' <<<"$out" || fail "no-verify output: $out"

# truncated inside that chunk: open fails where the data ends
cut=$((off + 100))
head -c "$cut" "$img" >"$tmp/short.img"
run --no-verify "$tmp/short.img"
expect_rc 1 "on a truncated image"
grep -q "short.img: .* at offset $cut\$" <<<"$err" || fail "truncated message: $err"

# not an image; missing
echo "hello" >"$tmp/text"
run "$tmp/text"
expect_rc 1 "on a text file"
grep -q "text: .* at offset 0\$" <<<"$err" || fail "text file message: $err"
run "$tmp/missing.img"
expect_rc 1 "on a missing file"
grep -q "missing.img: No such file or directory" <<<"$err" || fail "missing message: $err"

# --- a chain: base.img <- d1.img <- d2.img ------------------------------
mkdir "$tmp/chain"
"$build/tests/image-delta-chain" --make-chain "$tmp/chain" || fail "make chain"
run "$tmp/chain/d2.img"
expect_rc 0 "on a sound chain"
[ "$(grep -c '^  checksums  ok$' <<<"$out")" = 3 ] || fail "three images verified: $out"
grep -q '^  parent     d1.img (id 0x' <<<"$out" || fail "parent line: $out"
grep -q '^chain of 3 images: ok$' <<<"$out" || fail "chain verdict: $out"

# a damaged ancestor is named: flip a byte of base.img's first chunk's data
printf '\x01' | dd of="$tmp/chain/base.img" bs=1 seek=$((388 + 40)) conv=notrunc status=none
run "$tmp/chain/d2.img"
expect_rc 1 "on a chain with a corrupt base"
grep -q "chain/base.img: .* at offset 388\$" <<<"$err" || fail "corrupt base message: $err"
printf '\x01' | dd of="$tmp/chain/base.img" bs=1 seek=$((388 + 40)) conv=notrunc status=none

# a missing parent: the child that names it, at its parent field
mv "$tmp/chain/d1.img" "$tmp/chain/d1.gone"
run "$tmp/chain/d2.img"
expect_rc 1 "on a chain with a missing parent"
grep -q "chain/d2.img: parent .*d1.img: No such file or directory at offset 64\$" <<<"$err" ||
	fail "missing parent message: $err"
mv "$tmp/chain/d1.gone" "$tmp/chain/d1.img"

# --- usage ----------------------------------------------------------------
run
expect_rc 2 "without a file"
run "$img" "$img"
expect_rc 2 "with two files"
run --bogus "$img"
expect_rc 2 "with an unknown option"
run --help
expect_rc 0 "--help"
grep -q '^usage: uffd snapshot-info FILE' <<<"$out" || fail "help: $out"
exit 0
