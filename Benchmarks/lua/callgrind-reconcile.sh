#!/usr/bin/env bash
# Instructions per merge of one reconcile.lua version under callgrind: what call-finish's "reconcile"
# step costs Redis for each provider response, counted stably on a noisy machine. Starts its own
# redis-server under valgrind, loads the entry as the library does (a function of KEYS and ARGV, the
# shared modules loaded once), collects only inside fcallCommand, and merges the same 'ok' response (a
# storm's: requests and tokens, each with its stated limit, remaining and reset) CALLS times into a root
# scope whose state also holds a token bucket (one decide first, as a live partition has).
# Usage: Benchmarks/lua/callgrind-reconcile.sh [reconcile.lua=lua/reconcile.lua] [calls=20000] [port=6396]
#   [tokens remaining=30465]: each merge reports the same remaining, which time since the last one makes lower
#   than the cap projected to now (a write each time); 40000, the whole window, never is (nothing changes).
set -uo pipefail
cd "$(dirname "$0")/../.."
file=${1:-lua/reconcile.lua}; n=${2:-20000}; port=${3:-6396}; remaining=${4:-30465}
if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is in use: pass another one" >&2; exit 1; fi
dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] && cp "$dir/cg.out" "$KEEP"; rm -rf "$dir"' EXIT
valgrind --tool=callgrind --toggle-collect=fcallCommand --callgrind-out-file="$dir/cg.out" \
  redis-server --port "$port" --save '' --appendonly no --dir "$dir" >/dev/null 2>"$dir/valgrind.log" &
server=$!
for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$port" "$@"; }
{
  printf '#!lua name=b\n%s\n' "$(scripts/embed-lua.sh --prelude)"
  sed 's/sluice_decide_VERSION/d/' lua/decide.lua
  if grep -q sluice_reconcile_VERSION "$file"; then # registers its function, as the library's entries do
    sed 's/sluice_reconcile_VERSION/r/' "$file"
  else # an older version: a script body, which the library wraps in a function
    printf "sluice['reconcile'] = function(KEYS, ARGV)\n%s\nend\n" "$(cat "$file")"
    echo "redis.register_function('r', function(keys, args) return sluice['reconcile'](keys, args) end)"
  fi
} > "$dir/library.lua"
cli -x FUNCTION LOAD REPLACE < "$dir/library.lua" >/dev/null
P='sluice:{openai}:'
root="${P}s:global=openai"
cli FCALL d 3 "${P}quotas" "${P}stats" "$root" $'tokens\ntokens: bucket rate=40000/s burst=40000' interactive 0 0 100 \
  'global=openai' >/dev/null
redis-benchmark -p "$port" -c 10 -n "$n" -q FCALL r 2 "$root" "${P}events" global=openai ok 0 -1 1000 \
  1.0 0.7 334 86400000 200 1 0 requests 400 400 25 tokens 40000 "$remaining" 239 >/dev/null
echo "state: $(cli STRLEN "$root") bytes, $(cli EXISTS "$root") key"
cli SHUTDOWN NOSAVE >/dev/null 2>&1
wait "$server"
total=$(callgrind_annotate "$dir/cg.out" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",", "", $1); print $1}')
echo "reconcile $file: $((total / n)) instructions per merge ($n merges)"
