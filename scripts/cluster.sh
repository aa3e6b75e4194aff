#!/usr/bin/env bash
# A throwaway Redis Cluster for tests, benchmarks and demos: three primaries with one replica each,
# on free loopback ports, with no persistence, in a temporary directory, stopped by pid.
#
#   source scripts/cluster.sh
#   cluster_start          # sets CLUSTER_PORTS, CLUSTER_PIDS, CLUSTER_DIR and exports REDIS_CLUSTER_URL
#   cluster_stop           # stops every node this shell started (also registered on EXIT)
#
# Or run a command with a cluster: scripts/cluster.sh run -- COMMAND...
#
# Nodes time out after 2 s (cluster-node-timeout), so a replica takes over from a killed primary within
# a few seconds. REDIS_CLUSTER_URL names the first primary; any node's URL works for Sluice.

# stop_pids comes from redis.sh (sourced here unless the caller has sourced it already).
declare -F stop_pids >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/redis.sh"

_sluice_cluster_pids=()
_sluice_cluster_dirs=()

# A port P such that P and its cluster bus port P+10000 are both free and not in "$@".
_cluster_free_port() {
  local port taken
  for _ in $(seq 1 100); do
    port=$(_sluice_random_port 10000)
    taken=0
    for other in "$@"; do
      if [ "$port" = "$other" ] || [ "$port" = $(( other + 10000 )) ] || [ $(( port + 10000 )) = "$other" ]; then
        taken=1
      fi
    done
    [ "$taken" = 1 ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
      && ! (exec 3<>"/dev/tcp/127.0.0.1/$(( port + 10000 ))") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

cluster_start() {
  local dir port ports=() pids=() pid ok
  dir=$(mktemp -d -t sluice-cluster.XXXXXX)
  _sluice_cluster_dirs+=("$dir")
  for _ in 1 2 3 4 5 6; do
    port=$(_cluster_free_port "${ports[@]}") || return 1
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/$port" \
      --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 2000 \
      --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" "$@" >/dev/null
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 100); do
      if [ -s "$dir/$port/redis.pid" ] && redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
      sleep 0.05
    done
    if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
      echo "cluster node on port $port did not start:" >&2
      cat "$dir/$port/redis.log" >&2 || true
      _cluster_track_pids "$dir" "${ports[@]}"
      return 1
    fi
  done
  _cluster_track_pids "$dir" "${ports[@]}"
  local addresses=()
  for port in "${ports[@]}"; do addresses+=("127.0.0.1:$port"); done
  if ! redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
    echo "redis-cli --cluster create failed:" >&2
    cat "$dir/create.log" >&2
    return 1
  fi
  # Every node agrees that all slots are served, knows all six nodes, and every replica is in sync.
  for _ in $(seq 1 300); do
    ok=1
    for port in "${ports[@]}"; do
      local info
      info=$(redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r')
      if ! grep -q '^cluster_state:ok$' <<<"$info" || ! grep -q '^cluster_known_nodes:6$' <<<"$info" \
        || ! grep -q '^cluster_slots_ok:16384$' <<<"$info"; then
        ok=0
        break
      fi
      if redis-cli -p "$port" info replication 2>/dev/null | tr -d '\r' | grep -q '^role:slave$' \
        && ! redis-cli -p "$port" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up$'; then
        ok=0
        break
      fi
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  if [ "$ok" != 1 ]; then
    echo "the cluster did not reach cluster_state:ok:" >&2
    for port in "${ports[@]}"; do redis-cli -p "$port" cluster info >&2 2>&1 || true; done
    return 1
  fi
  CLUSTER_PORTS=("${ports[@]}")
  CLUSTER_DIR=$dir
  export REDIS_CLUSTER_URL="redis://127.0.0.1:${ports[0]}"
  local previous
  previous=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT$//")
  case "$previous" in
    *cluster_stop*) ;;
    "") trap cluster_stop EXIT ;;
    *) trap "cluster_stop; $previous" EXIT ;;
  esac
}

_cluster_track_pids() {
  local dir=$1 port
  shift
  for port in "$@"; do
    if [ -s "$dir/$port/redis.pid" ]; then
      _sluice_cluster_pids+=("$(cat "$dir/$port/redis.pid")")
    fi
  done
  CLUSTER_PIDS=("${_sluice_cluster_pids[@]}")
}

cluster_stop() {
  stop_pids "${_sluice_cluster_pids[@]}"
  local dir
  for dir in "${_sluice_cluster_dirs[@]}"; do rm -rf "$dir"; done
  _sluice_cluster_pids=()
  _sluice_cluster_dirs=()
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if [ "${1:-}" != "run" ] || [ "${2:-}" != "--" ]; then
    echo "usage: scripts/cluster.sh run -- COMMAND..." >&2
    exit 2
  fi
  shift 2
  cluster_start
  echo "throwaway Redis Cluster at $REDIS_CLUSTER_URL (ports ${CLUSTER_PORTS[*]})" >&2
  status=0
  "$@" || status=$?
  cluster_stop
  exit $status
fi
