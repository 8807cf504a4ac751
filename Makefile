# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR := $(or $(SEQCAST_DATA_DIR),.seqcast)

.PHONY: install run train-defaults serve test lint ui bench clean

# The constraints file pins every package CI tested; pyproject.toml holds the allowed ranges.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	@# setuptools warns about editable installs in general; nothing for the user to act on
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train-defaults: install
	$(VENV)/bin/seqcast train --data sine_noise --name sine --variant lstm --units 8 --lookback 12 --epochs 30 --folds 4 --if-missing
	$(VENV)/bin/seqcast train-images --data digits --name digits --quiet --if-missing
	@# the page at / forecasts sine from the series store: the same 1000 values, hourly from 2024-01-01 (idempotent)
	$(PY) -c "import sys, pandas as pd; from pipelines.forecasting.data import sine_noise; v = sine_noise().values; \
	pd.DataFrame({'timestamp': pd.date_range('2024-01-01', periods=len(v), freq='h'), 'value': v}).to_csv(sys.argv[1], index=False)" \
	$(DATA_DIR)/sine.csv
	$(VENV)/bin/seqcast ingest sine --data $(DATA_DIR)/sine.csv

serve: install
	$(VENV)/bin/seqcast serve --host $(HOST) --port $(PORT)

run: train-defaults serve

# two processes, a test file each at a time (a file's fixtures stay in one process); TEST_WORKERS=0 runs in this one
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# ruff (lint + format) and mypy, configured in pyproject.toml
lint: install
	$(VENV)/bin/ruff check models pipelines service seqcast tests benchmarks
	$(VENV)/bin/ruff format --check models pipelines service seqcast tests benchmarks
	$(VENV)/bin/mypy

ui: install
	$(VENV)/bin/seqcast ui

bench: install
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,bench]"

clean:
	rm -rf $(VENV) .seqcast .pytest_cache
