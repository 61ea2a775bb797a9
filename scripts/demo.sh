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
  for _ in $(seq 1 240); do
    if curl -fsS "${urls[$i]}/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "error: ${models[$i]} server exited; see $LOGS/${models[$i]}.log" >&2; exit 1
    fi
    sleep 0.5
  done
  curl -fsS "${urls[$i]}/health" >/dev/null || { echo "error: ${urls[$i]} not healthy after 120 s" >&2; exit 1; }
done

data-collector collect "${urls[@]}"
data-collector report
echo
echo "Predictions are in ${DATABASE_URL#sqlite:///}; run 'make demo' again: nothing new is evaluated."
