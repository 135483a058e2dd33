#!/usr/bin/env bash
# Run every test program in a directory, each under a timeout (a hung fault
# is the typical failure).  Exit 0 pass, 77 skip, anything else fail.  Prints
# one line per test and ends with "N passed, N failed, N skipped"; exits
# non-zero if any test failed.  As liburing's runner does, it reads the
# kernel log after each test: a test during which the kernel logged a BUG,
# a WARNING, an Oops or an RCU stall fails, whatever its exit status (the
# log is not per-process: with several suites running at once, a failure
# may belong to a neighbour - the lines are printed).
#
#   tests/runtests.sh build/tests [NAME ...]
#   TEST_TIMEOUT=60 (seconds per test)
set -u
dir=${1:?usage: runtests.sh TESTDIR [NAME ...]}
shift
timeout_s=${TEST_TIMEOUT:-60}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	for f in "$dir"/*; do
		[ -x "$f" ] && [ -f "$f" ] && names+=("$(basename "$f")")
	done
fi
# Tests may reserve hugetlb pages and restore them; a test killed by the
# timeout cannot, so the suite puts the machine's setting back itself.
hp=/proc/sys/vm/nr_hugepages
saved_hp=$(cat $hp 2>/dev/null || echo)
restore_hp() { [ -n "$saved_hp" ] && [ -w $hp ] && echo "$saved_hp" > $hp; rm -f "$log"; }
# The kernel log, if this user may read it: the last line before a test
# marks where that test's lines begin.
# (RUNTESTS_KERNEL_LOG names another command, for the runner's own test.)
kernel_log() { ${RUNTESTS_KERNEL_LOG:-dmesg} 2>/dev/null; }
kernel_log_ok=0
[ -n "$(kernel_log | tail -n 1)" ] && kernel_log_ok=1
kernel_bad='\] (BUG|WARNING|INFO): |\] Oops|\] ------------\[ cut here \]|detected stalls|self-detected stall|general protection fault|Kernel panic'
kernel_lines_since() {
	kernel_log | awk -v mark="$1" 'found { print } $0 == mark { found = 1 }'
}
passed=0 failed=0 skipped=0
failed_names=()
log=$(mktemp)
trap restore_hp EXIT
for name in "${names[@]}"; do
	start=${EPOCHREALTIME/./}
	[ $kernel_log_ok = 1 ] && kmark=$(kernel_log | tail -n 1)
	timeout -k 5 "$timeout_s" "$dir/$name" >"$log" 2>&1
	rc=$?
	if [ $kernel_log_ok = 1 ] && [ $rc = 0 -o $rc = 77 ]; then
		kbad=$(kernel_lines_since "$kmark" | grep -E "$kernel_bad")
		if [ -n "$kbad" ]; then
			echo "the kernel logged during this test:" >>"$log"
			echo "$kbad" | head -n 10 >>"$log"
			rc=99
		fi
	fi
	us=$(( ${EPOCHREALTIME/./} - start ))
	secs=$(printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000)))
	case $rc in
	0)  passed=$((passed + 1)); printf 'PASS  %-44s %6ss\n' "$name" "$secs" ;;
	77) skipped=$((skipped + 1))
	    printf 'SKIP  %-44s %s\n' "$name" "$(grep -m1 '^SKIP' "$log" | cut -c7-)" ;;
	124|137)
	    failed=$((failed + 1)); failed_names+=("$name")
	    printf 'FAIL  %-44s timed out after %ss\n' "$name" "$timeout_s"
	    sed 's/^/      /' "$log" | tail -n 20 ;;
	99) failed=$((failed + 1)); failed_names+=("$name")
	    printf 'FAIL  %-44s kernel BUG/WARNING/stall\n' "$name"
	    sed 's/^/      /' "$log" | tail -n 12 ;;
	*)  failed=$((failed + 1)); failed_names+=("$name")
	    printf 'FAIL  %-44s exit %s\n' "$name" "$rc"
	    sed 's/^/      /' "$log" | tail -n 20 ;;
	esac
done
[ $failed -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
