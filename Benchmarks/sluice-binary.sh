#!/usr/bin/env bash
# Prints the path of the sluice binary a benchmark runs: $SLUICE_BIN when set (relative to the repository's
# root), else the release build, built first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SLUICE_BIN:-}" ]; then
  echo "$SLUICE_BIN"
  exit 0
fi
swift build -c release --product sluice >/dev/null
echo .build/release/sluice
