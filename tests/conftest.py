from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.results import RESULTS, row, table
from tests.support.mosquitto import Mosquitto, running_mosquitto

# The fault suite's rows, as pytest-xdist's workers hand them back (`make test` runs `-n 2`).
# Here, not in tests/faults/conftest.py: the controller collects nothing, so it loads only
# this conftest.
WORKER_FAULT_ROWS: list[str] = []


class _FaultRowsOfWorkers:
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        WORKER_FAULT_ROWS.extend(getattr(node, "workeroutput", {}).get("fault_rows", []))


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_FaultRowsOfWorkers(), "anxin-fault-rows")


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a worker: the controller prints the table
        workeroutput["fault_rows"] = [row(result) for result in RESULTS]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = [row(result) for result in RESULTS] + WORKER_FAULT_ROWS
    if rows:
        terminalreporter.section("fault suite")
        terminalreporter.write_line(table(rows))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    with running_mosquitto(folder) as broker:
        yield broker
