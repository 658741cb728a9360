# Two commands on a fresh machine with Python ≥ 3.11 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench faults install clean help

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

demo: $(STAMP)  ## run central, three borough stations and a camera simulator locally
	$(BIN)/fleet demo $(DEMO_ARGS)

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)  ## run the benchmarks; results go to bench/out/ and are quoted in BENCHMARKS.md
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:  ## remove the virtualenv and demo data
	rm -rf $(VENV) demo-data bench/out
