#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs hiredis and Redis when missing,
# checks that the embedded Lua matches lua/, builds with warnings as errors, runs the unit tests,
# then the integration tests against a throwaway redis-server (REDIS_URL) and a throwaway Redis Cluster of three
# primaries with one replica each (REDIS_CLUSTER_URL; the suites marked .onEveryServer run on both), stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/embed-lua.sh --check

swift build --build-tests -Xswiftc -warnings-as-errors

swift test --skip-build --parallel --filter SluiceUnitTests

source scripts/redis.sh
source scripts/cluster.sh
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
cluster_start
trap 'sweep_test_servers; cluster_stop; redis_stop' EXIT
echo "integration tests against $REDIS_URL and the cluster at $REDIS_CLUSTER_URL" >&2
swift test --skip-build --filter SluiceIntegrationTests
