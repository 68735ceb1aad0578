# The whole developer interface: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install system-deps lint typecheck pytest bench soak format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/anxin demo

test: lint typecheck pytest

system-deps:
	bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest

# Measurements, not pass/fail checks: prints figures.
bench: $(STAMP) system-deps
	$(BIN)/pytest -m bench -s tests/bench

# `anxin serve` under a steady load for an hour (tests/soak/run.py): RSS, inbox depth and
# latency each minute, every SOS an alert, every heartbeat a point. Shorter or lighter:
# SOAK_MINUTES=10 SOAK_RATE=500 SOAK_DEVICES=500 SOAK_SOS_INTERVAL_S=5, or SOAK_ARGS="--help".
soak: $(STAMP) system-deps
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
