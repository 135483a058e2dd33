#!/usr/bin/env bash
# uffd serve runs a page server until SIGTERM: a client restores exactly
# from it (--shared-cache: mapped from the server's cache), the connection
# is logged on stderr ("accepted", "restored"), and at exit --json prints
# one object with the totals (1 accepted and restored, every page served
# once, each data page in the cache once, nothing refused).  A second server on
# the same socket, a missing image and a missing working set exit 1 with
# the reason; bad usage exits 2; --help exits 0.  The image and client
# are serve-restore-exact's --make and --client (512 pages).
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill -9 $server 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$build/tests/serve-restore-exact" --make "$tmp" || fail "make the image"
sock=$tmp/sock

"$uffd" serve --socket "$sock" --image "$tmp/img" --shared-cache --json >"$tmp/out" 2>"$tmp/err" &
server=$!
for i in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
[ -S "$sock" ] || fail "no socket after 5 s: $(cat "$tmp/err")"

# A second server on the same socket.
"$uffd" serve --socket "$sock" --image "$tmp/img" >/dev/null 2>"$tmp/err2"
rc=$?
[ $rc = 1 ] || fail "second server: exit $rc, want 1"
grep -q "a server is listening there" "$tmp/err2" || fail "second server: $(cat "$tmp/err2")"

"$build/tests/serve-restore-exact" --client "$sock" || fail "the client"
kill -TERM $server
wait $server
rc=$?
server=
[ $rc = 0 ] || fail "server exit $rc: $(cat "$tmp/err")"
grep -q "accepted: 1 region.*from the shared cache" "$tmp/err" ||
	fail "no 'accepted' line: $(cat "$tmp/err")"
grep -q "restored: " "$tmp/err" || fail "no 'restored' line: $(cat "$tmp/err")"
[ ! -e "$sock" ] || fail "the socket file is left behind"
out=$(cat "$tmp/out")
if command -v python3 >/dev/null; then
	python3 - "$out" <<'PY' || fail "JSON: $out"
import json, sys
text = sys.argv[1]
assert text.count("\n") == 0, "one line"
j = json.loads(text)
assert j["accepted"] == 1 and j["done"] == 1 and j["gone"] == 0, j
assert j["refused"] == 0 and j["errors"] == 0, j
assert j["faults"] + j["filled"] + j["prefetched"] == 512, j
assert set(j["events"]) == {"fork", "remap", "remove", "unmap"}, j
assert j["cached"] == 512 - 73, j	# the image's data pages (1 in 7 is a hole)
PY
else
	grep -q '"accepted":1,"refused":0,"done":1' <<<"$out" || fail "JSON: $out"
fi

# Failures to start.
"$uffd" serve --socket "$sock" --image "$tmp/missing.img" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc = 1 ] && grep -q "No such file" "$tmp/err" || fail "missing image: exit $rc: $(cat "$tmp/err")"
"$uffd" serve --socket "$sock" --image "$tmp/img" --prefetch --ws "$tmp/none.ws" \
	>/dev/null 2>"$tmp/err"
rc=$?
[ $rc = 1 ] && grep -q "No such file" "$tmp/err" || fail "missing ws: exit $rc: $(cat "$tmp/err")"

# Usage.
for args in "" "--image $tmp/img" "--socket $sock" "--socket $sock --image $tmp/img --mem-file $tmp/mem" \
	    "--socket $sock --image $tmp/img --record --prefetch" \
	    "--socket $sock --image $tmp/img --allow-uid -1" "--socket $sock --image $tmp/img --mode 999" \
	    "--socket $sock --image $tmp/img extra"; do
	"$uffd" serve $args >/dev/null 2>&1
	rc=$?
	[ $rc = 2 ] || fail "uffd serve $args: exit $rc, want 2"
done
"$uffd" serve --help | grep -q "^usage: uffd serve" || fail "--help"
exit 0
