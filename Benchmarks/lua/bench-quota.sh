#!/usr/bin/env bash
# Server cost per decision (INFO commandstats usec_per_call) of lua/decide.lua against the two
# baselines of issue 3, side by side, under redis-benchmark -c 50 -P 16. Starts its own throwaway
# redis-server. Usage: Benchmarks/lua/bench-quota.sh [runs=3] [requests per run=300000] [port=6399]
# DECIDE=<file> benchmarks another version of decide.lua (default lua/decide.lua), e.g. the one
# before a change, to compare. With a decide.lua that knows request trees, it also measures a
# reservation (the same decision with a reservation record) and a call inside a tree (the same
# again, plus the tree's checks and writes), and tree-enter.lua alone (what a tree call cost before
# the two were folded into one script, on top of the reservation).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}; n=${2:-300000}; port=${3:-6399}
dir=$(mktemp -d)
# Never benchmark (and flush) a server someone else runs on the port; never wait forever for ours.
if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is in use: pass another one" >&2; exit 1; fi
redis-server --port "$port" --save '' --appendonly no --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" >/dev/null
trap 'kill "$(cat "$dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 200); do [ -s "$dir/redis.pid" ] && redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
[ -s "$dir/redis.pid" ] || { echo "redis-server did not start on port $port" >&2; exit 1; }
cli() { redis-cli -p "$port" "$@"; }

one_key=$(cli SCRIPT LOAD "$(cat Benchmarks/lua/bucket-one-key.lua)")
naive=$(cli SCRIPT LOAD "$(cat Benchmarks/lua/bucket-three-level-naive.lua)")
# Sluice loads decide.lua as a function library named after its digest; the name does not matter here.
# The shared modules of lua/lib/ come first (a decide.lua from before them ignores them).
decide=${DECIDE:-lua/decide.lua}
prelude=$(scripts/embed-lua.sh --prelude)
cli FUNCTION LOAD REPLACE "$(printf '#!lua name=sluice_decide_bench\n%s\n' "$prelude"; sed 's/sluice_decide_VERSION/sluice_decide_bench/' "$decide")" >/dev/null
decide_sha=$(cli SCRIPT LOAD "$(printf '%s\n' "$prelude"; cat "$decide")")
trees=0
if grep -q 'treeCheck' "$decide"; then trees=1; fi
tree_enter=$(cli SCRIPT LOAD "$(cat lua/tree-enter.lua)")

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
# A reservation (a fresh id per call: redis-benchmark -r fills in __rand_int__), 10 s.
reserve_keys=(6 "${decide_keys[@]:1}" "${P}r:__rand_int__")
reserve_args=("$plan" 'interactive time' 0 10000 "${decide_args[@]:4}")
# A call inside a tree: the reservation plus the tree's keys and group (a budget on tokens and a max
# in flight, both too large to refuse; the call counts for 1 s, so the in-flight set stays small).
tree_keys=(9 "${reserve_keys[@]:1}" "${P}tree:req-1" "${P}tree:req-1:calls" "${P}events")
tree_args=("${reserve_args[@]}" tree 'c__rand_int__' 1000 1 0 '' req-1 2)
tree_enter_args=(3 "${P}tree:req-1" "${P}tree:req-1:calls" "${P}events" 'c__rand_int__' 1000 1 0 '' req-1 tokens 100)
open_tree() {
  cli DEL "${P}tree:req-1" "${P}tree:req-1:calls" >/dev/null
  cli EVAL "$(cat lua/tree-open.lua)" 1 "${P}tree:req-1" 0 86400000 0 0 $big 0 tokens 1000000000000000 >/dev/null
}

measure() { # label command-name args... -> "label usec_per_call ops_per_sec"
  local label=$1 stat=$2; shift 2
  cli CONFIG RESETSTAT >/dev/null
  local rps
  rps=$(redis-benchmark -p "$port" -c 50 -P 16 -n "$n" -r 1000000000 --csv "$@" | tail -1 | cut -d, -f2 | tr -d '"')
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
  # The same decision with the reconciler's record in the root's state (stated limits for both resources,
  # low enough that the ceiling scales the root bucket, and a remaining cap): what following costs.
  cli FLUSHDB >/dev/null
  reply=$(cli EVAL "$(printf '%s\n' "$prelude"; cat lua/reconcile.lua)" 2 "${P}s:global=openai" "${P}events" global=openai ok 0 -1 60000 0.9 0.7 \
    120000 86400000 1000 1 0 requests $big $big 60000 tokens $big $big 60000)
  case "$reply" in *ERR*) echo "reconcile.lua failed: $reply" >&2; exit 1 ;; esac
  [ -n "$(cli GET "${P}s:global=openai")" ] || { echo "reconcile.lua wrote no state" >&2; exit 1; }
  measure sluice-decide-reconciled fcall FCALL sluice_decide_bench "${decide_keys[@]}" "${decide_args[@]}" >>"$results"
  if [ "$trees" = 1 ]; then
    cli FLUSHDB >/dev/null
    measure sluice-decide-reserve fcall FCALL sluice_decide_bench "${reserve_keys[@]}" "${reserve_args[@]}" >>"$results"
    cli FLUSHDB >/dev/null; open_tree
    measure sluice-decide-tree fcall FCALL sluice_decide_bench "${tree_keys[@]}" "${tree_args[@]}" >>"$results"
    cli FLUSHDB >/dev/null; open_tree
    measure tree-enter evalsha EVALSHA "$tree_enter" "${tree_enter_args[@]}" >>"$results"
  fi
done
labels="one-key-bucket naive-three-level sluice-decide sluice-decide-report sluice-decide-eval sluice-decide-reconciled"
if [ "$trees" = 1 ]; then labels="$labels sluice-decide-reserve sluice-decide-tree tree-enter"; fi
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-22s %14s %12s\n' script usec_per_call calls/s
for label in $labels; do
  usec=$(grep "^$label " "$results" | awk '{print $2}' | median)
  rps=$(grep "^$label " "$results" | awk '{print $3}' | median)
  printf '%-22s %14s %12s\n' "$label" "$usec" "$rps"
done
base=$(grep '^one-key-bucket ' "$results" | awk '{print $2}' | median)
for label in naive-three-level sluice-decide sluice-decide-report sluice-decide-reconciled; do
  value=$(grep "^$label " "$results" | awk '{print $2}' | median)
  echo "$label / one-key-bucket = $(awk -v a="$value" -v b="$base" 'BEGIN {printf "%.2f", a / b}')"
done
if [ "$trees" = 1 ]; then
  reserve=$(grep '^sluice-decide-reserve ' "$results" | awk '{print $2}' | median)
  tree=$(grep '^sluice-decide-tree ' "$results" | awk '{print $2}' | median)
  enter=$(grep '^tree-enter ' "$results" | awk '{print $2}' | median)
  echo "a tree call's extra cost in decide: sluice-decide-tree - sluice-decide-reserve = $(awk -v a="$tree" -v b="$reserve" 'BEGIN {printf "%.2f", a - b}') us (tree-enter.lua alone: $enter us, plus a round trip)"
fi
echo "(medians of $runs runs of $n calls each; redis-benchmark -c 50 -P 16)"
rm -f "$results"
