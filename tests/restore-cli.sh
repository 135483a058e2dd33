#!/usr/bin/env bash
# uffd restore restores an image chain into its own process and reports
# it: eagerly with --anywhere it exits 0 and prints the region and page
# counts and how many pages came back zero; --lazy --anywhere --json prints
# one valid JSON object with the same counts, every recorded page
# prefetched (the tool touches none; the one hole is left to the kernel)
# and error 0; a missing file exits 1 with the file name
# in the message; no file, two files or an unknown option exit 2; --help
# exits 0.  The chain is image-delta-chain's --make-chain (d2.img <- d1.img
# <- base.img: 2 regions, 10 + 3 pages, of which 4 + 1 read as zero at d2).
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# run ARGS...: sets rc, out, err
run() {
	"$uffd" restore "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}
expect_rc() { [ "$rc" = "$1" ] || fail "restore $2: exit $rc, want $1: $err"; }

mkdir "$tmp/chain"
"$build/tests/image-delta-chain" --make-chain "$tmp/chain" || fail "make chain"
img=$tmp/chain/d2.img

# --- eager ------------------------------------------------------------------
run "$img" --anywhere
expect_rc 0 "--anywhere"
[ -z "$err" ] || fail "--anywhere wrote to stderr: $err"
grep -Eq "^$img: 2 regions, 13 pages \(5 zero\) restored eagerly in [0-9]+\.[0-9] ms\$" <<<"$out" ||
	fail "eager output: $out"

# --- lazy, JSON -------------------------------------------------------------
run --lazy --anywhere --json "$img"
expect_rc 0 "--lazy --anywhere --json"
if command -v python3 >/dev/null; then
	python3 - "$img" "$out" <<'EOF' || fail "JSON: $out"
import json, sys
img, text = sys.argv[1], sys.argv[2]
assert text.count("\n") == 0, "one line"
j = json.loads(text)
want = {"file": img, "regions": 2, "pages": 13, "faulted": 0, "prefetched": 12,
        "zero": 5, "error": 0}
bad = {k: (j.get(k), v) for k, v in want.items() if j.get(k) != v}
assert not bad, "got/want: %r" % bad
assert isinstance(j["ms"], float) and j["ms"] >= 0, "ms"
assert set(j) == set(want) | {"ms"}, "keys %r" % sorted(j)
EOF
else
	want="^{\"file\":\"$img\",\"regions\":2,\"pages\":13,\"faulted\":0,"
	want+="\"prefetched\":12,\"zero\":5,\"ms\":[0-9.]*,\"error\":0}\$"
	grep -q "$want" <<<"$out" || fail "JSON: $out"
fi

# --- failures -----------------------------------------------------------------
run "$tmp/missing.img" --anywhere
expect_rc 1 "on a missing file"
[ -z "$out" ] || fail "missing file: output on stdout: $out"
grep -q "^uffd restore: $tmp/missing.img: No such file or directory\$" <<<"$err" ||
	fail "missing file message: $err"

# --- usage --------------------------------------------------------------------
run
expect_rc 2 "without a file"
grep -q '^usage: uffd restore FILE' <<<"$err" || fail "usage message: $err"
run "$img" "$img"
expect_rc 2 "with two files"
run --bogus "$img"
expect_rc 2 "with an unknown option"
run --help
expect_rc 0 "--help"
grep -q '^usage: uffd restore FILE' <<<"$out" || fail "help: $out"
exit 0
