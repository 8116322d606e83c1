#!/usr/bin/env bash
# Runs the libFuzzer targets of a PPINJECT_FUZZ build (make fuzz builds one in build-fuzz):
# each replays its seed corpus and saved regressions, then fuzzes for FUZZ_SECONDS
# (default 60). Exit status 1 when any target found something; the inputs that did are
# listed (save each under tests/fuzz/regressions/<target>/ with its fix).
set -euo pipefail

usage() {
  cat <<EOF
usage: tools/fuzz.sh BUILD_DIR [TARGET...]

  BUILD_DIR  a build configured with -DPPINJECT_FUZZ=ON (clang), targets built
  TARGET     decode_any decode_v1 decode_v2 decode_spp v2_writer sni config (default: all)

  FUZZ_SECONDS=60   fuzzing time per target, after the replay
  FUZZ_JOBS=N       targets fuzzed at a time (default: the number of CPUs)

Work files go to BUILD_DIR/fuzz/<target>/: corpus/ (inputs found so far, kept between
runs), log, and crash-*, leak-*, timeout-*, oom-* files for findings.
Example: FUZZ_SECONDS=30 tools/fuzz.sh build-fuzz sni config
EOF
}

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  usage
  [ $# -ge 1 ] && exit 0 || exit 2
fi
build=$1
shift
src=$(cd "$(dirname "$0")/.." && pwd)
fuzz_src=$src/tests/fuzz
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(decode_any decode_v1 decode_v2 decode_spp v2_writer sni config)
fi

# One target: replay, then fuzz. Prints one result line; the status is 1 on a finding.
fuzz_one() {
  local t=$1 bin=$build/fuzz/fuzz_$1 work=$build/fuzz/$1
  mkdir -p "$work/corpus"
  rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
  local seeds=("$fuzz_src/corpus/$t")
  if [ -d "$fuzz_src/regressions/$t" ]; then
    seeds+=("$fuzz_src/regressions/$t")
  fi
  local opts=(-artifact_prefix="$work/" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  if [ -f "$fuzz_src/$t.dict" ]; then
    opts+=(-dict="$fuzz_src/$t.dict")
  fi
  # The replay: every seed and regression once, as the normal build's FuzzReplay test does.
  if ! "$bin" "${opts[@]}" -runs=0 "${seeds[@]}" >"$work/log" 2>&1; then
    echo "fuzz: $t: FAILED on its seeds or regressions (log: $work/log)"
    return 1
  fi
  # New inputs go to the first directory, the work corpus; the seeds are only read.
  local start rc=0 took runs cov
  start=$(date +%s)
  "$bin" "${opts[@]}" -max_total_time="$seconds" "$work/corpus" "${seeds[@]}" \
    >>"$work/log" 2>&1 || rc=$?
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 || true)
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $t: FINDING after ${took}s (log: $work/log):"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*property violated|artifact_prefix=|Test unit written)' \
      "$work/log" | head -5 | sed 's/^/  /'
    return 1
  fi
  echo "fuzz: $t: ok, ${runs:-?} runs in ${took}s, ${cov:-cov: ?}, corpus $(ls "$work/corpus" | wc -l)"
}

for t in "${targets[@]}"; do
  if [ ! -x "$build/fuzz/fuzz_$t" ]; then
    echo "fuzz: $build/fuzz/fuzz_$t missing: build $build with -DPPINJECT_FUZZ=ON first (make fuzz)" >&2
    exit 1
  fi
done

# FUZZ_JOBS targets at a time; each result line is printed whole as its target ends.
failed=()
declare -A running=()  # pid -> target
reap() {                # waits for one target to end
  local pid rc=0
  wait -n -p pid "${!running[@]}" || rc=$?
  [ "$rc" -eq 0 ] || failed+=("${running[$pid]}")
  unset "running[$pid]"
}
for t in "${targets[@]}"; do
  [ ${#running[@]} -lt "$jobs" ] || reap
  fuzz_one "$t" &
  running[$!]=$t
done
while [ ${#running[@]} -gt 0 ]; do
  reap
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a finding"
