#!/usr/bin/env bash
# Fuzzes Sluice's input surfaces with libFuzzer (Fuzz/README.md): builds the fuzz targets with --sanitize=fuzzer
# and --sanitize=address into .build/fuzz (the main build is untouched), then runs each for N seconds (default 60)
# from the seeds in Fuzz/Corpus plus what earlier runs found (.build/fuzz-corpus). Exits non-zero on the first
# crash, sanitizer report, leak, timeout or out-of-memory, with the input in .build/fuzz-artifacts/TARGET/.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]      TARGET: FuzzProviderHeaders FuzzQuotaSpec FuzzTreeHeader
#                                                          FuzzScenario FuzzRESPReplies (default: all)
#   scripts/fuzz.sh --build-only                    builds them and stops
#
# Reproduce a crash: .build/fuzz/debug/TARGET .build/fuzz-artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

all=(FuzzProviderHeaders FuzzQuotaSpec FuzzTreeHeader FuzzScenario FuzzRESPReplies)
seconds=60
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --build-only) build_only=1; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ " ${all[*]} " != *" $1 "* ]]; then echo "fuzz.sh: no fuzz target $1 (${all[*]})" >&2; exit 2; fi
      targets+=("$1"); shift ;;
  esac
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then echo "fuzz.sh: --seconds takes a positive integer" >&2; exit 2; fi
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# Package.swift declares the fuzz targets only with SLUICE_FUZZ=1.
export SLUICE_FUZZ=1
build=(swift build --scratch-path .build/fuzz --sanitize=fuzzer --sanitize=address)
start=$(date +%s)
mkdir -p .build/fuzz-logs
for target in "${targets[@]}"; do
  # gold warns once per ASan symbol it cannot export; those lines are noise.
  if ! "${build[@]}" --product "$target" >.build/fuzz-logs/build.log 2>&1; then
    grep -v 'Cannot export local symbol' .build/fuzz-logs/build.log >&2
    echo "fuzz.sh: building $target failed" >&2
    exit 1
  fi
  grep -E 'error:|warning: .*/(Fuzz|Sources)/|^Build of product' .build/fuzz-logs/build.log >&2 || true
done
echo "fuzz.sh: built ${targets[*]} in $(($(date +%s) - start)) s" >&2
[ "$build_only" = 0 ] || exit 0
bin=$("${build[@]}" --show-bin-path)

# libFuzzer catches the signal of a Swift runtime trap itself and writes the input out; Swift's own backtracer
# would take the signal first. Leaks are checked (ASan's leak checker runs when the fuzzer exits).
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

failed=()
for target in "${targets[@]}"; do
  corpus=.build/fuzz-corpus/$target
  artifacts=.build/fuzz-artifacts/$target
  log=.build/fuzz-logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  echo "fuzz.sh: $target for $seconds s" >&2
  status=0
  "$bin/$target" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" "Fuzz/Corpus/$target" >"$log" 2>&1 || status=$?
  grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" | tr '\n' ' ' >&2 || true
  echo >&2
  if [ "$status" != 0 ]; then
    echo "fuzz.sh: $target FAILED (exit $status); the end of $log:" >&2
    grep -v '^0x\|^    #' "$log" | tail -25 >&2
    ls -1 "$artifacts" >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failures in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, $seconds s each, no crash" >&2
