#!/usr/bin/env bash
# Makes docs/sluice-top.png and docs/sluice-top-detail.png from a live storm (sluice mode) against a
# throwaway Redis, and prints a sample of `sluice serve`'s /metrics. Needs tmux, curl and Pillow
# (`pip install pillow`) for docs/render-terminal.py; build first (`swift build`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis.sh
redis_start
bin=.build/debug/sluice
python=${PYTHON:-python3}
socket="sluice-docs-$$"
out=$(mktemp -d)
cleanup() {
  tmux -L "$socket" kill-server 2>/dev/null || true
  [ -n "${serve:-}" ] && kill "$serve" 2>/dev/null || true
  [ -n "${storm:-}" ] && kill "$storm" 2>/dev/null || true
  wait 2>/dev/null || true
  redis_stop
}
trap cleanup EXIT

"$bin" storm --redis "$REDIS_URL" --scenario "${SCENARIO:-hierarchy-collapse}" --mode sluice --duration "${DURATION:-40}" \
  --workers 4 --report "$out/storm" >"$out/storm.log" 2>&1 &
storm=$!
"$bin" serve --metrics-port 0 --redis "$REDIS_URL" >"$out/serve.log" 2>&1 &
serve=$!
sleep "${SETTLE:-15}"

tmux -L "$socket" -f /dev/null new-session -d -s top -x 160 -y 36 "$bin top --redis $REDIS_URL"
sleep 3
tmux -L "$socket" capture-pane -e -N -p -t top >"$out/overview.ans"
tmux -L "$socket" send-keys -t top Enter
sleep 2
tmux -L "$socket" capture-pane -e -N -p -t top >"$out/detail.ans"
tmux -L "$socket" send-keys -t top q

"$python" docs/render-terminal.py "$out/overview.ans" docs/sluice-top.png
"$python" docs/render-terminal.py "$out/detail.ans" docs/sluice-top-detail.png
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out/serve.log")
curl -s "$url" >"$out/metrics.txt"
grep -v '^#' "$out/metrics.txt" | head -60
echo "wrote docs/sluice-top.png, docs/sluice-top-detail.png; metrics in $out/metrics.txt" >&2
