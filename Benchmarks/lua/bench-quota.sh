#!/usr/bin/env bash
# Server cost per decision (INFO commandstats usec_per_call) of lua/decide.lua against the two
# baselines of issue 3, side by side, under redis-benchmark -c 50 -P 16. Starts its own throwaway
# redis-server. Usage: Benchmarks/lua/bench-quota.sh [runs=3] [requests per run=300000] [port=6399]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}; n=${2:-300000}; port=${3:-6399}
dir=$(mktemp -d)
redis-server --port "$port" --save '' --appendonly no --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" >/dev/null
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
cli() { redis-cli -p "$port" "$@"; }

one_key=$(cli SCRIPT LOAD "$(cat Benchmarks/lua/bucket-one-key.lua)")
naive=$(cli SCRIPT LOAD "$(cat Benchmarks/lua/bucket-three-level-naive.lua)")
# Sluice loads decide.lua as a function library named after its digest; the name does not matter here.
cli FUNCTION LOAD REPLACE "$(printf '#!lua name=sluice_decide_bench\n'; sed 's/sluice_decide_VERSION/sluice_decide_bench/' lua/decide.lua)" >/dev/null
decide_sha=$(cli SCRIPT LOAD "$(cat lua/decide.lua)")

big=1000000000
# The three-level decision: global=openai tenant=acme tree=req-1, cost requests=1 tokens=100; a token
# bucket on global, a sliding window on tenant, a token bucket on tree (limits too large to deny).
P='sluice:{openai}:'
decide_keys=(5 "${P}quotas" "${P}stats" "${P}s:global=openai" "${P}s:global=openai/tenant=acme"
  "${P}s:global=openai/tenant=acme/tree=req-1")
plan=$'requests tokens\ntokens: bucket rate='$big$'/s burst='$big$'\nrequests: window '$big$'/min\ntokens: bucket rate='$big$'/s burst='$big
decide_args=("$plan" interactive 0 0 1 100 'global=openai' 'global=openai tenant=acme' 'global=openai tenant=*'
  'global=openai tenant=acme tree=req-1' 'global=openai tenant=acme tree=*' 'global=openai tenant=* tree=*')
report_args=("$plan" 'interactive report' "${decide_args[@]:2}")

measure() { # label command-name args... -> "label usec_per_call ops_per_sec"
  local label=$1 stat=$2; shift 2
  cli CONFIG RESETSTAT >/dev/null
  local rps
  rps=$(redis-benchmark -p "$port" -c 50 -P 16 -n "$n" --csv "$@" | tail -1 | cut -d, -f2 | tr -d '"')
  local usec
  usec=$(cli INFO commandstats | grep "cmdstat_$stat:" | sed 's/.*usec_per_call=\([0-9.]*\).*/\1/')
  echo "$label $usec $rps"
}

results=$(mktemp)
for run in $(seq "$runs"); do
  cli FLUSHDB >/dev/null
  measure one-key-bucket evalsha EVALSHA "$one_key" 1 "${P}b1" $big $big 1 >>"$results"
  measure naive-three-level evalsha EVALSHA "$naive" 3 "${P}b1" "${P}b2" "${P}b3" $big $big $big $big $big $big 1 >>"$results"
  measure sluice-decide fcall FCALL sluice_decide_bench "${decide_keys[@]}" "${decide_args[@]}" >>"$results"
  measure sluice-decide-report fcall FCALL sluice_decide_bench "${decide_keys[@]}" "${report_args[@]}" >>"$results"
  measure sluice-decide-eval evalsha EVALSHA "$decide_sha" "${decide_keys[@]}" "${decide_args[@]}" >>"$results"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-22s %14s %12s\n' script usec_per_call calls/s
for label in one-key-bucket naive-three-level sluice-decide sluice-decide-report sluice-decide-eval; do
  usec=$(grep "^$label " "$results" | awk '{print $2}' | median)
  rps=$(grep "^$label " "$results" | awk '{print $3}' | median)
  printf '%-22s %14s %12s\n' "$label" "$usec" "$rps"
done
base=$(grep '^one-key-bucket ' "$results" | awk '{print $2}' | median)
for label in naive-three-level sluice-decide sluice-decide-report; do
  value=$(grep "^$label " "$results" | awk '{print $2}' | median)
  echo "$label / one-key-bucket = $(awk -v a="$value" -v b="$base" 'BEGIN {printf "%.2f", a / b}')"
done
echo "(medians of $runs runs of $n calls each; redis-benchmark -c 50 -P 16)"
rm -f "$results"
