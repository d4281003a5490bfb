# The README's commands. Every target installs first (scripts/install.sh is idempotent).
VENV := .venv
PY := $(VENV)/bin/python
TESTBED := $(VENV)/bin/testbed
RUN ?=

.PHONY: install test unit lint integration bench bench-full readme-results plot doctor clean \
	validate-vagrant

install:
	bash scripts/install.sh

test: install validate-vagrant lint
	$(PY) -m pytest -q tests

unit: install lint
	$(PY) -m pytest -q tests/unit

# pyflakes, pycodestyle and import order; the packages' layers; the types of the model and the
# modes' interfaces (all three configured in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

integration: install
	$(PY) -m pytest -q tests/integration

# every mode this machine supports plus the bare underlay and the controls, default topology:
# one TCP stream and request/response (the headline), within ten minutes; writes
# results/<run>/ with machine facts, samples, CSV, summary and plots
bench: install
	$(TESTBED) bench

# the same with every test: several streams, UDP throughput and loss, ICMP too
bench-full: install
	$(TESTBED) bench --full

# the README's results table and picture from one run: make readme-results RUN=results/<run>
readme-results: install
	$(PY) -m bench.plots.readme $(RUN)

# re-plot a run (default: the newest), or compare two: make plot RUN="results/A results/B"
plot: install
	$(TESTBED) plot $(RUN)

doctor: install
	$(TESTBED) doctor

clean: install
	$(TESTBED) clean

# No VM can boot on CI; this checks that the Vagrantfile parses and is complete.
validate-vagrant: install
	vagrant validate --ignore-provider
