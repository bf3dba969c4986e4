# The README's commands. `make demo` and `make test` each install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo dev test test-fast lint format bench install system-packages clean

PORT ?= 8000

demo: $(STAMP)
	$(BIN)/chaffee demo --port $(PORT)

dev: $(STAMP)
	$(BIN)/chaffee dev

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check chaffee_assets chaffee_assets_tests bench
	$(BIN)/ruff format --check chaffee_assets chaffee_assets_tests bench

format: $(STAMP)
	$(BIN)/ruff format chaffee_assets chaffee_assets_tests bench
	$(BIN)/ruff check --fix chaffee_assets chaffee_assets_tests bench

# Each prints its figures beside a baseline measured in the same run (docs/retrieval.md, docs/web.md).
bench: $(STAMP)
	$(BIN)/python bench/bench_embed.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_run_cost.py
	$(BIN)/python bench/bench_load.py --segments 200000
	$(BIN)/python bench/bench_query.py
	$(BIN)/python bench/eval_filtered_scale.py
	$(BIN)/python bench/eval_filtered_scale.py --mode text
	$(BIN)/python bench/eval_conditions.py run --only dev
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_serve.py

install: $(STAMP)

# Re-install when the dependency list changes.
$(STAMP): pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
