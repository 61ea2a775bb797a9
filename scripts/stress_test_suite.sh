#!/usr/bin/env bash
# `make test` RUNS times in a row (default 3) while BURNERS CPU-bound processes (default 2) run
# beside it, as on a shared CI machine. Prints each run's result and wall time; exits 1 if any
# run failed. The venv is installed first, outside the timed runs.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
BURNERS=${BURNERS:-2}
LOGS=$(mktemp -d -t stress-test-suite.XXXXXX)
burners=()
cleanup() { for p in "${burners[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

make venv >"$LOGS/install.log" 2>&1 || { tail -n 20 "$LOGS/install.log"; exit 1; }
for _ in $(seq "$BURNERS"); do
  python3 -c "while True: pass" &
  burners+=($!)
done
echo "$BURNERS CPU-bound processes running beside the suite on $(nproc) cores; logs in $LOGS"

failed=0
for i in $(seq "$RUNS"); do
  start=$(date +%s)
  if make test >"$LOGS/run-$i.log" 2>&1; then result=passed; else result=FAILED; failed=1; fi
  secs=$(($(date +%s) - start))
  summary=$(grep -E "[0-9]+ (passed|failed)" "$LOGS/run-$i.log" | tail -n1 | tr -d '=' | sed 's/^ *//')
  printf 'run %d: %s in %dm%02ds (%s)\n' "$i" "$result" $((secs / 60)) $((secs % 60)) "$summary"
done
exit "$failed"
