# Two commands on a fresh machine with Python ≥ 3.11 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-long test-fast lint fix bench faults fuzz install clean help browser services screenshots

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

# Re-install whenever pyproject.toml changes (uv takes ~2 s; pip is the fallback).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]' \
		|| $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create the virtualenv and install everything

demo: $(STAMP) $(if $(findstring postgresql,$(DEMO_ARGS))$(findstring replicas,$(DEMO_ARGS)),services)  ## run central, three borough stations and a camera simulator locally
	$(BIN)/fleet demo $(DEMO_ARGS)

# The browser tests drive Debian's Chromium through Playwright (never Playwright's own download).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:  ## install Debian's Chromium for the browser tests when it is missing
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		--no-install-recommends chromium >/dev/null; }

# Central's tests run on SQLite and on PostgreSQL, which they start themselves (as an
# unprivileged user: initdb refuses root); the replica tests put Debian's HAProxy in front.
PG_BIN = $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/postgres)))
services:  ## install Debian's postgresql and haproxy for the tests when they are missing
	@test -n "$(PG_BIN)" && command -v haproxy >/dev/null || { echo "installing Debian's postgresql and haproxy for the tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		--no-install-recommends postgresql haproxy >/dev/null; }

# The tests keep compiled modules even where the environment sets PYTHONDONTWRITEBYTECODE: the
# suite starts hundreds of Python processes (commands, stations, centrals, each pytest worker),
# and each compiled the whole stack again (~0.5 s a process; pytest's assertion rewriting
# ~8 s a worker).
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

# The tests' folders (pytest's tmp_path) in memory where the machine has room for them: each
# test's SQLite commits, fsyncs and small files then cost no disk wait, which made a loaded
# disk half of the quick lane's time. One folder per run, removed after it (pytest would keep
# it until the next run); elsewhere pytest's own under /tmp.
SHM_FREE_KB := $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $$4}')
TEST_TMP := $(if $(shell test "$(SHM_FREE_KB)" -gt 8000000 2>/dev/null && echo yes),/dev/shm/fleet-tests-$(shell echo $$PPID))
IN_TEST_TMP = $(if $(TEST_TMP),--basetemp=$(TEST_TMP)) $(PYTEST_ARGS); status=$$?; \
	$(if $(TEST_TMP),rm -rf $(TEST_TMP);) exit $$status

# Three workers on two cores: a third of the suite's time is its tests waiting on the processes
# they start (centrals, stations, PostgreSQL, Chromium), time a third worker fills.
test: $(STAMP) browser services lint  ## lint, then run the test suite CI runs (central's on SQLite and PostgreSQL; the runs of minutes are test-long)
	$(PYTEST) -n 3 -m "not long" $(IN_TEST_TMP)

test-long: $(STAMP) browser services  ## the runs of minutes marked long (whole simulated forces, PostgreSQL and S3 twins and extra seeds of long runs): ~10 minutes
	$(PYTEST) -n 2 -m long $(IN_TEST_TMP)

test-fast: $(STAMP) lint  ## lint, then the quick lane (SQLite only; no real processes, browser, fuzzing or long property runs; under 2 minutes)
	FLEET_TEST_DATABASES=sqlite $(PYTEST) -n 2 -q -m "not slow" $(IN_TEST_TMP)

# Lint: ruff (lint and format), mypy (strict on the kernel, checked everywhere; its cache in
# .mypy_cache/ makes a second run take ~1 s) and the layer contracts (import-linter).
lint: $(STAMP)  ## ruff, ruff format, mypy and the layer contracts
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

fix: $(STAMP)  ## apply ruff's safe fixes and ruff format to the whole tree (review the diff, then make lint)
	$(BIN)/ruff check --fix-only .
	$(BIN)/ruff format .

SEEDS ?= 200
CLUSTER_SEEDS ?= 20
faults: $(STAMP) browser services  ## the fault suite over many seeds (SEEDS=200, CLUSTER_SEEDS=20); tables in bench/out/faults*.md
	@mkdir -p bench/out && rm -f bench/out/faults.jsonl bench/out/faults-cluster.jsonl
	FAULTS_RESULTS=$(CURDIR)/bench/out/faults.jsonl $(PYTEST) tests/faults/test_scenarios.py -n 2 \
		-q --fault-seeds $(SEEDS) -k scenario $(PYTEST_ARGS); status=$$?; \
		$(BIN)/python -m tests.faults.report bench/out/faults.jsonl $(SEEDS) || status=1; \
		FAULTS_RESULTS=$(CURDIR)/bench/out/faults-cluster.jsonl $(PYTEST) \
		tests/faults/test_cluster_scenarios.py -n 2 -q --cluster-seeds $(CLUSTER_SEEDS) -k scenario $(PYTEST_ARGS) \
		|| status=1; \
		$(BIN)/python -m tests.faults.report bench/out/faults-cluster.jsonl $(CLUSTER_SEEDS) || status=1; exit $$status

# The README's pictures come from a force-sized central (20,000 cameras, five weeks, built with
# `fleet simulate`'s pipeline), kept in .screenshots-state/ and reused: FRESH=1 builds it again.
screenshots: $(STAMP) browser  ## save the dashboard's pages to docs/screenshots/ from a force-sized central (FRESH=1 rebuilds it)
	$(BIN)/python -m simulation.screenshots $(if $(FRESH),--fresh)

# The suite runs the same fuzz bounded (5 examples an operation); this is the long mode.
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)  ## schemathesis against central's API, FUZZ_EXAMPLES=500 per operation plus the coverage phase
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTEST) tests/central/core/test_api_fuzz.py -n 2 -q --timeout=0 \
		-p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)  ## run the benchmarks; results go to bench/out/ and are quoted in BENCHMARKS.md
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:  ## remove the virtualenv and demo data
	rm -rf $(VENV) demo-data bench/out
