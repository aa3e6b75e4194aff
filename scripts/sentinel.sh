#!/usr/bin/env bash
# A throwaway Redis Sentinel setup for tests, benchmarks and demos: a primary, one replica and three
# sentinels (quorum 2) on free loopback ports, with no persistence, in a temporary directory, stopped by pid.
#
#   source scripts/sentinel.sh
#   sentinel_start         # sets SENTINEL_PORTS, SENTINEL_PIDS, SENTINEL_DIR, SENTINEL_PRIMARY_PORT,
#                          # SENTINEL_REPLICA_PORT and exports REDIS_SENTINEL_URL (…#sluice-primary)
#   sentinel_stop          # stops every process this shell started (also registered on EXIT)
#
# Or run a command with one: scripts/sentinel.sh run -- COMMAND...
# A fail-over on demand: redis-cli -p "${SENTINEL_PORTS[0]}" sentinel failover sluice-primary

declare -F _sluice_random_port >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/redis.sh"

_sluice_sentinel_pids=()
_sluice_sentinel_dirs=()
SENTINEL_PRIMARY_NAME=sluice-primary

_sentinel_free_port() {
  local port taken
  for _ in $(seq 1 100); do
    port=$(_sluice_random_port)
    taken=0
    for other in "$@"; do [ "$port" = "$other" ] && taken=1; done
    [ "$taken" = 1 ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

_sentinel_wait_ping() {
  local port=$1
  for _ in $(seq 1 200); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "nothing answers on port $port" >&2
  return 1
}

sentinel_start() {
  local dir ports=() port primary replica pid ok
  dir=$(mktemp -d -t sluice-sentinel.XXXXXX)
  _sluice_sentinel_dirs+=("$dir")
  primary=$(_sentinel_free_port) || return 1
  replica=$(_sentinel_free_port "$primary") || return 1
  for _ in 1 2 3; do
    port=$(_sentinel_free_port "$primary" "$replica" "${ports[@]}") || return 1
    ports+=("$port")
  done
  for port in "$primary" "$replica"; do
    mkdir -p "$dir/$port"
    local extra=()
    [ "$port" = "$replica" ] && extra=(--replicaof 127.0.0.1 "$primary")
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/$port" \
      --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" "${extra[@]}" >/dev/null
    _sentinel_wait_ping "$port" || return 1
    _sluice_sentinel_pids+=("$(cat "$dir/$port/redis.pid")")
  done
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    cat >"$dir/$port/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
dir $dir/$port
pidfile $dir/$port/sentinel.pid
logfile $dir/$port/sentinel.log
sentinel monitor $SENTINEL_PRIMARY_NAME 127.0.0.1 $primary 2
sentinel down-after-milliseconds $SENTINEL_PRIMARY_NAME 2000
sentinel failover-timeout $SENTINEL_PRIMARY_NAME 10000
CONF
    redis-server "$dir/$port/sentinel.conf" --sentinel >/dev/null
    _sentinel_wait_ping "$port" || return 1
    _sluice_sentinel_pids+=("$(cat "$dir/$port/sentinel.pid")")
  done
  # The sentinels agree: each names the primary, knows the replica and the two other sentinels.
  for _ in $(seq 1 300); do
    ok=1
    for port in "${ports[@]}"; do
      local info
      info=$(redis-cli -p "$port" sentinel master "$SENTINEL_PRIMARY_NAME" 2>/dev/null | tr -d '\r' | paste - -)
      if ! grep -qP '^num-slaves\t1$' <<<"$info" || ! grep -qP '^num-other-sentinels\t2$' <<<"$info" \
        || ! grep -qP "^port\t$primary$" <<<"$info"; then
        ok=0
        break
      fi
    done
    if ! redis-cli -p "$replica" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up$'; then
      ok=0
    fi
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  if [ "$ok" != 1 ]; then
    echo "the sentinels did not agree on the primary:" >&2
    for port in "${ports[@]}"; do tail -5 "$dir/$port/sentinel.log" >&2 || true; done
    return 1
  fi
  SENTINEL_PORTS=("${ports[@]}")
  SENTINEL_PIDS=("${_sluice_sentinel_pids[@]}")
  SENTINEL_DIR=$dir
  SENTINEL_PRIMARY_PORT=$primary
  SENTINEL_REPLICA_PORT=$replica
  export REDIS_SENTINEL_URL="redis-sentinel://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}#$SENTINEL_PRIMARY_NAME"
  local previous
  previous=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT$//")
  case "$previous" in
    *sentinel_stop*) ;;
    "") trap sentinel_stop EXIT ;;
    *) trap "sentinel_stop; $previous" EXIT ;;
  esac
}

sentinel_stop() {
  local pid dir
  for pid in "${_sluice_sentinel_pids[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${_sluice_sentinel_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for dir in "${_sluice_sentinel_dirs[@]}"; do rm -rf "$dir"; done
  _sluice_sentinel_pids=()
  _sluice_sentinel_dirs=()
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if [ "${1:-}" != "run" ] || [ "${2:-}" != "--" ]; then
    echo "usage: scripts/sentinel.sh run -- COMMAND..." >&2
    exit 2
  fi
  shift 2
  sentinel_start
  echo "throwaway Redis Sentinel at $REDIS_SENTINEL_URL (primary on $SENTINEL_PRIMARY_PORT)" >&2
  status=0
  "$@" || status=$?
  sentinel_stop
  exit $status
fi
