#!/usr/bin/env bash
# What a storm's scripts cost Redis, apart from what this machine adds when Redis waits between commands.
#
# Runs one `sluice storm` scenario in sluice mode against a throwaway redis-server while MONITOR records
# every command the workers send, then replays that same stream, in order, on a fresh server: all at once
# (`redis-cli --pipe`), and one command at a time with a pause of 0, 1 and 5 ms after each reply. Beside it,
# in the same way, the one-key token bucket (`bucket-one-key.lua`: TIME, HMGET, HSET, PEXPIRE). Prints the
# server µs per script call (`usec` of `INFO commandstats`) and per provider call for each, medians of
# ROUNDS replays.
#
#   Benchmarks/lua/storm-replay.sh [SCENARIO=runaway-agent] [ROUNDS=3]
#   SLUICE_BIN=path/to/sluice ...     # that binary instead of building the release one
#
# The storm's own figure (`redis_us_per_provider_call`) is the live run's, with MONITOR attached.
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=${1:-runaway-agent}
rounds=${2:-3}
sluice=$(Benchmarks/sluice-binary.sh)
source scripts/redis.sh
work=$(mktemp -d)
trap 'redis_stop; rm -rf "$work"' EXIT
port_of() { echo "${REDIS_URL##*:}"; }

# 1. The live run, recorded.
redis_start >/dev/null
port=$(port_of)
redis-cli -p "$port" MONITOR >"$work/monitor.txt" &
monitor=$!
"$sluice" storm --redis "$REDIS_URL" --scenario "$scenario" --mode sluice --report "$work/report" >/dev/null 2>&1
kill "$monitor"
script_usec() { # the usec and calls of the script commands since the last CONFIG RESETSTAT
  redis-cli -p "$1" info commandstats | tr -d '\r' |
    awk -F'[=,:]' '/^cmdstat_(fcall|evalsha|eval):/ { usec += $5; calls += $3 } END { print usec + 0, calls + 0 }'
}
script_usec "$port" >"$work/sample"
read -r live_usec live_calls <"$work/sample"
redis_stop
live_per_provider_call=$(python3 -c "import json; print(json.load(open('$work/report/summary.json'))['runs'][0]['redis_us_per_provider_call'])")
provider_calls=$(python3 -c "print(round($live_usec / $live_per_provider_call))")
python3 Benchmarks/lua/replay.py to-resp "$work/monitor.txt" "$work/storm.resp" >/dev/null

# The one-key bucket, as many calls as the storm made script calls, over 50 buckets.
python3 - "$work/bucket.resp" "$live_calls" <<'PY'
import hashlib, sys
sys.path.insert(0, 'Benchmarks/lua')
from replay import encode
source = open('Benchmarks/lua/bucket-one-key.lua', 'rb').read()
sha = hashlib.sha1(source).hexdigest().encode()
with open(sys.argv[1], 'wb') as out:
    out.write(encode([b'SCRIPT', b'LOAD', source]))
    for i in range(int(sys.argv[2])):
        out.write(encode([b'EVALSHA', sha, b'1', b'bucket:%d' % (i % 50), b'1000000', b'1000000', b'1']))
PY

# 2. The replays: one fresh server per replay (nothing left from the previous one).
replay() { # FILE GAP ("pipe" or ms) -> "usec calls"
  redis_start >/dev/null
  local port
  port=$(port_of)
  if [ "$2" = pipe ]; then
    redis-cli -p "$port" --pipe <"$1" >/dev/null 2>&1 || true
  else
    python3 Benchmarks/lua/replay.py send "$port" "$1" "$2" >/dev/null
  fi
  script_usec "$port"
  redis_stop
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "storm scenario $scenario (sluice mode): $provider_calls provider calls, $live_calls script calls"
echo "live run (MONITOR attached): $live_per_provider_call µs per provider call, $(python3 -c "print(round($live_usec / $live_calls, 1))") µs per script call"
printf '%-28s %14s %14s %10s %20s\n' "replay" "sluice µs/call" "one-key µs" "ratio" "µs per provider call"
for gap in pipe 0 1 5; do
  sluice_samples=() bucket_samples=() provider_samples=()
  for _ in $(seq 1 "$rounds"); do
    replay "$work/storm.resp" "$gap" >"$work/sample"
    read -r usec calls <"$work/sample"
    sluice_samples+=("$(python3 -c "print($usec / $calls)")")
    provider_samples+=("$(python3 -c "print($usec / $provider_calls)")")
    replay "$work/bucket.resp" "$gap" >"$work/sample"
    read -r usec calls <"$work/sample"
    bucket_samples+=("$(python3 -c "print($usec / $calls)")")
  done
  s=$(printf '%s\n' "${sluice_samples[@]}" | median)
  b=$(printf '%s\n' "${bucket_samples[@]}" | median)
  p=$(printf '%s\n' "${provider_samples[@]}" | median)
  label="one at a time, ${gap} ms pause"
  [ "$gap" = pipe ] && label="all at once (--pipe)"
  printf '%-28s %14.1f %14.1f %9.1fx %20.1f\n' "$label" "$s" "$b" "$(python3 -c "print($s / $b)")" "$p"
done
