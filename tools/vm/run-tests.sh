#!/usr/bin/env bash
# The default command tools/vmtest.sh runs inside the guest: the kernel-level CTest tests of a
# build tree, then a summary that names the guest kernel and every skipped test with its
# reason. A skip inside the VM is accepted only when its message says which kernel feature
# is missing ("kernel feature missing: ..."); any other skip counts as a failure, so a test
# cannot pass silently on an older kernel.
#
# Usage: tools/vm/run-tests.sh BUILD_DIR
# Environment:
#   PPINJECT_VMTEST_REGEX    run only the kernel tests whose name matches (grep -E)
#   PPINJECT_VMTEST_EXCLUDE  leave out the kernel tests whose name matches (grep -E)
#   PPINJECT_VMTEST_LABEL    CTest label to select (default: kernel)
#   PPINJECT_VMTEST_TEST_TIMEOUT  seconds one test may take (ctest --timeout; default 300)
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$1
[ -f "$build/CTestTestfile.cmake" ] || { echo "run-tests: no CTest tree in $build" >&2; exit 2; }

label=${PPINJECT_VMTEST_LABEL:-kernel}
# The selection is made here, with grep -E on the names `ctest -N` lists, and handed to
# ctest as test numbers (-I): CTest's own regular expressions (-R, -E) take at most nine
# parenthesised groups, fewer than CI's exclusion list has.
numbers=$(
	ctest --test-dir "$build" -N -L "$label" |
		sed -n 's/^ *Test *#\([0-9][0-9]*\): \(.*\)$/\1\t\2/p' |
		awk -F'\t' 'BEGIN { inc = ENVIRON["PPINJECT_VMTEST_REGEX"]; exc = ENVIRON["PPINJECT_VMTEST_EXCLUDE"] }
			(inc == "" || $2 ~ inc) && (exc == "" || $2 !~ exc) { print $1 }' |
		paste -sd, -
)
[ -n "$numbers" ] || { echo "run-tests: no kernel test matches the selection" >&2; exit 2; }
sel=(-I "0,0,0,$numbers") # the numbers `ctest -N -L` shows; with -L, -I would count anew

echo "run-tests: guest kernel $(uname -r); ctest -L $label, $(tr -cd , <<<"$numbers" | wc -c) + 1 tests" \
	"(PPINJECT_VMTEST_REGEX '${PPINJECT_VMTEST_REGEX:-}', PPINJECT_VMTEST_EXCLUDE ${#PPINJECT_VMTEST_EXCLUDE} characters)"
ctest_out=$(mktemp)
trap 'rm -f "$ctest_out"' EXIT
rc=0
ctest --test-dir "$build" "${sel[@]}" --timeout "${PPINJECT_VMTEST_TEST_TIMEOUT:-300}" \
	--output-on-failure --no-tests=error 2>&1 | tee "$ctest_out" || rc=$?

# Skipped tests and their messages, from CTest's log of this run: the lines gtest prints
# between "FILE:LINE: Skipped" and "[  SKIPPED ] Name".
log=$build/Testing/Temporary/LastTest.log
skips=$(
	awk '
		/^\[ RUN      \] / { name = $4; msg = ""; inskip = 0; next }
		/: Skipped$/ { inskip = 1; next }
		/^\[  SKIPPED \] / && name != "" {
			gsub(/[ \t]+$/, "", msg)
			print name "\t" msg
			name = ""; inskip = 0; next
		}
		inskip { msg = msg (msg == "" ? "" : " ") $0 }
	' "$log" 2>/dev/null || true
)
bad=0
if [ -n "$skips" ]; then
	echo "run-tests: skipped on $(uname -r):"
	while IFS=$'\t' read -r name msg; do
		case $msg in
		*"kernel feature missing:"*) echo "  SKIPPED $name: $msg" ;;
		*)
			echo "  SKIPPED $name: $msg  <- not a missing kernel feature: counted as a failure"
			bad=1
			;;
		esac
	done <<<"$skips"
fi
nskip=0
[ -z "$skips" ] || nskip=$(printf '%s\n' "$skips" | wc -l)
# CTest's summary ("100% tests passed, 0 tests failed out of 167") counts a skipped test as
# passed; the counts here do not.
read -r failed total < <(sed -n 's/.* \([0-9][0-9]*\) tests failed out of \([0-9][0-9]*\)$/\1 \2/p' \
	"$ctest_out" | tail -n1) || true
if [ -n "${total:-}" ]; then
	counts="$total tests: $((total - failed - nskip)) passed, $failed failed, $nskip skipped"
else
	counts="no test summary from ctest"
fi
echo "run-tests: $(uname -r): ctest exit status $rc; $counts"
# The line tools/vmtest.sh puts on its result line.
[ -z "${VMTEST_OUT:-}" ] || echo "$counts" >"$VMTEST_OUT/summary" || true
if [ "$rc" -eq 0 ] && [ "$bad" -ne 0 ]; then
	echo "run-tests: a test skipped without naming the missing kernel feature" >&2
	rc=1
fi
exit "$rc"
