#!/usr/bin/env bash
# Retrain the three shipped models and the archived ml_original v2 (called by `make models`). About
# 50 minutes on 2 idle CPU cores: each model is three networks (seeds 42, 43, 44) whose
# probabilities are averaged; v2 is one network (seed 42).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BASE="bulbasaur charmander mewtwo pikachu squirtle"
# Version 3: three networks averaged, chosen on the validation split (model_creation/validation/,
# not used for training) with `python -m model_creation.ensemble_validation`. Version 2 of
# ml_original (one network) is kept in trained_models/archive/ for the comparison of `make demo`.
VERSION=3
MEMBERS=3
$PY -m model_creation.train --labels $BASE --version $VERSION --members $MEMBERS --out trained_models/ml_original "$@"
$PY -m model_creation.train --labels $BASE ditto --version $VERSION --members $MEMBERS --out trained_models/ml_ditto "$@"
$PY -m model_creation.train --labels $BASE ditto mimikyu --version $VERSION --members $MEMBERS \
  --out trained_models/ml_ditto_and_mimikyu "$@"
$PY -m model_creation.train --labels $BASE --version 2 --name ml_original \
  --out trained_models/archive/ml_original_v2 "$@"
