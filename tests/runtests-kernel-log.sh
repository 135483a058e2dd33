#!/usr/bin/env bash
# The runner fails a test during which the kernel logged a WARNING (or BUG,
# Oops, RCU stall), even though the test exited 0, and passes one during
# which the kernel logged only ordinary lines.  The kernel log is faked
# through RUNTESTS_KERNEL_LOG so nothing is written to the real one.
set -u
src=${SRCDIR:?SRCDIR is the source tree}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

log=$tmp/kmsg
printf '[    1.000000] booted\n' >"$log"
cat >"$tmp/show-log" <<EOT
#!/bin/sh
cat "$log"
EOT
mkdir "$tmp/t"
cat >"$tmp/t/quiet" <<EOT
#!/bin/sh
echo "[    2.000000] usb 1-1: new device" >>"$log"
exit 0
EOT
cat >"$tmp/t/warns" <<EOT
#!/bin/sh
echo "[    3.000000] ------------[ cut here ]------------" >>"$log"
echo "[    3.000001] WARNING: CPU: 1 PID: 42 at mm/userfaultfd.c:100 fake+0x10/0x20" >>"$log"
exit 0
EOT
cat >"$tmp/t/stalls" <<EOT
#!/bin/sh
echo "[    4.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:" >>"$log"
exit 0
EOT
chmod +x "$tmp/show-log" "$tmp"/t/*
out=$(RUNTESTS_KERNEL_LOG=$tmp/show-log "$src/tests/runtests.sh" "$tmp/t" quiet warns stalls)
rc=$?
echo "$out"
[ $rc -ne 0 ] || fail "the runner exited 0"
echo "$out" | grep -q '^PASS  quiet' || fail "quiet should pass"
echo "$out" | grep -q '^FAIL  warns .*kernel' || fail "warns should fail on the kernel's WARNING"
echo "$out" | grep -q '^FAIL  stalls .*kernel' || fail "stalls should fail on the RCU stall"
echo "$out" | grep -q 'WARNING: CPU: 1 PID: 42' || fail "the kernel's line is not shown"
[ "$(echo "$out" | tail -n 1)" = "1 passed, 2 failed, 0 skipped" ] || fail "summary line"
exit 0
