#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs hiredis and Redis when missing,
# checks that the embedded Lua matches lua/, builds with warnings as errors, runs the unit tests,
# then the integration tests one at a time (they start servers, kill them and measure deadlines: on two cores, run side by side they starve each other) against a throwaway redis-server (REDIS_URL) and a throwaway Redis Cluster of three
# primaries with one replica each (REDIS_CLUSTER_URL; the suites marked .onEveryServer run on both), stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/embed-lua.sh --check

swift build --build-tests -Xswiftc -warnings-as-errors

swift test --skip-build --parallel --filter SluiceUnitTests

source scripts/redis.sh
source scripts/cluster.sh
redis_start
cluster_start
trap 'sweep_test_servers; cluster_stop; redis_stop' EXIT
echo "integration tests against $REDIS_URL and the cluster at $REDIS_CLUSTER_URL" >&2
swift test --skip-build --no-parallel --filter SluiceIntegrationTests
