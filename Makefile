# Every target creates its own virtualenv (.venv) and installs the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-rabbitmq lint format bench clean drill-hosts

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

test-rabbitmq: $(STAMP)  ## the end-to-end suites again, RabbitMQ carrying the messages (Redis still coordinates)
	TASKHUB_TEST_BROKER=rabbitmq $(PY) -m pytest tests/e2e tests/contrib -m e2e $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)  ## benchmarks and fault drills (not part of make test)
	$(PY) -m bench.run $(BENCH_ARGS)

drill-hosts: $(STAMP)  ## (root) network-namespace hosts: caps, priorities, scale-out, a cut link; writes bench/results/
	$(PY) -m bench.drill_hosts $(DRILL_ARGS)

clean:
	rm -rf $(VENV) var/*
