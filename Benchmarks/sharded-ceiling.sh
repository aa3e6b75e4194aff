#!/usr/bin/env bash
# Throughput of a sharded global ceiling: `sluice bench decide` spread over 64 tenants of a
# `--shards 8` global, from one process and from four, on a three-primary Redis Cluster (one
# replica each) against one node, in one run, alternating, ROUNDS times; prints medians and ratios.
#
#   Benchmarks/sharded-ceiling.sh [ROUNDS] [SECONDS]
#   SLUICE_BIN=path/to/sluice ...     # that binary instead of building the release one
#
# The global's bucket is large enough never to refuse (so every decision is one script on one
# shard, no transfers). The client processes and all servers share the machine's cores: on a
# 2-core machine the cluster's gain is bounded by what the clients leave to the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-5}
concurrency=${CONCURRENCY:-32}

sluice=$(Benchmarks/sluice-binary.sh)
source scripts/redis.sh
source scripts/cluster.sh
redis_start >/dev/null
cluster_start >/dev/null
trap 'cluster_stop; redis_stop' EXIT
single=$REDIS_URL
cluster=$REDIS_CLUSTER_URL

for url in "$single" "$cluster"; do
  "$sluice" quota set global=bench --resource tokens --rate 1000000000/s --burst 1000000000000 --shards 8 \
    --redis "$url" >/dev/null
done

# One sample: PROCS processes at once against URL; prints the decisions per second they made together.
sample() {
  local url=$1 procs=$2 out pids=()
  out=$(mktemp -d)
  for p in $(seq 1 "$procs"); do
    "$sluice" bench decide global=bench tenant=t --tenants 64 --cost tokens=1 --concurrency "$concurrency" \
      --duration "$seconds" --json --redis "$url" >"$out/$p.json" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  cat "$out"/*.json | python3 -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
assert all(r["failed"] == 0 for r in rows), rows
print(round(sum(r["decisions_per_sec"] for r in rows)))'
  rm -rf "$out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A results
for round in $(seq 1 "$rounds"); do
  for procs in 1 4; do
    for target in single cluster; do
      url=$single
      [ "$target" = cluster ] && url=$cluster
      value=$(sample "$url" "$procs")
      results[$target-$procs]+="$value "
      echo "round $round: $procs process(es) on $target: $value decisions/s" >&2
    done
  done
done

echo "sharded global (--shards 8), 64 tenants, concurrency $concurrency per process, ${seconds}s, $rounds rounds (median)"
for procs in 1 4; do
  one=$(echo "${results[single-$procs]}" | tr ' ' '\n' | grep . | median)
  three=$(echo "${results[cluster-$procs]}" | tr ' ' '\n' | grep . | median)
  ratio=$(python3 -c "print(f'{$three / $one:.2f}')")
  echo "$procs process(es): one node $one/s, three primaries $three/s, ratio ${ratio}x"
done
