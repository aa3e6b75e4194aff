#!/usr/bin/env bash
# The main job, from a fresh Debian machine: installs what is missing, builds Sluice, and runs
# `sluice storm` — every built-in scenario in every mode — against $REDIS_URL, or against a
# throwaway redis-server the command starts and stops itself. Extra arguments go to `sluice storm`
# (e.g. --scenario tier-change --mode sluice). The report lands in reports/storm/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release --product sluice
exec .build/release/sluice storm --report reports/storm "$@"
