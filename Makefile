# Everything a fresh machine with Python 3.11 and git needs: the venv, the project, its extras.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The lint rules are explicit because ruff's default set changes between versions.
LINT_SELECT := E,F,W,I,UP,B,SIM
LINT_IGNORE := E501,SIM117

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[test,llm]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/overseer demo

# Lint first: a broken contract or type fails in seconds, not after the suite.
test: lint
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Style (ruff), the architecture's import contracts (lint-imports) and types (mypy); the
# contracts and mypy's settings are in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache --select $(LINT_SELECT) --ignore $(LINT_IGNORE) src tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
