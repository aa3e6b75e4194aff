#!/usr/bin/env bash
# The main job, from a fresh Debian machine: installs what is missing, builds Sluice, and runs it
# against $REDIS_URL, or against a throwaway redis-server it starts (and stops) itself.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release --product sluice
sluice=.build/release/sluice

source scripts/redis.sh
if [ -z "${REDIS_URL:-}" ]; then
  redis_start
  echo "started a throwaway Redis at $REDIS_URL" >&2
fi

"$sluice" ping
echo "--- one caller, then 50 concurrent callers sharing one pipelined connection (2 s each)"
"$sluice" bench redis --op ping --concurrency 1 --duration 2
"$sluice" bench redis --op ping --concurrency 50 --duration 2
"$sluice" bench redis --op evalsha --concurrency 50 --duration 2
