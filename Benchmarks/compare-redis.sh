#!/usr/bin/env bash
# Side-by-side: Sluice's Redis client (`sluice bench redis`) against redis-benchmark, on one
# throwaway server, in one run, alternating, ROUNDS times each; prints medians and ratios.
#
#   Benchmarks/compare-redis.sh [ROUNDS] [SECONDS]
#   TLS=1 Benchmarks/compare-redis.sh ...     # both over TLS (rediss://, redis-benchmark --tls)
#   SLUICE_BIN=path/to/sluice ...             # that binary instead of building the release one
#   SLUICE_BASELINE=path/to/old/sluice ...    # also run an older build in the same rounds (plain TCP)
#   CASES="evalsha50 ping1" ...               # only these cases
#
# redis-benchmark runs without -P (no pipelining), at the same concurrency; its PING_MBULK is the
# same command `sluice bench redis --op ping` sends, and EVALSHA runs the same `return 1` script.
# Cases ending in -io run the calling tasks on the connection's I/O thread (--executor connection).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-4}

scripts/install-deps.sh
sluice=$(Benchmarks/sluice-binary.sh)
source scripts/redis.sh
sluice_tls=()
rb_tls=()
if [ "${TLS:-0}" = 1 ]; then
  # A CA and a server certificate for 127.0.0.1, made for this run; the plain port stays for setup.
  certs=$(mktemp -d -t sluice-bench-tls.XXXXXX)
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$certs/ca.key" -out "$certs/ca.crt" -days 1 -subj /CN=bench-ca 2>/dev/null
  openssl req "${ec[@]}" -keyout "$certs/server.key" -out "$certs/server.csr" -subj /CN=127.0.0.1 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$certs/server.ext"
  openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
    -out "$certs/server.crt" -days 1 -extfile "$certs/server.ext" 2>/dev/null
  tls_port=$(_redis_free_port)
  redis_start --tls-port "$tls_port" --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
    --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no
  trap 'redis_stop; rm -rf "$certs"' EXIT
  bench_url="rediss://127.0.0.1:$tls_port"
  bench_port=$tls_port
  sluice_tls=(--tls-ca-cert-file "$certs/ca.crt")
  rb_tls=(--tls --cacert "$certs/ca.crt")
else
  redis_start
  bench_url=$REDIS_URL
  bench_port=$REDIS_PORT
fi
sha=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "return 1")

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The last line of a command's --json output, one field of it (empty when null); any JSON spacing.
json_field() {
  python3 -c 'import json, sys; v = json.loads(sys.stdin.read().splitlines()[-1])[sys.argv[1]]; print("" if v is None else v)' "$1"
}
# redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
csv_field() { tail -n 1 | tr -d '"' | cut -d, -f"$1"; }

declare -A results
run_case() { # name op concurrency executor redis-benchmark-args...
  local name=$1 op=$2 c=$3 executor=$4
  shift 4
  local out rb n
  n=$(( c == 1 ? 30000 : 300000 ))
  out=$($sluice bench redis --redis "$bench_url" ${sluice_tls[@]+"${sluice_tls[@]}"} --op "$op" --concurrency "$c" \
    --executor "$executor" --duration "$seconds" --json)
  results[$name.sluice.ops]+="$(echo "$out" | json_field ops_per_sec) "
  results[$name.sluice.p50]+="$(echo "$out" | json_field p50_us) "
  if [ -n "${SLUICE_BASELINE:-}" ]; then
    out=$($SLUICE_BASELINE bench redis --redis "$bench_url" --op "$op" --concurrency "$c" \
      --executor "$executor" --duration "$seconds" --json)
    results[$name.base.ops]+="$(echo "$out" | json_field ops_per_sec) "
    results[$name.base.p50]+="$(echo "$out" | json_field p50_us) "
  fi
  rb=$(redis-benchmark -p "$bench_port" ${rb_tls[@]+"${rb_tls[@]}"} -c "$c" -n "$n" --csv "$@")
  results[$name.rb.ops]+="$(echo "$rb" | csv_field 2) "
  results[$name.rb.p50]+="$(echo "$rb" | csv_field 5 | awk '{ print $1 * 1000 }') "
}

cases=${CASES:-ping50 ping50-io evalsha50 ping1 ping1-io}
for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds" >&2
  for name in $cases; do
    case $name in
      ping50) run_case ping50 ping 50 pool -t ping_mbulk ;;
      ping50-io) run_case ping50-io ping 50 connection -t ping_mbulk ;;
      evalsha50) run_case evalsha50 evalsha 50 pool EVALSHA "$sha" 0 ;;
      ping1) run_case ping1 ping 1 pool -t ping_mbulk ;;
      ping1-io) run_case ping1-io ping 1 connection -t ping_mbulk ;;
      *) echo "unknown case $name" >&2; exit 2 ;;
    esac
  done
done

m() { echo "${results[$1]}" | tr ' ' '\n' | grep -v '^$' | median; }
printf '\nmedians of %s rounds, %s s each, Redis %s on loopback%s\n\n' "$rounds" "$seconds" \
  "$(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/')" "$([ "${TLS:-0}" = 1 ] && echo ', over TLS')"
printf '| case | sluice ops/s | redis-benchmark ops/s | ratio | sluice p50 µs | redis-benchmark p50 µs | ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
for name in $cases; do
  so=$(m $name.sluice.ops); ro=$(m $name.rb.ops); sp=$(m $name.sluice.p50); rp=$(m $name.rb.p50)
  printf '| %s | %.0f | %.0f | %.2fx | %.1f | %.1f | %.2fx |\n' "$name" "$so" "$ro" "$(ratio "$so" "$ro")" "$sp" "$rp" \
    "$(ratio "$sp" "$rp")"
done
if [ -n "${SLUICE_BASELINE:-}" ]; then
  printf '\nbaseline (%s), same rounds\n\n' "$SLUICE_BASELINE"
  printf '| case | baseline ops/s | ratio to redis-benchmark | baseline p50 µs | ratio to redis-benchmark |\n'
  printf '|---|---|---|---|---|\n'
  for name in $cases; do
    bo=$(m $name.base.ops); ro=$(m $name.rb.ops); bp=$(m $name.base.p50); rp=$(m $name.rb.p50)
    printf '| %s | %.0f | %.2fx | %.1f | %.2fx |\n' "$name" "$bo" "$(ratio "$bo" "$ro")" "$bp" "$(ratio "$bp" "$rp")"
  done
fi
