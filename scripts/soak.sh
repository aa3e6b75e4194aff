#!/usr/bin/env bash
# The chaos soak: N worker processes (`sluice soak worker`) run request trees through Backpressure.call and
# reservations through Limiter against the mock provider (`sluice soak provider`), each appending what it was
# admitted to a ledger file outside Redis, while a chaos driver, on a schedule seeded by --seed:
#   redis-stop      SIGSTOPs Redis (on a cluster: the primary of the soak's slot) for 1-4 s (1-1.5 s on a cluster,
#                   below cluster-node-timeout)
#   redis-restart   SIGKILLs Redis and starts it again on its AOF (appendfsync always: nothing acknowledged is lost,
#                   operators' quotas survive; checked after every restart). On a cluster: the soak primary's replica.
#   failover        (--cluster) a coordinated CLUSTER FAILOVER of the soak primary to its replica
#   worker-kill     SIGKILLs a worker that holds leases, and starts it again
#   quota-flip      `sluice quota set` flips tenant t0 between its loose and strict token rate
#   hostile-cli     malformed and hostile costs, names, specs and URLs through the sluice CLI
# (the workers also send hostile costs, names, specs, tree headers, provider headers and calls through the public
# API). At the end `sluice soak check` reads the ledgers and this script reads Redis; it prints one JSON object:
#   over_admitted        admissions over a limit in some interval (bucket: burst + rate x elapsed; tree budgets),
#                        from the ledger against the configured limits; fail-open admissions are left out and
#                        counted (fail_open_admissions)
#   leaked_leases        leases, queue waiters and in-flight calls still live in Redis after every holder is gone
#                        and their time to live has passed
#   keys_without_expiry  keys with no TTL (SCAN + TTL on every primary), the operators' configuration (the quota
#                        and tenant weight hashes) aside
#   crashed              processes that died other than by the driver (workers, provider, Redis, CLI by a signal)
#   late_calls           calls that returned more than 100 ms after their deadline, not counting time the worker's
#                        process stood still (measured by a thread of its own); late_calls_raw counts it
#   faults               faults injected, by kind; decisions_per_second outside faults and through each kind
# and exits 0 only when over_admitted, leaked_leases, keys_without_expiry, crashed, late_calls and untyped hostile
# results are all 0 and every restart kept the quotas.
#
#   scripts/soak.sh [--duration S] [--workers N] [--cluster] [--json] [--seed N] [--keep]
#
# Environment: SLUICE (the binary; default .build/debug/sluice, built when missing).
set -uo pipefail

DURATION=120
WORKERS=3
CLUSTER=0
JSON=0
SEED=${SOAK_SEED:-1}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --cluster) CLUSTER=1; shift ;;
    --json) JSON=1; shift ;;
    --seed) SEED=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || [ "$DURATION" -lt 15 ]; then echo "--duration: at least 15 s" >&2; exit 2; fi
if ! [[ "$WORKERS" =~ ^[0-9]+$ ]] || [ "$WORKERS" -lt 1 ]; then echo "--workers: at least 1" >&2; exit 2; fi

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-.build/debug/sluice}
if [ ! -x "$SLUICE" ]; then swift build --product sluice >&2 || exit 1; fi
SLUICE=$(realpath "$SLUICE")

WORK=$(mktemp -d -t sluice-soak.XXXXXX)
mkdir -p "$WORK/ledgers" "$WORK/logs"
FAULTS="$WORK/faults.jsonl"
: >"$FAULTS"
RANDOM=$SEED

log() { [ "$JSON" = 1 ] && echo "soak: $*" >&2 || echo "soak: $*"; }
now_ms() { date +%s%3N; }
record_fault() { # kind start end [detail]
  if [ -n "${4:-}" ]; then
    printf '{"kind":"%s","start":%s,"end":%s,"detail":"%s"}\n' "$1" "$2" "$3" "$4" >>"$FAULTS"
  else
    printf '{"kind":"%s","start":%s,"end":%s}\n' "$1" "$2" "$3" >>"$FAULTS"
  fi
}

CRASHED=0
CRASH_NOTES=()
crash() { CRASHED=$((CRASHED + 1)); CRASH_NOTES+=("$1"); log "CRASH: $1"; }

# --- Redis -------------------------------------------------------------------------------------------------
# Single node: our own server with AOF (appendfsync always), restarted on the same directory.
REDIS_PIDS_STARTED=()
source scripts/redis.sh
redis_args() { # port dir
  echo --port "$1" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always --dir "$2" \
    --daemonize yes --pidfile "$2/redis.pid" --logfile "$2/redis.log"
}
start_node() { # port dir [extra args...]  -> sets NODE_PID
  local port=$1 dir=$2
  shift 2
  rm -f "$dir/redis.pid"
  # shellcheck disable=SC2046
  redis-server $(redis_args "$port" "$dir") "$@" >/dev/null
  for _ in $(seq 1 200); do
    if [ -s "$dir/redis.pid" ] && redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.05
  done
  NODE_PID=$(cat "$dir/redis.pid" 2>/dev/null)
  REDIS_PIDS_STARTED+=("$NODE_PID")
}

if [ "$CLUSTER" = 1 ]; then
  source scripts/cluster.sh
  cluster_start --appendonly yes --appendfsync always || exit 1
  URL=$REDIS_CLUSTER_URL
  SLOT=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster keyslot soak)
  # The soak's keys all share the hash tag {soak}: one primary and its replica hold them.
  soak_nodes() { # prints "primary_port replica_port"
    local primary replica line
    line=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster nodes | awk -v s="$SLOT" '$3 ~ /master/ {
      for (i = 9; i <= NF; i++) { split($i, r, "-"); if ((r[2] == "" && r[1] == s) || (s >= r[1] && s <= r[2])) print $1, $2 } }')
    primary=$(awk '{print $2}' <<<"$line" | sed 's/@.*//; s/.*://')
    local id
    id=$(awk '{print $1}' <<<"$line")
    replica=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster nodes | awk -v id="$id" '$4 == id {print $2}' | sed 's/@.*//; s/.*://' | head -1)
    echo "$primary $replica"
  }
  node_pid() { cat "$CLUSTER_DIR/$1/redis.pid"; }
  restart_cluster_node() { # port
    local port=$1 dir="$CLUSTER_DIR/$1"
    start_node "$port" "$dir" --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
      --cluster-node-timeout 2000
  }
  PRIMARY_PORTS() { for p in "${CLUSTER_PORTS[@]}"; do
    redis-cli -p "$p" info replication 2>/dev/null | tr -d '\r' | grep -q '^role:master$' && echo "$p"; done; }
else
  mkdir -p "$WORK/redis"
  # A port that looked free can be taken before redis-server binds it: then try another.
  for _ in 1 2 3 4 5; do
    PORT=$(_redis_free_port) || exit 1
    start_node "$PORT" "$WORK/redis"
    redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break
    log "redis-server did not start on port $PORT: $(tail -1 "$WORK/redis/redis.log" 2>/dev/null)"
  done
  REDIS_PID=$NODE_PID
  URL="redis://127.0.0.1:$PORT"
  PRIMARY_PORTS() { echo "$PORT"; }
fi

PROVIDER_PID=
declare -A WORKER_PID=()
cleanup() {
  for pid in "${WORKER_PID[@]}"; do kill -9 "$pid" 2>/dev/null; done
  [ -n "$PROVIDER_PID" ] && kill "$PROVIDER_PID" 2>/dev/null
  for pid in "${REDIS_PIDS_STARTED[@]}"; do kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done
  [ "$CLUSTER" = 1 ] && cluster_stop
  for pid in "${REDIS_PIDS_STARTED[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "$KEEP" = 1 ] || [ "${SOAK_FAILED:-1}" = 1 ]; then echo "soak: files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# Interrupted, or the reader of our output gone: still stop everything we started (the EXIT trap).
trap 'exit 130' INT TERM HUP
trap '' PIPE

# --- Operators' quotas, the provider, the workers -------------------------------------------------------------
set_t0() { # loose|strict
  local rate=3000
  [ "$1" = strict ] && rate=750
  "$SLUICE" quota set --redis "$URL" global=soak tenant=t0 --resource tokens --rate "$rate/s" --burst 3000 \
    --debt 0 >/dev/null 2>>"$WORK/logs/quota.log"
}
T0_SPEC=loose
set_t0 loose || { log "cannot set the operators' quota"; exit 1; }
# t0's share of the batch line, fleet-wide (configuration, like the quota hash: no expiry)
"$SLUICE" quota weight --redis "$URL" global=soak tenant=t0 2 >/dev/null 2>>"$WORK/logs/quota.log" ||
  { log "cannot set the operators' tenant weight"; exit 1; }
quota_field() { "$SLUICE" quota get --redis "$URL" global=soak tenant=t0 2>/dev/null; }
EXPECTED_QUOTA=$(quota_field)

"$SLUICE" soak provider --port-file "$WORK/provider.port" >"$WORK/logs/provider.log" 2>&1 &
PROVIDER_PID=$!
for _ in $(seq 1 200); do [ -s "$WORK/provider.port" ] && break; sleep 0.05; done
PROVIDER_URL="http://127.0.0.1:$(cat "$WORK/provider.port")"

START_MS=$(now_ms)
END_MS=$((START_MS + DURATION * 1000))
declare -A WORKER_GEN=()
start_worker() { # index
  local i=$1 gen=$(( ${WORKER_GEN[$1]:-0} + 1 ))
  WORKER_GEN[$i]=$gen
  "$SLUICE" soak worker --redis "$URL" --provider "$PROVIDER_URL" --ledger "$WORK/ledgers/worker-$i-$gen.jsonl" \
    --index "$i" --end-ms "$END_MS" --seed "$((SEED * 1000 + i * 10 + gen))" >"$WORK/logs/worker-$i-$gen.log" 2>&1 &
  WORKER_PID[$i]=$!
}
for i in $(seq 0 $((WORKERS - 1))); do start_worker "$i"; done
log "$WORKERS workers on $URL, provider $PROVIDER_URL, ${DURATION}s, seed $SEED, files in $WORK"

# --- Faults ---------------------------------------------------------------------------------------------------
declare -A FAULT_COUNT=()
QUOTA_LOST=0
count_fault() { FAULT_COUNT[$1]=$(( ${FAULT_COUNT[$1]:-0} + 1 )); }

fault_redis_stop() {
  local pid seconds start
  if [ "$CLUSTER" = 1 ]; then
    read -r primary _ <<<"$(soak_nodes)"
    pid=$(node_pid "$primary")
    seconds="1.$((RANDOM % 5))"
  else
    pid=$REDIS_PID
    seconds=$((1 + RANDOM % 4))
  fi
  start=$(now_ms)
  kill -STOP "$pid" && sleep "$seconds"
  kill -CONT "$pid"
  record_fault redis-stop "$start" "$(now_ms)"
  count_fault redis-stop
}

fault_redis_restart() {
  local start port pid
  start=$(now_ms)
  if [ "$CLUSTER" = 1 ]; then
    read -r _ port <<<"$(soak_nodes)"
    pid=$(node_pid "$port")
    kill -9 "$pid"
    sleep 0.5
    restart_cluster_node "$port"
  else
    kill -9 "$REDIS_PID"
    for _ in $(seq 1 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.02; done
    sleep 0.5
    start_node "$PORT" "$WORK/redis"
    REDIS_PID=$NODE_PID
  fi
  record_fault redis-restart "$start" "$(now_ms)"
  count_fault redis-restart
  local got
  got=$(quota_field)
  if [ "$got" != "$EXPECTED_QUOTA" ]; then
    QUOTA_LOST=$((QUOTA_LOST + 1))
    log "the operators' quota did not survive a restart: '$got' (expected '$EXPECTED_QUOTA')"
  fi
}

fault_failover() {
  local start primary replica
  start=$(now_ms)
  read -r primary replica <<<"$(soak_nodes)"
  redis-cli -p "$replica" cluster failover >/dev/null
  for _ in $(seq 1 200); do
    redis-cli -p "$replica" info replication 2>/dev/null | tr -d '\r' | grep -q '^role:master$' && break
    sleep 0.05
  done
  record_fault failover "$start" "$(now_ms)" "$primary->$replica"
  count_fault failover
}

fault_worker_kill() {
  local i pid start held key
  i=$((RANDOM % WORKERS))
  pid=${WORKER_PID[$i]}
  key='sluice:{soak}:lease:provider'
  # Wait (up to 2 s) until the worker holds a lease, so that the kill leaves leases behind.
  held=0
  for _ in $(seq 1 40); do
    held=$(redis-cli -u "$URL" -c zrange "$key" 0 -1 2>/dev/null | grep -c -- "-pid-$pid\$")
    [ "$held" -gt 0 ] && break
    sleep 0.05
  done
  start=$(now_ms)
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  sleep 1
  start_worker "$i"
  # The fault lasts until the new worker is up (its leases of the killed one expire meanwhile).
  sleep 1
  record_fault worker-kill "$start" "$(now_ms)" "worker $i held $held leases"
  count_fault worker-kill
}

fault_quota_flip() {
  local start next=strict
  [ "$T0_SPEC" = strict ] && next=loose
  start=$(now_ms)
  if set_t0 "$next"; then
    T0_SPEC=$next
    EXPECTED_QUOTA=$(quota_field)
  else
    log "sluice quota set failed (flip to $next)"
  fi
  record_fault quota-flip "$start" "$(now_ms)" "$T0_SPEC"
  count_fault quota-flip
}

HOSTILE_CLI=0
HOSTILE_CLI_ACCEPTED=0
hostile_cli_case() { # args...: must exit without a signal
  local status
  HOSTILE_CLI=$((HOSTILE_CLI + 1))
  timeout 10 "$SLUICE" "$@" >/dev/null 2>>"$WORK/logs/hostile-cli.log"
  status=$?
  if [ "$status" -eq 0 ]; then HOSTILE_CLI_ACCEPTED=$((HOSTILE_CLI_ACCEPTED + 1)); fi
  if [ "$status" -ge 124 ]; then crash "sluice $* exited with $status"; fi
}
fault_hostile_cli() {
  local start long
  start=$(now_ms)
  long=$(head -c 20000 /dev/zero | tr '\0' 'n')
  case $((RANDOM % 4)) in
    0)
      hostile_cli_case check --redis "$URL" global=soak tenant=t1 --cost tokens=-5
      hostile_cli_case check --redis "$URL" global=soak tenant=t1 --cost tokens=99999999999999999999
      hostile_cli_case check --redis "$URL" global=soak tenant=t1 --cost =3
      hostile_cli_case check --redis "$URL" global=soak tenant=t1 --cost 'tok{en}s=1'
      ;;
    1)
      hostile_cli_case check --redis "$URL" global=soak "tenant=$long" --cost hostile=1
      hostile_cli_case check --redis "$URL" 'global=soak' 'tenant={soak}' --cost hostile=1
      hostile_cli_case check --redis "$URL" 'global=soak' 'tenant=' --cost hostile=1
      hostile_cli_case check --redis "$URL" '=' --cost hostile=1
      hostile_cli_case check --redis "$URL" $'global=soak\ntenant=x' --cost hostile=1
      ;;
    2)
      hostile_cli_case quota set --redis "$URL" global=soak tenant=hostile --resource tokens --rate -1/s
      hostile_cli_case quota set --redis "$URL" global=soak tenant=hostile --resource tokens --rate 1/0s
      hostile_cli_case quota set --redis "$URL" global=soak tenant=hostile --resource tokens --window 0/s --exact
      hostile_cli_case quota set --redis "$URL" global=soak 'tenant=*' 'tree=x' --resource tokens --rate 1/s
      hostile_cli_case quota set --redis "$URL" global=soak tenant=hostile --resource '' --rate 1/s
      ;;
    3)
      hostile_cli_case check --redis 'redis://127.0.0.1:notaport' global=soak --cost tokens=1
      hostile_cli_case check --redis 'gopher://x' global=soak --cost tokens=1
      hostile_cli_case reserve --redis "$URL" global=soak tenant=t2 --cost tokens=-1
      hostile_cli_case quota get --redis "$URL" "global=$long"
      ;;
  esac
  record_fault hostile-cli "$start" "$(now_ms)"
  count_fault hostile-cli
}

KINDS=(redis-stop worker-kill quota-flip hostile-cli redis-restart)
[ "$CLUSTER" = 1 ] && KINDS+=(failover)
# A seeded schedule: each round takes every kind once, in a shuffled order, with 3-6 s of calm before each.
schedule=()
while [ ${#schedule[@]} -lt 200 ]; do
  round=("${KINDS[@]}")
  for ((k = ${#round[@]} - 1; k > 0; k--)); do
    j=$((RANDOM % (k + 1)))
    tmp=${round[$k]}; round[$k]=${round[$j]}; round[$j]=$tmp
  done
  schedule+=("${round[@]}")
done
next=0
while [ $(( $(now_ms) + 12000 )) -lt "$END_MS" ]; do
  sleep "$((3 + RANDOM % 4))"
  [ $(( $(now_ms) + 8000 )) -lt "$END_MS" ] || break
  kind=${schedule[$next]}
  next=$((next + 1))
  log "fault: $kind"
  "fault_${kind//-/_}"
  # Redis must still be there, except by our hand.
  if [ "$CLUSTER" = 0 ] && ! kill -0 "$REDIS_PID" 2>/dev/null; then crash "redis-server died"; fi
  if ! kill -0 "$PROVIDER_PID" 2>/dev/null; then crash "the provider died"; fi
done

# --- The end: workers stop by themselves at END_MS --------------------------------------------------------------
for i in "${!WORKER_PID[@]}"; do
  pid=${WORKER_PID[$i]}
  # A worker stops at its end; it may take a call's timeout to wind down.
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    crash "worker $i (pid $pid) did not stop"
    kill -9 "$pid"
  fi
  wait "$pid"
  status=$?
  [ "$status" -eq 0 ] || crash "worker $i (pid $pid) exited with $status (log: $WORK/logs/worker-$i-${WORKER_GEN[$i]}.log)"
done
WORKER_PID=()
for i in $(seq 0 $((WORKERS - 1))); do
  for gen in $(seq 1 "${WORKER_GEN[$i]}"); do
    grep -qiE 'fatal error|panic|Segmentation|Illegal instruction' "$WORK/logs/worker-$i-$gen.log" \
      && crash "worker $i generation $gen logged a fatal error"
  done
done
kill -0 "$PROVIDER_PID" 2>/dev/null || crash "the provider died"

# Everything a worker held expires by itself: leases after their TTL (3 s), queue waiters at their give-up time,
# in-flight calls at the max call duration (10 s). Wait that long, then read Redis.
log "waiting 11 s for the holders' expiries"
sleep 11

SCAN_NO_TTL='local cursor, out = "0", {}
repeat
  local r = redis.call("SCAN", cursor, "COUNT", 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    if redis.call("TTL", k) == -1 and not string.find(k, ":quotas$") and not string.find(k, ":weights$") then
      out[#out + 1] = k
    end
  end
until cursor == "0"
return out'
LIVE_HOLDS='local t = redis.call("TIME")
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local cursor, out = "0", {}
repeat
  local r = redis.call("SCAN", cursor, "COUNT", 1000, "TYPE", "zset")
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    if string.find(k, ":lease:") or string.find(k, ":queue:") or string.find(k, ":inflight:") then
      local m = redis.call("ZRANGEBYSCORE", k, "(" .. now, "+inf", "WITHSCORES")
      for i = 1, #m, 2 do
        if string.sub(m[i], 1, 1) ~= "#" then out[#out + 1] = k .. " " .. m[i] .. " " .. m[i + 1] end
      end
    end
  end
until cursor == "0"
return out'
NO_TTL_KEYS=()
LIVE=()
for port in $(PRIMARY_PORTS); do
  while IFS= read -r line; do [ -n "$line" ] && NO_TTL_KEYS+=("$line"); done \
    < <(redis-cli -p "$port" eval "$SCAN_NO_TTL" 0)
  while IFS= read -r line; do [ -n "$line" ] && LIVE+=("$line"); done < <(redis-cli -p "$port" eval "$LIVE_HOLDS" 0)
done
[ ${#NO_TTL_KEYS[@]} -gt 0 ] && log "keys without expiry: ${NO_TTL_KEYS[*]:0:10}"
[ ${#LIVE[@]} -gt 0 ] && log "live holds after expiry: ${LIVE[*]:0:10}"
got=$(quota_field)
[ "$got" = "$EXPECTED_QUOTA" ] || { QUOTA_LOST=$((QUOTA_LOST + 1)); log "the operators' quota is gone at the end"; }

LEDGER_JSON=$("$SLUICE" soak check --ledgers "$WORK/ledgers" --faults "$FAULTS" --start-ms "$START_MS" \
  --end-ms "$END_MS") || { crash "sluice soak check failed"; LEDGER_JSON='{}'; }

faults_json=$(for k in "${!FAULT_COUNT[@]}"; do printf '{"%s":%s}\n' "$k" "${FAULT_COUNT[$k]}"; done | jq -s 'add // {}')
crash_json=$(printf '%s\n' "${CRASH_NOTES[@]}" | jq -R . | jq -s 'map(select(length > 0))')
nottl_json=$(printf '%s\n' "${NO_TTL_KEYS[@]:0:20}" | jq -R . | jq -s 'map(select(length > 0))')
live_json=$(printf '%s\n' "${LIVE[@]:0:20}" | jq -R . | jq -s 'map(select(length > 0))')
RESULT=$(jq -n --argjson ledger "$LEDGER_JSON" --argjson faults "$faults_json" --argjson crashes "$crash_json" \
  --argjson nottl "$nottl_json" --argjson live "$live_json" \
  --arg duration "$DURATION" --arg workers "$WORKERS" --arg cluster "$CLUSTER" --arg seed "$SEED" \
  --arg crashed "$CRASHED" --arg leaked "${#LIVE[@]}" --arg nottlcount "${#NO_TTL_KEYS[@]}" \
  --arg quotalost "$QUOTA_LOST" --arg hcli "$HOSTILE_CLI" --arg hcliok "$HOSTILE_CLI_ACCEPTED" '
  ($ledger.hostile_inputs // {} | to_entries | map(select(.key | test(":untyped"))) | map(.value) | add // 0) as $untyped
  | {
    duration_s: ($duration | tonumber), workers: ($workers | tonumber), cluster: ($cluster == "1"),
    seed: ($seed | tonumber),
    over_admitted: ($ledger.over_admitted // -1),
    leaked_leases: ($leaked | tonumber),
    keys_without_expiry: ($nottlcount | tonumber),
    crashed: ($crashed | tonumber),
    late_calls: ($ledger.late_calls // -1),
    faults: $faults,
    decisions_per_second: ($ledger.decisions_per_second // {}),
    admissions_checked: ($ledger.admissions_checked // 0),
    fail_open_admissions: ($ledger.fail_open_admissions // 0),
    refusals: ($ledger.refusals // 0),
    errors: ($ledger.errors // {}),
    late_calls_raw: ($ledger.late_calls_raw // -1),
    late_call_worst_ms: ($ledger.late_call_worst_ms // 0),
    late_call_worst_raw_ms: ($ledger.late_call_worst_raw_ms // 0),
    hostile_api: ($ledger.hostile_inputs // {}),
    hostile_api_untyped: $untyped,
    hostile_cli: {sent: ($hcli | tonumber), accepted: ($hcliok | tonumber)},
    quota_lost: ($quotalost | tonumber),
    ledger_torn_lines: ($ledger.ledger_torn_lines // 0),
    over_admitted_examples: ($ledger.over_admitted_examples // []),
    crashes: $crashes, keys_without_expiry_examples: $nottl, leaked_lease_examples: $live
  }
  | .passed = (.over_admitted == 0 and .leaked_leases == 0 and .keys_without_expiry == 0 and .crashed == 0
      and .late_calls == 0 and .hostile_api_untyped == 0 and .quota_lost == 0 and .admissions_checked > 0)')

if [ "$JSON" = 1 ]; then
  echo "$RESULT"
else
  jq -r '"over_admitted \(.over_admitted)  leaked_leases \(.leaked_leases)  keys_without_expiry \(.keys_without_expiry)  crashed \(.crashed)  late_calls \(.late_calls)",
    "faults \(.faults)", "decisions/s \(.decisions_per_second)",
    "admissions checked \(.admissions_checked), fail-open \(.fail_open_admissions), refusals \(.refusals)",
    (if .passed then "PASS" else "FAIL" end)' <<<"$RESULT"
fi
if [ "$(jq -r .passed <<<"$RESULT")" = true ]; then SOAK_FAILED=0; exit 0; fi
SOAK_FAILED=1
exit 1
