#!/usr/bin/env bash
# Runs the unit tests, then the integration tests against a throwaway redis-server (scripts/redis.sh), under
# ThreadSanitizer or AddressSanitizer (with LeakSanitizer). Builds into .build/sanitize-KIND, so the main build is
# untouched. Every process the tests start (the `sluice` binary included) reports into one directory; the run
# fails when a test fails or any process reported anything, and prints the reports.
#
#   scripts/sanitize.sh [thread|address]     (default: thread)
#
# Reports stay in .build/sanitize-KIND/reports/ (one file per process: KIND.PID).
#
# Under thread, Sluice's own targets are built with SLUICE_THREAD_SANITIZER (Package.swift), so that their locks are
# pthread mutexes ThreadSanitizer sees (Sources/SluiceRedis/Concurrency/SluiceMutex.swift): a report is then a real
# unordered access, not a `Synchronization.Mutex` it cannot see; the Swift runtime's own false reports are listed,
# each with its reason, in scripts/sanitizers/tsan.supp. Under address, LeakSanitizer skips the leaks listed,
# each with its reason, in scripts/sanitizers/lsan.supp (Foundation's and XCTest's, none allocated by Sluice).
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-thread}
case "$kind" in
  thread | address) ;;
  *) echo "usage: scripts/sanitize.sh [thread|address]" >&2; exit 2 ;;
esac

scratch=.build/sanitize-$kind
reports=$PWD/$scratch/reports
swift=(--scratch-path "$scratch" --sanitize="$kind")
if [ "$kind" = thread ]; then
  export SLUICE_THREAD_SANITIZER=1
fi

scripts/install-deps.sh
start=$(date +%s)
swift build --build-tests "${swift[@]}"
echo "sanitize.sh: built under the $kind sanitizer in $(($(date +%s) - start)) s" >&2

rm -rf "$reports"
mkdir -p "$reports"
# Reports go to files (the tests discard many children's output), and a report does not change a process's exit
# status (exitcode=0): the tests judge behaviour, the reports judge memory and threads. Swift's own backtracer
# would take a crash's signal first, so the sanitizer's report would be lost.
export SWIFT_BACKTRACE=enable=no
export TSAN_OPTIONS="log_path=$reports/thread:exitcode=0:halt_on_error=0:second_deadlock_stack=1:history_size=4:suppressions=$PWD/scripts/sanitizers/tsan.supp"
export ASAN_OPTIONS="log_path=$reports/address:exitcode=0:detect_leaks=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$PWD/scripts/sanitizers/lsan.supp:print_suppressions=0"

status=0
swift test --skip-build "${swift[@]}" --parallel --filter SluiceUnitTests || status=$?

source scripts/redis.sh
redis_start
trap 'sweep_test_servers; redis_stop' EXIT
echo "sanitize.sh: integration tests against $REDIS_URL" >&2
swift test --skip-build "${swift[@]}" --no-parallel --filter SluiceIntegrationTests || status=$?

found=$(find "$reports" -type f | sort)
if [ -n "$found" ]; then
  # The full reports stay in the files; here, where each one points, most frequent first.
  echo "sanitize.sh: $(echo "$found" | wc -l) process(es) reported under the $kind sanitizer (in $reports):" >&2
  cat $found | grep -h '^SUMMARY' | sed 's/ in \$s[^ ]*$//' | sort | uniq -c | sort -rn >&2
  status=1
fi
if [ "$status" = 0 ]; then
  echo "sanitize.sh: the suite passed under the $kind sanitizer with no reports (in $(($(date +%s) - start)) s)" >&2
fi
exit "$status"
