# The whole developer interface: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install system-deps lint typecheck pytest bench faults soak soak-watch soak-dc09 soak-members format clean fuzz-watch

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

# Two workers (pytest-xdist): most tests wait on real services, so two share the 2 cores
# well (11 min against 22 serially here). PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
pytest: $(STAMP) system-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# Measurements, not pass/fail checks: prints figures.
bench: $(STAMP) system-deps
	$(BIN)/pytest -m bench -s tests/bench

# The fault suite at the issue's sizes (10 000 SOS, 60 s cut-offs): prints its table.
faults: $(STAMP) system-deps
	ANXIN_FAULTS=full $(BIN)/pytest -m faults -s tests/faults

# `anxin serve` under a steady load for an hour (tests/soak/run.py): RSS, inbox depth and
# latency each minute, every SOS an alert, every heartbeat a point. Shorter or lighter:
# SOAK_MINUTES=10 SOAK_RATE=500 SOAK_DEVICES=500 SOAK_SOS_INTERVAL_S=5, or SOAK_ARGS="--help".
soak: $(STAMP) system-deps
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

# The same soak for the other roles (SOAK_TARGET=watch|dc09|members, or --target): the 4G
# watch gateway with watches over TCP, the DC-09 receiver with hubs, `anxin ingest` x 3 on
# PostgreSQL. Same variables; e.g. SOAK_MINUTES=20 SOAK_RATE=500 make soak-watch.
soak-watch soak-dc09 soak-members: soak-%: $(STAMP) system-deps
	$(BIN)/python -m tests.soak --target $* $(SOAK_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The watch codec's fuzzing at full size (10^5 generated frames; minutes): the closing figure.
fuzz-watch: $(STAMP)
	WATCH_FUZZ_EXAMPLES=100000 $(BIN)/pytest tests/unit/test_watch_fuzz.py -q -s -p no:randomly -k "any_frame_parses or report"
