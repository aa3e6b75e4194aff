#!/usr/bin/env bash
# Throwaway Redis servers for tests, benchmarks and demos: on a free loopback port, with no
# persistence, in a temporary directory, stopped by pid.
#
#   source scripts/redis.sh
#   redis_start            # sets REDIS_PORT, REDIS_PID, REDIS_DIR and exports REDIS_URL
#   redis_stop             # stops every server this shell started (also registered on EXIT)
#
# Or run a command with a server: scripts/redis.sh run -- COMMAND...

_sluice_redis_pids=()
_sluice_redis_dirs=()

# Test servers take ports below the kernel's ephemeral range (ip_local_port_range, from 32768 by default): a port
# inside it can become, at any moment, the local end of some outgoing connection, and redis-server then fails to
# bind a port that looked free a moment before ("Address already in use"; seen once in a soak under load).
# Prints a random port in [10000, first ephemeral port - RESERVED), RESERVED (default 0) leaving room above it.
_sluice_random_port() {
  local first _rest span
  read -r first _rest </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || first=32768
  span=$(( first - ${1:-0} - 10000 ))
  [ "$span" -ge 1000 ] || span=1000
  echo $(( 10000 + RANDOM % span ))
}

_redis_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(_sluice_random_port)
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

redis_start() {
  local port dir
  port=$(_redis_free_port)
  dir=$(mktemp -d -t sluice-redis.XXXXXX)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" >/dev/null
  for _ in $(seq 1 100); do
    if [ -s "$dir/redis.pid" ] && redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    sleep 0.05
  done
  if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "redis-server did not start on port $port:" >&2
    cat "$dir/redis.log" >&2 || true
    return 1
  fi
  REDIS_PORT=$port
  REDIS_PID=$(cat "$dir/redis.pid")
  REDIS_DIR=$dir
  export REDIS_URL="redis://127.0.0.1:$port"
  _sluice_redis_pids+=("$REDIS_PID")
  _sluice_redis_dirs+=("$dir")
  trap redis_stop EXIT
}

redis_stop() {
  stop_pids "${_sluice_redis_pids[@]}"
  local dir
  for dir in "${_sluice_redis_dirs[@]}"; do rm -rf "$dir"; done
  _sluice_redis_pids=()
  _sluice_redis_dirs=()
}

# Stops servers by pid: SIGCONT first (a test may have stopped one), then SIGTERM, and SIGKILL to
# what is still running after 2.5 s.
stop_pids() {
  local pid
  for pid in "$@"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# Servers that fault-injection tests start themselves live in ${TMPDIR:-/tmp}/sluice-test-*; a test
# process that dies cannot stop its own, so the test scripts sweep them on exit as well. Only orphans: a
# server whose parent is still a running test binary (`*.xctest`) belongs to another run on the same
# machine (a second checkout, the sanitizer runs), which would otherwise lose its servers mid-test.
sweep_test_servers() {
  local dir pid parent
  for dir in "${TMPDIR:-/tmp}"/sluice-test-*; do
    [ -d "$dir" ] || continue
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    [ -n "$pid" ] || continue # not started yet, or not a server's directory: nothing to stop
    if kill -0 "$pid" 2>/dev/null; then
      parent=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')
      if [ -n "$parent" ] && ps -o args= -p "$parent" 2>/dev/null | grep -q '\.xctest'; then
        continue
      fi
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir" 2>/dev/null || true
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if [ "${1:-}" != "run" ] || [ "${2:-}" != "--" ]; then
    echo "usage: scripts/redis.sh run -- COMMAND..." >&2
    exit 2
  fi
  shift 2
  redis_start
  echo "throwaway Redis at $REDIS_URL (pid $REDIS_PID)" >&2
  status=0
  "$@" || status=$?
  redis_stop
  exit $status
fi
