#!/usr/bin/env bash
# Instructions per call of one decide.lua version (or of tree-enter.lua) under callgrind: a stable
# way to compare versions on a noisy machine. Starts its own redis-server under valgrind, collects
# only inside fcallCommand (evalShaCommand for tree-enter) and divides by the calls.
# Usage: Benchmarks/lua/callgrind-decide.sh plain|reserve|tree|tree-enter|one-key [decide.lua=lua/decide.lua]
#   [calls=20000] [port=6398]
set -uo pipefail
cd "$(dirname "$0")/../.."
case=$1; file=${2:-lua/decide.lua}; n=${3:-20000}; port=${4:-6398}
if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is in use: pass another one" >&2; exit 1; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
toggle=fcallCommand
[ "$case" = tree-enter ] || [ "$case" = one-key ] && toggle=evalShaCommand
valgrind --tool=callgrind --toggle-collect=$toggle --callgrind-out-file="$dir/cg.out" \
  redis-server --port "$port" --save '' --appendonly no --dir "$dir" >/dev/null 2>"$dir/valgrind.log" &
server=$!
for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$port" "$@"; }
cli FUNCTION LOAD REPLACE "$(printf '#!lua name=b\n%s\n' "$(scripts/embed-lua.sh --prelude)"; sed 's/sluice_decide_VERSION/b/' "$file")" >/dev/null
big=1000000000
P='sluice:{openai}:'
states=("${P}s:global=openai" "${P}s:global=openai/tenant=acme" "${P}s:global=openai/tenant=acme/tree=req-1")
plan=$'requests tokens\ntokens: bucket rate='$big$'/s burst='$big$'\nrequests: window '$big$'/min\ntokens: bucket rate='$big$'/s burst='$big
fields=('global=openai' 'global=openai tenant=acme' 'global=openai tenant=*' 'global=openai tenant=acme tree=req-1'
  'global=openai tenant=acme tree=*' 'global=openai tenant=* tree=*')
tree=("${P}tree:req-1" "${P}tree:req-1:calls" "${P}events")
open_tree() { cli EVAL "$(cat lua/tree-open.lua)" 1 "${P}tree:req-1" 0 86400000 0 0 $big 0 tokens 1000000000000000 >/dev/null; }
case $case in
  plain) command=(FCALL b 5 "${P}quotas" "${P}stats" "${states[@]}" "$plan" interactive 0 0 1 100 "${fields[@]}") ;;
  reserve) command=(FCALL b 6 "${P}quotas" "${P}stats" "${states[@]}" "${P}r:__rand_int__" "$plan" 'interactive time' 0
    10000 1 100 "${fields[@]}") ;;
  tree) open_tree
    command=(FCALL b 9 "${P}quotas" "${P}stats" "${states[@]}" "${P}r:__rand_int__" "${tree[@]}" "$plan"
      'interactive time' 0 10000 1 100 "${fields[@]}" tree 'c__rand_int__' 1000 1 0 '' req-1 2) ;;
  tree-enter) open_tree
    command=(EVALSHA "$(cli SCRIPT LOAD "$(cat lua/tree-enter.lua)")" 3 "${tree[@]}" 'c__rand_int__' 1000 1 0 '' req-1
      tokens 100 requests 1) ;;
  one-key) # the reference of issue 10's ratio: a one-key token bucket (TIME, HMGET, HSET, PEXPIRE)
    command=(EVALSHA "$(cli SCRIPT LOAD "$(cat Benchmarks/lua/bucket-one-key.lua)")" 1 "${P}b1" $big $big 1) ;;
  *) echo "unknown case $case" >&2; exit 2 ;;
esac
redis-benchmark -p "$port" -c 10 -n "$n" -r 1000000000 -q "${command[@]}" >/dev/null
cli SHUTDOWN NOSAVE >/dev/null 2>&1
wait "$server"
total=$(callgrind_annotate "$dir/cg.out" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",", "", $1); print $1}')
echo "$case $file: $((total / n)) instructions per call ($n calls)"
