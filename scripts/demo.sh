#!/usr/bin/env bash
# `make demo`: the whole job on SQLite, no Docker. Starts the three model servers on loopback,
# plus version 2 of ml_original (trained_models/archive/), collects their predictions, prints the
# per-model, per-class report and the version-to-version comparison of ml_original, stops the
# servers. Run it again: nothing new is evaluated (models are known by fingerprint).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PORT=${DEMO_BASE_PORT:-8081}
export DATABASE_URL=${DATABASE_URL:-sqlite:///pokemon_tester.db}
LOGS=demo_logs

models=(ml_original ml_ditto ml_ditto_and_mimikyu archive/ml_original_v2)
# Every port free before anything starts: a taken one is named with the variable that moves them.
python -m devtools.ports DEMO_BASE_PORT $(seq "$BASE_PORT" $((BASE_PORT + ${#models[@]} - 1)))
mkdir -p "$LOGS"
pids=()
urls=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for i in "${!models[@]}"; do
  port=$((BASE_PORT + i))
  ml-server --model-dir "trained_models/${models[$i]}" --host 127.0.0.1 --port "$port" \
    >"$LOGS/$(basename "${models[$i]}").log" 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
done

echo "waiting for the model servers (${urls[*]}) ..."
for i in "${!urls[@]}"; do
  python -c "import sys; from devtools.health import wait_healthy, NotHealthy
try: wait_healthy(sys.argv[1], deadline_s=300, pid=int(sys.argv[2]))
except NotHealthy as e: sys.exit(f'error: {e}; see $LOGS/$(basename "${models[$i]}").log')" "${urls[$i]}" "${pids[$i]}"
done

before=$(data-collector models --json 2>/dev/null | python -c "import json,sys; print(sum(m['predictions'] for m in json.load(sys.stdin)))" 2>/dev/null || echo 0)
data-collector collect "${urls[@]}"
data-collector report
echo
echo "== ml_original, version 2 -> version 3: the regression gate =="
status=0
data-collector compare ml_original@2 ml_original@3 || status=$?
if [ "$status" -ge 2 ]; then exit "$status"; fi  # 1 is the gate's verdict (a regression), not a demo failure
after=$(data-collector models --json | python -c "import json,sys; print(sum(m['predictions'] for m in json.load(sys.stdin)))")
echo
if [ "$before" = "$after" ]; then
  echo "Nothing new was sent: every model was already evaluated (models are known by fingerprint)."
  echo "Predictions are in ${DATABASE_URL#sqlite:///}; 'make clean' or 'data-collector db destroy' starts over."
else
  echo "Stored $((after - before)) predictions in ${DATABASE_URL#sqlite:///}."
  echo "Run 'make demo' again: nothing new is evaluated, the models are known by fingerprint."
fi
echo
echo "Web view of these results (models, per-class plots, the misclassified images, compare, history):"
echo "  make view     then open http://localhost:${VIEW_PORT:-8090}/"
echo
echo "Next: the data-collector command is in .venv; in this folder, for example:"
echo "  .venv/bin/data-collector gate ml_original        # v3 against its previous version"
echo "  source .venv/bin/activate && data-collector --help"
