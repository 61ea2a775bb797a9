#!/usr/bin/env bash
# Retrain the three shipped models (called by `make models`). About 18 minutes on 2 idle CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BASE="bulbasaur charmander mewtwo pikachu squirtle"
$PY -m model_creation.train --labels $BASE --out trained_models/ml_original "$@"
$PY -m model_creation.train --labels $BASE ditto --out trained_models/ml_ditto "$@"
$PY -m model_creation.train --labels $BASE ditto mimikyu --out trained_models/ml_ditto_and_mimikyu "$@"
