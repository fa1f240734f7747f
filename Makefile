# feedback_flywheel — the two commands a new user needs:
#   make run    set up, generate the demo world, ingest it, run the batch cycle, print a summary
#   make test   set up with dev extras and run every check: pytest, dbt build, sqlfluff, ruff
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

.PHONY: run test setup dev pytest dbt-check lint benchmark benchmark-drift clean help

help:
	@echo "make run        set up and run the whole loop on the demo world (prints a summary)"
	@echo "make test       set up with dev extras and run pytest, dbt build, sqlfluff and ruff"
	@echo "make benchmark  ingest / full build / daily batch at 1M inferences (see benchmarks/README.md for 10M)"
	@echo "make benchmark-drift  the drift suite in SQL vs pandas + scipy at 1M + 1M rows"
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

test: dev
	$(MAKE) --no-print-directory pytest dbt-check lint

pytest: dev
	$(BIN)/pytest

# dbt build on a throwaway database: a small demo world, ingested, built in one batch.
dbt-check: dev
	rm -rf $(dir $(CI_DB)) && mkdir -p $(dir $(CI_DB))
	$(BIN)/flywheel demo-data --out $(dir $(CI_DB))demo --days 12 --inferences-per-day 300
	for table in model_deployments inference_log feedback_events preference_events; do \
		$(BIN)/flywheel ingest --db $(CI_DB) $$table $(dir $(CI_DB))demo/$$table > /dev/null; \
	done
	FLYWHEEL_DUCKDB=$(CI_DB) $(BIN)/dbt build --warn-error-options '{"error": ["NoNodesForSelectionCriteria"]}'
	rm -rf $(dir $(CI_DB))

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# sqlfluff renders models against an empty database, so is_incremental() is always false here
	rm -rf data/lint && mkdir -p data/lint
	FLYWHEEL_DUCKDB=$(CURDIR)/data/lint/lint.duckdb $(BIN)/sqlfluff lint models analyses tests/dbt
	rm -rf data/lint

benchmark: setup
	$(BIN)/python -m benchmarks.run

benchmark-drift: setup
	$(BIN)/python -m benchmarks.drift

clean:
	rm -rf $(VENV) data target logs dbt_packages .prefect .pytest_cache .ruff_cache
