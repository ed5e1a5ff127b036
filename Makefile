# voxserve: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test check lint bench clean system

# Debian's espeak-ng: the many-language fallback engine (and the tests of the command kind).
SYSTEM_PACKAGES := espeak-ng

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

## Debian packages voxserve uses when present; installed when missing and apt-get can.
system:
	@command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES)) \
		|| echo "espeak-ng is not installed: voxserve speaks English, Mandarin and Japanese only"

## Install everything and serve the API with the embedded defaults on 127.0.0.1:8000.
run: $(STAMP) system
	$(BIN)/voxserve serve

## Install what the tests need, check style and types, run the whole suite.
test: $(TEST_STAMP) system
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

## The fast layer: lint, types and every test that starts no real process or model (under 90 s).
check: $(TEST_STAMP) system
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not integration"

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## Rerun the benchmarks; each prints a table (the overload comparison needs Debian's nginx).
bench: $(TEST_STAMP)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
