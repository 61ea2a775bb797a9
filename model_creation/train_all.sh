#!/usr/bin/env bash
# Retrain the three shipped models (called by `make models`). About 18 minutes on 2 idle CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BASE="bulbasaur charmander mewtwo pikachu squirtle"
# Version 2: trained without the validation split (model_creation/validation/). Version 1 of
# ml_original is kept in trained_models/archive/ for the version-to-version comparison of `make demo`.
VERSION=2
$PY -m model_creation.train --labels $BASE --version $VERSION --out trained_models/ml_original "$@"
$PY -m model_creation.train --labels $BASE ditto --version $VERSION --out trained_models/ml_ditto "$@"
$PY -m model_creation.train --labels $BASE ditto mimikyu --version $VERSION --out trained_models/ml_ditto_and_mimikyu "$@"
