#!/usr/bin/env bash
# Run the fuzz targets built by `make fuzz`, each from its seed corpus,
# and fail if any of them finds a crash, a leak, undefined behaviour or a
# hang.  What a run discovers goes to a scratch corpus that is thrown away
# (the tree keeps only the seeds); a crashing input is kept in
# build/fuzz/artifacts/ and named on stderr.
#
#   fuzz/run.sh [-t SECONDS] [-n RUNS] [NAME...]
#       -t  time per target (default 30); -n  executions per target instead
#       NAME  targets to run (default: all of fuzz/*.c but seeds)
#
# Each target ends with libFuzzer's final stats; "stat::number_of_executed_units"
# is how many inputs it ran.
set -u
cd "$(dirname "$0")/.."
secs=30 runs=
while getopts t:n: o; do
	case $o in
	t) secs=$OPTARG ;;
	n) runs=$OPTARG ;;
	*) echo "usage: fuzz/run.sh [-t SECONDS] [-n RUNS] [NAME...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	for f in fuzz/*.c; do
		n=$(basename "$f" .c)
		[ "$n" = seeds ] || names+=("$n")
	done
fi
limit=(-max_total_time="$secs")
[ -n "$runs" ] && limit=(-runs="$runs")
mkdir -p build/fuzz/artifacts
failed=()
for n in "${names[@]}"; do
	bin=build/fuzz/fuzz-$n
	[ -x "$bin" ] || { echo "fuzz/run.sh: $bin missing: make fuzz" >&2; exit 2; }
	scratch=$(mktemp -d)
	echo "== fuzz-$n"
	# -timeout: one input that takes 20 s is a hang; -rss_limit_mb: a leak
	"$bin" "${limit[@]}" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=build/fuzz/artifacts/"$n"- "$scratch" "fuzz/corpus/$n" \
		>"$scratch.log" 2>&1
	rc=$?
	grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done )' \
		"$scratch.log"
	if [ $rc -ne 0 ]; then
		failed+=("$n")
		grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "$scratch.log" | head -20
	fi
	rm -rf "$scratch" "$scratch.log"
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz/run.sh: failed: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz/run.sh: ${#names[@]} targets, no failure"
