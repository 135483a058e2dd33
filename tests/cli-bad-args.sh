#!/usr/bin/env bash
# Every subcommand and every bench of uffd(1) applies the same argument
# rules, and a bad argument is a usage error (exit 2) before anything runs:
# an unknown option, a flag given a value, an option without its value, a
# positional argument too many or too few; a number that is negative, not
# decimal, followed by other text, empty, past 2^64, or out of the range
# the option's --help states; a choice that is not listed.  --help exits 0
# everywhere, also after valid values at both ends of every range.  The
# commands, benches and options are read from the tool's own --help
# output, so a new one is covered without touching this file; the cases of
# issue 15 are named too (bench fault --quick extra, --size -1 and --size 0
# in every bench that has --size).
set -u
build=${BUILD:?BUILD is the build directory}
uffd=$build/uffd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
failures=0
checked=0

# A command wrongly accepted would start its work: bound it.  (Sanitizer
# builds reserve more address space than any limit that would help.)
case $build in
*san-address* | *san-thread*) ;;
*) ulimit -v 4194304 ;;
esac

# expect RC ARGS...: run uffd ARGS, check the exit status.
expect() {
	local want=$1 rc
	shift
	timeout -k 2 20 "$uffd" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	checked=$((checked + 1))
	if [ "$rc" != "$want" ]; then
		echo "uffd $*: exit $rc, want $want"
		sed 's/^/    /' "$tmp/err" | head -3
		failures=$((failures + 1))
		return
	fi
	if [ "$want" = 2 ] && ! grep -q "^usage: uffd " "$tmp/err"; then
		echo "uffd $*: exit 2 without the usage line on stderr"
		failures=$((failures + 1))
	fi
}

# The option lines of a --help: "NAME VALUE RANGE" per option (VALUE "-"
# for a flag, RANGE "-" when none is stated), wrapped lines joined.
options_of() {
	awk '/^options:/ { on = 1; next }
	     on && /^  -/ { if (line) print line; line = $0; next }
	     on && /^ +[^ -]/ { sub(/^ +/, " "); line = line $0 }
	     END { if (line) print line }' |
	while read -r line; do
		name=$(grep -o -- '--[a-z][a-z0-9-]*' <<<"$line" | head -1)
		value=$(sed -E "s/.*${name} ([A-Za-z]+) .*/\\1/;t;s/.*/-/" <<<"$line")
		range=$(grep -oE '\[[^]]*\]$' <<<"$line" | tr -d '[]' | tr ' ' '_')
		echo "$name $value ${range:--}"
	done
}

# bytes "16G" -> 17179869184
bytes() {
	local v=$1
	case $v in
	*K) echo $(( ${v%K} << 10 )) ;;
	*M) echo $(( ${v%M} << 20 )) ;;
	*G) echo $(( ${v%G} << 30 )) ;;
	*) echo "$v" ;;
	esac
}

# check_command WORDS...: every rule, on "uffd WORDS".
check_command() {
	local help npos pos=() i
	checked=$((checked + 1))
	if ! help=$("$uffd" "$@" --help); then
		echo "uffd $* --help: exit $?"
		failures=$((failures + 1))
		return
	fi
	if ! grep -qE "^usage: uffd $*( |\$)" <<<"$help"; then
		echo "uffd $* --help: no usage line"
		failures=$((failures + 1))
	fi
	# Required positional arguments: the upper-case words of the synopsis.
	npos=$(head -1 <<<"$help" | sed "s/^usage: uffd $* //" | tr ' ' '\n' | grep -cE '^[A-Z]+$')
	for ((i = 0; i < npos; i++)); do
		pos+=("$tmp/no-such-file-$i")
	done

	expect 2 "$@" "${pos[@]}" stray-argument
	[ "$npos" -gt 0 ] && expect 2 "$@" "${pos[@]:1}"
	expect 2 "$@" --no-such-option "${pos[@]}"
	expect 2 "$@" -Z "${pos[@]}"
	expect 2 "$@" --help=1
	expect 0 "$@" -h

	while read -r name value range; do
		if [ "$value" = - ]; then
			expect 2 "$@" "$name=1" "${pos[@]}"
			expect 0 "$@" "$name" --help
			continue
		fi
		expect 2 "$@" "${pos[@]}" "$name"		# no value
		expect 2 "$@" "$name" "" "${pos[@]}"
		case $range in
		*_to_*)
			local lo=${range%%_to_*} hi=${range##*_to_}
			for bad in -1 +1 " 1" 1x 0x10 1.5 18446744073709551616 \
				   99999999999999999999999; do
				expect 2 "$@" "$name" "$bad" "${pos[@]}"
			done
			[ "$(bytes "$lo")" -gt 0 ] &&
				expect 2 "$@" "$name" $(($(bytes "$lo") - 1)) "${pos[@]}"
			expect 2 "$@" "$name" $(($(bytes "$hi") + 1)) "${pos[@]}"
			expect 0 "$@" "$name" "$lo" --help
			expect 0 "$@" "$name" "$hi" --help
			;;
		-) ;;	# a string
		*)	# a choice: a|b|c
			expect 2 "$@" "$name" no-such-choice "${pos[@]}"
			for choice in ${range//|/ }; do
				expect 0 "$@" "$name" "$choice" --help
			done
			;;
		esac
	done < <(options_of <<<"$help")
}

# --- the dispatchers -----------------------------------------------------------
expect 2
expect 2 no-such-command
expect 0 --help
expect 2 bench
expect 2 bench no-such-bench
expect 0 bench --help

# --- every subcommand, every bench --------------------------------------------
commands=$("$uffd" --help | awk '/^  [a-z]/ { print $1 }')
benches=$("$uffd" bench --help | awk '/^benches:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ -n "$commands" ] && [ -n "$benches" ] || fail "no commands or benches in --help"
for c in $commands; do
	[ "$c" = bench ] && continue
	check_command "$c"
done
for b in $benches; do
	check_command bench "$b"
	# issue 15: these ran (or read -1 as 2^44 MiB)
	expect 2 bench "$b" --quick extra
	if "$uffd" bench "$b" --help | grep -q -- '--size'; then
		expect 2 bench "$b" --size -1
		expect 2 bench "$b" --size 0
	fi
done

echo "$checked cases, $failures failed"
[ "$failures" = 0 ] || exit 1
