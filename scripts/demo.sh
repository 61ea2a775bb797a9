#!/usr/bin/env bash
# `make demo`: the whole job on SQLite, no Docker. Starts the three model servers on loopback,
# collects their predictions, prints the per-model, per-class report, stops the servers.
# Run it again: nothing new is evaluated (models are known by fingerprint).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PORT=${DEMO_BASE_PORT:-8081}
export DATABASE_URL=${DATABASE_URL:-sqlite:///pokemon_tester.db}
LOGS=demo_logs
mkdir -p "$LOGS"

models=(ml_original ml_ditto ml_ditto_and_mimikyu)
pids=()
urls=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for i in "${!models[@]}"; do
  port=$((BASE_PORT + i))
  ml-server --model-dir "trained_models/${models[$i]}" --host 127.0.0.1 --port "$port" \
    >"$LOGS/${models[$i]}.log" 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
done

echo "waiting for the model servers (${urls[*]}) ..."
for i in "${!urls[@]}"; do
  python -c "import sys; from collector.health import wait_healthy, NotHealthy
try: wait_healthy(sys.argv[1], deadline_s=300)
except NotHealthy as e: sys.exit(f'error: {e}; see $LOGS/${models[$i]}.log')" "${urls[$i]}"
done

before=$(data-collector models --json 2>/dev/null | python -c "import json,sys; print(sum(m['predictions'] for m in json.load(sys.stdin)))" 2>/dev/null || echo 0)
data-collector collect "${urls[@]}"
data-collector report
after=$(data-collector models --json | python -c "import json,sys; print(sum(m['predictions'] for m in json.load(sys.stdin)))")
echo
if [ "$before" = "$after" ]; then
  echo "Nothing new was sent: every model was already evaluated (models are known by fingerprint)."
  echo "Predictions are in ${DATABASE_URL#sqlite:///}; 'make clean' or 'data-collector db destroy' starts over."
else
  echo "Stored $((after - before)) predictions in ${DATABASE_URL#sqlite:///}."
  echo "Run 'make demo' again: nothing new is evaluated, the models are known by fingerprint."
fi
