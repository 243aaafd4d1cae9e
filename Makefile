# Everything a fresh machine needs: python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format demo bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -n 2 -m "not bench and not soak" tests

demo: $(STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python -m pytest -m bench -s -p no:xdist --timeout=3600 tests/benchmarks

# SOAK_ROUNDS (default 50) and SOAK_SEED (default 1) choose the rounds; see docs/soak.md.
soak: $(STAMP)
	$(BIN)/python -m pytest -m soak -s -p no:xdist --timeout=14400 tests/soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo .bench
