# The whole developer interface: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install system-deps lint typecheck pytest bench faults format clean

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

# The fault suite at the issue's sizes (10 000 SOS, 60 s cut-offs): prints its table.
faults: $(STAMP) system-deps
	ANXIN_FAULTS=full $(BIN)/pytest -m faults -s tests/faults

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
