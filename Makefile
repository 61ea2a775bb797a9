# Every target bootstraps .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime

.PHONY: help venv test demo view screenshots beyond-screenshots mlflow-screenshots models data lint bench bench-smoke gate-study reliability docker-smoke peer-venvs clean

help:
	@echo "make demo     - start the model servers, collect into SQLite, report, compare ml_original v2 and v3"
	@echo "make view     - serve the web view of the demo database on http://localhost:8090/"
	@echo "make test     - run the test suite (SQLite always, PostgreSQL at 127.0.0.1:5432 if up)"
	@echo "make beyond-screenshots - calibration, latency and robustness in the web view, for docs/beyond-answers.md"
	@echo "make mlflow-screenshots - the MLflow run pages of the demo's export, for docs/mlflow.md"
	@echo "make models   - retrain the three shipped models and the archived v2 (about 50 min on 2 idle cores, measured with 'time make models')"
	@echo "make data     - re-split ../shared/datasets into training, validation and test data"
	@echo "make bench    - benchmarks (writes bench/results.json)"
	@echo "make gate-study - the regression gate on 6 real retrains of the shipped ml_original (about 80 minutes on 2 cores)"
	@echo "make lint     - ruff"
	@echo "make reliability - fuzzing, hostile inputs, faults, 60 s load, dependency audit"
	@echo "make docker-smoke - build the images and run the compose stack for real"
	@echo "make peer-venvs - MLServer, KServe's server, MLflow's tracking server and checkov in .venvs/ (the tests create them when missing)"

# Two levels: RUNTIME (the model server on LiteRT and the collector: what `make demo` and `make
# view` need) and STAMP (everything: TensorFlow for training, the test toolchain).
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

venv: $(STAMP)

# COLUMNS: pytest cuts each failure's summary line at the terminal width; a wide one keeps it whole.
test: $(STAMP)
	$(BIN)/ruff check .
	COLUMNS=240 $(BIN)/python -m pytest -q

demo: $(RUNTIME)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo.sh

# The web view of what `make demo` stored (read-only; the deploy hook stays off without HOOK_TOKEN).
view: $(RUNTIME)
	@[ -n "$${DATABASE_URL:-}" ] || [ -f pokemon_tester.db ] || \
	  { echo "error: no pokemon_tester.db here: run make demo first (or set DATABASE_URL)" >&2; exit 2; }
	@$(BIN)/python -m devtools.ports VIEW_PORT "$${VIEW_PORT:-8090}"
	$(BIN)/data-collector --db "$${DATABASE_URL:-sqlite:///pokemon_tester.db}" serve --port "$${VIEW_PORT:-8090}"

# docs/screenshots/*.png from the demo database (after `make demo`), in Debian's chromium.
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

# docs/screenshots/{calibration,latency,robustness}.png: a gate of the shipped ml_original v2 -> v3 with
# every part on, through the gate service, in Debian's chromium.
beyond-screenshots: $(STAMP)
	$(BIN)/python scripts/beyond_screenshots.py

# docs/screenshots/mlflow-*.png: the demo's models and one comparison exported to a real MLflow
# server (its own venv in .venvs/mlflow), in Debian's chromium.
mlflow-screenshots: $(STAMP)
	$(BIN)/python scripts/mlflow_screenshots.py

models: $(STAMP)
	PYTHON=$(BIN)/python ./model_creation/train_all.sh

data: $(STAMP)
	$(BIN)/python -m model_creation.split_data

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run_all --smoke

gate-study: $(STAMP)
	$(BIN)/python -m bench.gate_study

clean:
	rm -rf $(VENV) .venvs .pytest_cache .ruff_cache pokemon_tester.db* demo_logs

# The long reliability run: the reliability suite at full length (60 s of load, schemathesis at
# twice make test's examples per operation), then a dependency audit.
reliability: $(STAMP)
	FUZZ_EXAMPLES=800 RELIABILITY_LOAD_SECONDS=60 \
	  $(BIN)/python -m pytest -q -s tests/reliability
	$(BIN)/python -m pip install -q pip-audit
	$(BIN)/pip-audit --progress-spinner off --skip-editable

docker-smoke:
	./scripts/docker_smoke.sh

# Third-party OIP peers whose dependencies clash with ours, each in its own venv.
peer-venvs: $(STAMP)
	$(BIN)/python tests/peers/venvs.py
