# Everything a fresh machine with Python 3.11 and git needs: the venv, the project, its extras.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# What is installed, one stamp each: the demo needs the project and pytest (it runs the
# scratch repository's tests); the tests and `make lint` need the test and model extras too.
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
# The lint rules are explicit because ruff's default set changes between versions.
LINT_SELECT := E,F,W,I,UP,B,SIM
LINT_IGNORE := E501,SIM117

.PHONY: demo test lint bench clean

$(BIN)/python:
	@echo "make: creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: updating pip in $(VENV)"
	$(PIP) install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing overseer and what its demo needs into $(VENV) (the first time takes a minute or two)"
	$(PIP) install --progress-bar off -e '.[demo]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing overseer with its test and model extras into $(VENV) (the first time takes a few minutes)"
	$(PIP) install --progress-bar off -e '.[test,llm]'
	touch $(STAMP)

demo: $(DEMO_STAMP)
	@echo "make: running the demo (overseer demo --keep keeps its scratch directory)"
	$(BIN)/overseer demo

# Lint first: a broken contract or type fails in seconds, not after the suite. Three workers on
# two cores: the tests wait on git, pytest and daemon subprocesses about a third of the time
# (measured quiet: -n 2 6 min 08 s, -n 3 4 min 01 s, -n 4 4 min 03 s). The slowest files run
# first (tests/conftest.py); at most 4 tests wait in a worker's queue, so none is left with a
# long queue while the others have nothing to do (xdist handed out up to a sixth of what was
# left at once: one worker ran on alone for 70 s).
test: lint
	$(BIN)/python -m pytest -q -n 3 --maxschedchunk 4

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Style (ruff's rules and its formatting), the architecture's import contracts (lint-imports)
# and types (mypy); the contracts and mypy's settings are in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache --select $(LINT_SELECT) --ignore $(LINT_IGNORE) src tests bench
	$(BIN)/ruff format --no-cache --check src tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
