#!/usr/bin/env bash
# Does spreading concurrent callers over several pipelined connections pay? `sluice bench redis
# --op evalsha` at concurrency 50 and 200 on 1, 2 and 4 shared connections, with redis-benchmark at
# the same concurrency (no -P) as the reference, on one throwaway server, alternating, ROUNDS times;
# prints medians and ratios.
#
#   Benchmarks/compare-connections.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-4}

scripts/install-deps.sh
swift build -c release --product sluice >/dev/null
sluice=.build/release/sluice
source scripts/redis.sh
redis_start
sha=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "return 1")

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The last line of a command's --json output, one field of it (empty when null); any JSON spacing.
json_field() {
  python3 -c 'import json, sys; v = json.loads(sys.stdin.read().splitlines()[-1])[sys.argv[1]]; print("" if v is None else v)' "$1"
}
csv_field() { tail -n 1 | tr -d '"' | cut -d, -f"$1"; }

declare -A results
for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds" >&2
  for c in 50 200; do
    for n in 1 2 4; do
      out=$($sluice bench redis --redis "$REDIS_URL" --op evalsha --concurrency "$c" --connections "$n" --duration "$seconds" --json)
      results[$c.$n.ops]+="$(echo "$out" | json_field ops_per_sec) "
      results[$c.$n.p50]+="$(echo "$out" | json_field p50_us) "
      results[$c.$n.p99]+="$(echo "$out" | json_field p99_us) "
    done
    rb=$(redis-benchmark -p "$REDIS_PORT" -c "$c" -n 300000 --csv EVALSHA "$sha" 0)
    results[$c.rb.ops]+="$(echo "$rb" | csv_field 2) "
  done
done

m() { echo "${results[$1]}" | tr ' ' '\n' | grep -v '^$' | median; }
printf '\nmedians of %s rounds, %s s each, Redis %s on loopback, %s cores\n\n' "$rounds" "$seconds" \
  "$(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/')" "$(nproc)"
printf '| concurrency | connections | sluice ops/s | vs 1 connection | vs redis-benchmark | p50 µs | p99 µs |\n'
printf '|---|---|---|---|---|---|---|\n'
for c in 50 200; do
  one=$(m $c.1.ops); rb=$(m $c.rb.ops)
  for n in 1 2 4; do
    so=$(m $c.$n.ops)
    printf '| %s | %s | %.0f | %.2fx | %.2fx | %.1f | %.1f |\n' "$c" "$n" "$so" \
      "$(awk -v a="$so" -v b="$one" 'BEGIN { print a / b }')" "$(awk -v a="$so" -v b="$rb" 'BEGIN { print a / b }')" \
      "$(m $c.$n.p50)" "$(m $c.$n.p99)"
  done
  printf '| %s | redis-benchmark | %.0f | | | | |\n' "$c" "$rb"
done
