# feedback_flywheel — the two commands a new user needs:
#   make run    set up, generate the demo world, ingest it, run the batch cycle, print a summary
#   make test   set up with dev extras and run every check: pytest, dbt build, sqlfluff, ruff,
#               dbt-bouncer
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLYWHEEL_DUCKDB ?= $(CURDIR)/data/flywheel.duckdb
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DBT_PROFILES_DIR := $(CURDIR)
CI_DB := $(CURDIR)/data/ci/ci_build.duckdb

.PHONY: run test setup dev pytest dbt-check lint benchmark benchmark-drift benchmark-replay clean help browser

help:
	@echo "make run        set up and run the whole loop on the demo world (prints a summary)"
	@echo "make test       set up with dev extras and run pytest, dbt build, sqlfluff, ruff and dbt-bouncer"
	@echo "make benchmark  ingest / full build / daily batch at 1M inferences (see benchmarks/README.md for 10M)"
	@echo "make benchmark-drift  the drift suite in SQL vs pandas + scipy at 1M + 1M rows"
	@echo "make benchmark-replay the replay buffer: refresh and 10k prioritized draws from 1M, vs numpy"
	@echo "make clean      remove the venv, generated data, dbt target and Prefect home"

$(BIN)/flywheel: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(BIN)/flywheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/flywheel
dev: $(VENV)/.dev-installed

run: setup
	$(BIN)/flywheel demo

test: dev browser
	$(MAKE) --no-print-directory pytest dbt-check lint

# Two workers by default, a test file each at a time (module fixtures build once); PYTEST_WORKERS=0
# runs the suite in one process.
PYTEST_WORKERS ?= 2
pytest: dev browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The dashboard's browser test (tests/python/test_dashboard.py) drives Debian's chromium; install
# it when missing (CI runs as root on a fresh Debian 12). No chromium, no green test run.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	echo "installing Debian's chromium for the dashboard's browser test"; \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium \
		|| { echo "error: could not install chromium with apt-get (needed by the dashboard's browser test); install it and run make test again" >&2; exit 1; }; \
	test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is still missing after apt-get install chromium" >&2; exit 1; }

# dbt build on a throwaway database: a small demo world, ingested, built in one batch.
dbt-check: dev
	rm -rf $(dir $(CI_DB)) && mkdir -p $(dir $(CI_DB))
	$(BIN)/flywheel demo-data --out $(dir $(CI_DB))demo --days 12 --inferences-per-day 300
	for table in model_deployments inference_log feedback_events preference_events; do \
		$(BIN)/flywheel ingest --db $(CI_DB) $$table $(dir $(CI_DB))demo/$$table > /dev/null; \
	done
	FLYWHEEL_DUCKDB=$(CI_DB) $(BIN)/dbt build --warn-error-options '{"error": ["NoNodesForSelectionCriteria"]}'
	# the house rules that need the built warehouse: every column of every model documented
	FLYWHEEL_DUCKDB=$(CI_DB) $(BIN)/dbt docs generate --quiet
	$(BIN)/dbt-bouncer run --config-file dbt-bouncer.yml --only catalog_checks
	rm -rf $(dir $(CI_DB))

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	# sqlfluff renders models against an empty database, so is_incremental() is always false here
	rm -rf data/lint && mkdir -p data/lint
	FLYWHEEL_DUCKDB=$(CURDIR)/data/lint/lint.duckdb $(BIN)/sqlfluff lint models analyses tests/dbt
	# the house rules on the project's shape (names, layers, tests, docs, contracts, DAG hygiene),
	# checked by dbt-bouncer on the manifest of a parse (dbt-bouncer.yml)
	FLYWHEEL_DUCKDB=$(CURDIR)/data/lint/lint.duckdb $(BIN)/dbt parse --quiet
	$(BIN)/dbt-bouncer run --config-file dbt-bouncer.yml --only manifest_checks
	rm -rf data/lint

benchmark: setup
	$(BIN)/python -m benchmarks.run

benchmark-drift: setup
	$(BIN)/python -m benchmarks.drift

benchmark-replay: setup
	$(BIN)/python -m benchmarks.replay

clean:
	rm -rf $(VENV) data target logs dbt_packages .prefect .pytest_cache .ruff_cache
