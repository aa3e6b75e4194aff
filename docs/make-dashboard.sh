#!/usr/bin/env bash
# Makes docs/grafana-dashboard.png: a storm (sluice mode) against a throwaway Redis, `sluice serve` exporting the
# fleet's state and each storm worker its own swift-metrics (`--worker-metrics-port-base`), a real Prometheus
# scraping all of them every second, then docs/render-dashboard.py evaluating the dashboard's queries against it.
# Needs Prometheus (Debian's `prometheus` package; only its binary is run here, on loopback, with its own config and
# a temporary storage directory), curl and Pillow (`pip install pillow`); build first (`swift build`).
#
#   docs/make-dashboard.sh                          # SCENARIO, DURATION (seconds per run), WORKERS, PYTHON
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis.sh
command -v prometheus >/dev/null || { echo "needs prometheus (apt-get install prometheus)" >&2; exit 1; }
redis_start
bin=.build/debug/sluice
python=${PYTHON:-python3}
workers=${WORKERS:-4}
out=$(mktemp -d)
cleanup() {
  stop_pids ${storm:-} ${serve:-} ${prom:-}
  redis_stop
  rm -rf "$out/tsdb"
}
trap cleanup EXIT

# Loopback ports below the ephemeral range (scripts/redis.sh says why): the workers' base keeps room for them all.
worker_base=$(_sluice_random_port 64)
prom_port=$(_redis_free_port)

"$bin" serve --metrics-port 0 --redis "$REDIS_URL" >"$out/serve.log" 2>&1 &
serve=$!
for _ in $(seq 1 100); do
  serve_url=$(sed -n 's/.*listening on http:\/\/\([^/]*\)\/metrics.*/\1/p' "$out/serve.log")
  [ -n "$serve_url" ] && break
  sleep 0.1
done
[ -n "$serve_url" ] || { echo "sluice serve did not start:" >&2; cat "$out/serve.log" >&2; exit 1; }

worker_targets=$(for i in $(seq 0 $((workers - 1))); do printf "'127.0.0.1:%d', " $((worker_base + i)); done)
cat >"$out/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sluice-serve
    static_configs: [{targets: ['$serve_url']}]
  - job_name: sluice-storm-workers
    static_configs: [{targets: [${worker_targets%, }]}]
EOF
prometheus --config.file="$out/prometheus.yml" --storage.tsdb.path="$out/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$out/prometheus.log" 2>&1 &
prom=$!
prom_url="http://127.0.0.1:$prom_port"
for _ in $(seq 1 100); do curl -sf "$prom_url/-/ready" >/dev/null && break; sleep 0.2; done
curl -sf "$prom_url/-/ready" >/dev/null || { echo "prometheus did not start:" >&2; cat "$out/prometheus.log" >&2; exit 1; }

start=$(date +%s)
"$bin" storm --redis "$REDIS_URL" --scenario "${SCENARIO:-hierarchy-collapse}" --mode sluice \
  --duration "${DURATION:-25}" --workers "$workers" --worker-metrics-port-base "$worker_base" \
  --report "$out/storm" >"$out/storm.log" 2>&1 &
storm=$!
wait "$storm" || { echo "the storm failed:" >&2; tail -20 "$out/storm.log" >&2; exit 1; }
storm=
sleep 3 # a last scrape of the fleet's state after the storm
end=$(date +%s)

"$python" docs/render-dashboard.py --prometheus "$prom_url" --start "$start" --end "$end" --step 1 \
  ${PARTITION:+--partition "$PARTITION"} docs/grafana-dashboard.json docs/grafana-dashboard.png
grep -v '^$' "$out/storm.log" | tail -4 >&2
echo "wrote docs/grafana-dashboard.png; storm log, Prometheus config and log in $out" >&2
