#!/usr/bin/env bash
# A migration between two hosts: uffd migrate runs the source and the
# destination in network namespaces of their own, joined by a veth pair
# (198.18.0.1 and 198.18.0.2) shaped by tbf to 1000 Mbit/s, with a relay
# adding 0.5 ms each way; the checker's writers move with the memory.
# It must end complete, with the checker's verdict "exact", every page the
# switchover named mapped exactly once (answered + streamed = named), a
# round trip above the added 1 ms, and no veth left behind (the
# namespaces are the processes' own: they go with them).  Then the same
# with the memfd destination (MINOR faults).  Skips (77) where namespaces
# cannot be made or iproute2 is missing.
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
fail() { echo "FAIL: $*"; exit 1; }

command -v ip >/dev/null && command -v tc >/dev/null ||
	{ echo "SKIP: ip(8)/tc(8) not installed (iproute2)" >&2; exit 77; }
unshare -n true 2>/dev/null || { echo "SKIP: cannot make a network namespace" >&2; exit 77; }

veths() { ip -o link show 2>/dev/null | grep -c ": um[0-9]*[ab]@" ; }
before=$(veths)

field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$out"; }

for extra in "" "--minor"; do
	out=$("$uffd" migrate --netns --mbit 1000 --delay-us 500 --size 32 --hot 4 \
		--rate 20000 --json $extra 2>&1)
	rc=$?
	[ $rc = 0 ] || fail "uffd migrate $extra: exit $rc: $out"
	[ "$(field exact)" = true ] || fail "not exact ($extra): $out"
	[ "$(field phase)" = '"complete"' ] || fail "phase ($extra): $out"
	named=$(field switchover_pages)
	got=$(( $(field answered) + $(field streamed) ))
	[ "$got" = "$named" ] || fail "$got pages mapped of $named named ($extra): $out"
	awk -v r="$(field rtt_ms)" 'BEGIN { exit !(r > 1.0) }' ||
		fail "round trip $(field rtt_ms) ms: the relay's 2 x 0.5 ms missing ($extra)"
done
[ "$(veths)" = "$before" ] || fail "a veth was left behind"
echo "two namespaces: exact, $named pages after the switchover"
exit 0
