#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs hiredis and Redis when missing,
# checks that the embedded Lua matches lua/, builds with warnings as errors, runs the unit tests,
# then the integration tests against a throwaway redis-server (REDIS_URL), stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/embed-lua.sh --check

swift build --build-tests -Xswiftc -warnings-as-errors

swift test --skip-build --parallel --filter SluiceUnitTests

source scripts/redis.sh
# Servers that fault-injection tests start themselves live in ${TMPDIR:-/tmp}/sluice-test-*; a test
# process that dies cannot stop its own, so sweep them on exit as well.
sweep_test_servers() {
  local pidfile
  for pidfile in "${TMPDIR:-/tmp}"/sluice-test-*/redis.pid; do
    [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "${TMPDIR:-/tmp}"/sluice-test-* 2>/dev/null || true
}
redis_start
trap 'sweep_test_servers; redis_stop' EXIT
echo "integration tests against $REDIS_URL" >&2
swift test --skip-build --filter SluiceIntegrationTests
