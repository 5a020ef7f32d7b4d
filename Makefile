# Every target creates its own virtualenv (.venv) and installs the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the whole stack on the current settings (embedded default with no environment)
	$(PY) manage.py taskhub up

test: $(STAMP)  ## the full suite, fault drills included
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow fault drills
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# BENCH_ARGS="--quick" shrinks every count 10x; BENCH_FAULTS= leaves the fault drills out.
BENCH_FAULTS ?= --faults

bench: $(BENCH_STAMP)  ## benchmarks and fault drills (not part of make test)
	$(PY) -m bench.run $(BENCH_FAULTS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/*
