# Every target creates its own virtualenv (.venv) and installs the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-fast test-rabbitmq lint format bench clean lock browser drill-hosts

# The project's requirements (requirements/*.txt: the django-taskhub package editable with its
# extras, and what only the project's apps and tests use), at the exact versions of
# requirements/lock.txt, so that a fresh machine installs what was tested.
# PIP_CONSTRAINT (not -c) so that the build of the editable package uses the locked setuptools too.
LOCK := requirements/lock.txt
PIP_LOCKED := PIP_CONSTRAINT=$(CURDIR)/$(LOCK) $(PY) -m pip install -q
$(STAMP): pyproject.toml requirements/project.txt requirements/dev.txt $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) --upgrade pip setuptools
	$(PIP_LOCKED) -r requirements/dev.txt
	touch $(STAMP)

# Test-only tools from npm (package.json): anvil, the local EVM node of the blockchain tests.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

run: $(STAMP)  ## the whole stack on the current settings (embedded default with no environment)
	$(PY) manage.py taskhub up

# The operator console's browser test drives Debian's Chromium (never a downloaded browser).
# Installed here when missing and we may (root); without it the test skips locally, fails in CI.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			|| echo "could not install chromium: the browser test will not run"; \
	fi

test: $(STAMP) $(NODE_STAMP) browser  ## the full suite, fault drills included, and the RabbitMQ pass (TEST_JOBS packages at once)
	./scripts/run-tests --rabbitmq-pass $(PYTEST_ARGS)

test-unit: $(STAMP)  ## the engine's in-process unit tests: no npm, browser or worker process (< 1 min)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-fast: $(STAMP) $(NODE_STAMP) browser  ## skip the slow fault drills
	./scripts/run-tests -m "not slow" $(PYTEST_ARGS)

test-rabbitmq: $(STAMP)  ## the end-to-end suites again, RabbitMQ carrying the messages (Redis still coordinates)
	TASKHUB_TEST_BROKER=rabbitmq $(PY) -m pytest tests/e2e tests/contrib -m e2e $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff (lint and format) and the import contracts of .importlinter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(PIP_LOCKED) -r requirements/bench.txt
	touch $(BENCH_STAMP)

# BENCH_ARGS="--quick" shrinks every count 10x; BENCH_FAULTS= leaves the fault drills out.
BENCH_FAULTS ?= --faults

bench: $(BENCH_STAMP)  ## benchmarks and fault drills (not part of make test)
	$(PY) -m bench.run $(BENCH_FAULTS) $(BENCH_ARGS)

drill-hosts: $(STAMP)  ## (root) network-namespace hosts: caps, priorities, scale-out, a cut link, schedulers on two hosts; writes bench/results/
	$(PY) -m bench.drill_hosts $(DRILL_ARGS)

clean:
	rm -rf $(VENV) var/*

# After changing requirements/*.txt: install (make test) or `make bench`, run the tests, then pin
# what was tested. Every package of the venv but the editable project itself, pip and setuptools
# included.
lock: $(STAMP)
	{ echo "# Exact versions of a tested venv: make lock (Python $$($(PY) -c 'import platform; print(platform.python_version())'), $$(uname -m))."; \
	  echo "# Constraints for requirements/*.txt (pip install -c); not a list of what to install."; \
	  $(PY) -m pip freeze --all --exclude-editable | LC_ALL=C sort -f; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(STAMP)

# --- payments / kyc: the local chain and the Safe contracts (npm packages, installed into the project) ---
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: chain-tools devchain sandbox safe-artifacts

chain-tools: $(NODE_STAMP)  ## anvil and the Safe 1.4.1 artifacts into node_modules/

devchain: $(STAMP) $(NODE_STAMP)  ## a local chain with a 2-of-3 Safe deployed; prints the settings to use
	$(PY) manage.py taskhub devchain

sandbox: $(STAMP)  ## the provider sandbox (DTR, onramp, KYC, Safe Transaction Service) on its own
	$(PY) manage.py taskhub sandbox

safe-artifacts: $(STAMP) $(NODE_STAMP)  ## refresh the committed Safe bytecode from the npm package
	$(PY) -m payments.chain.contracts.extract node_modules/@safe-global/safe-contracts
