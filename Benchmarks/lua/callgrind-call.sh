#!/usr/bin/env bash
# Instructions per provider call of Backpressure.call's happy path (call-admit + call-finish) under
# callgrind: a stable way to compare versions of the scripts on a noisy machine, where the server
# time `sluice bench call` reads (usec of INFO commandstats) mostly measures how often the server
# thread was preempted. Captures one call's two FCALLs with MONITOR from `sluice bench call` on a
# plain redis-server, then replays PAIRS of them (each with its own reservation id) on a
# redis-server under valgrind that collects only inside fcallCommand.
# Usage: Benchmarks/lua/callgrind-call.sh [sluice binary=.build/debug/sluice] [pairs=2000] [port=6540]
#   extra `sluice bench call` options after the third argument (e.g. --lease-slots 100, --tree)
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-.build/debug/sluice}; n=${2:-2000}; port=${3:-6540}; shift $(( $# < 3 ? $# : 3 ))
plain=$((port + 1))
for p in $port $plain; do
  if redis-cli -p "$p" ping >/dev/null 2>&1; then echo "port $p is in use: pass another one" >&2; exit 1; fi
done
dir=$(mktemp -d)
redis-server --port "$plain" --save '' --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/plain.pid" >/dev/null
for _ in $(seq 100); do redis-cli -p "$plain" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$plain" MONITOR > "$dir/monitor.txt" &
monitor=$!
sleep 0.3
big=1000000000
"$bin" bench call --redis "redis://127.0.0.1:$plain" global=openai tenant=acme --cost requests=1 --cost tokens=100 \
  --default "global=tokens: bucket rate=$big/s burst=$big" --default "tenant=requests: window $big/min" \
  --concurrency 1 --count 3 --json "$@" >/dev/null
sleep 1
kill "$monitor" 2>/dev/null
python3 Benchmarks/lua/call-replay.py "$dir/monitor.txt" "$n" "$dir/calls.resp" >/dev/null
redis-cli -p "$plain" --no-raw FUNCTION DUMP >/dev/null
python3 - "$plain" "$dir/functions.bin" <<'PY'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'*2\r\n$8\r\nFUNCTION\r\n$4\r\nDUMP\r\n')
data = b''
while b'\r\n' not in data: data += s.recv(65536)
size = int(data[1:data.index(b'\r\n')]); start = data.index(b'\r\n') + 2
while len(data) < start + size: data += s.recv(1 << 20)
open(sys.argv[2], 'wb').write(data[start:start + size])
PY
redis-cli -p "$plain" SHUTDOWN NOSAVE >/dev/null 2>&1
valgrind --tool=callgrind --toggle-collect=fcallCommand --callgrind-out-file="$dir/cg.out" \
  redis-server --port "$port" --save '' --appendonly no --dir "$dir" >/dev/null 2>"$dir/valgrind.log" &
server=$!
for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$port" -x FUNCTION RESTORE < "$dir/functions.bin" >/dev/null
redis-cli -p "$port" --pipe < "$dir/calls.resp" | tail -1
redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1
wait "$server"
total=$(callgrind_annotate "$dir/cg.out" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",", "", $1); print $1}')
echo "call-admit + call-finish: $((total / n)) instructions per provider call ($n calls, $bin $*)"
rm -rf "$dir"
