"""The fault suite's shared results table: every fault ends with one row of counts.

A fault test counts after a full drain, then calls ``record``. The row is printed at once (with
``-s``) and again, with every other row of the run, in pytest's terminal summary
(tests/conftest.py, which also gathers the rows of pytest-xdist's workers).
``ANXIN_FAULTS=full`` (``make faults``) runs the issue's sizes; by default the bounded sizes
run, inside ``make test``. ``scaled(bounded, full)`` picks one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T", int, float)

FULL = os.environ.get("ANXIN_FAULTS", "").lower() == "full"
FORM = "full" if FULL else "bounded"


def scaled(bounded: T, full: T) -> T:
    """The bounded figure in `make test`, the issue's figure under `make faults`."""
    return full if FULL else bounded


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultResult:
    """What one fault did, counted after a full drain."""

    fault: str  # "1 kill -9 of 1 of 3 members, not restarted"
    sent: int  # the messages (SOS presses, deadlines …) the fault was run against
    lost: int  # sent but never stored
    duplicated: int  # stored more than once (two alerts, a count too high, an escalation twice)
    unexpected: int  # stored but never sent (a false offline alert, an alert of nobody's)
    recovered: int  # came through the recovery path (a takeover's drain, a device's resend …)
    seconds: float  # from the fault to the full drain
    note: str = ""  # the fault's own figure: "p99 0.8 s", "new leader in 3.2 s"
    form: str = FORM

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0


HEADER = "| fault | form | sent | lost | duplicated | unexpected | recovered | seconds | note |"
RULE = "|---|---|---:|---:|---:|---:|---:|---:|---|"
RESULTS: list[FaultResult] = []


def row(result: FaultResult) -> str:
    return (
        f"| {result.fault} | {result.form} | {result.sent} | {result.lost} | "
        f"{result.duplicated} | {result.unexpected} | {result.recovered} | "
        f"{result.seconds:.1f} | {result.note} |"
    )


def record(result: FaultResult) -> None:
    """Keep the row for the run's table, and print it now."""
    RESULTS.append(result)
    print(f"\n{HEADER}\n{RULE}\n{row(result)}")


def table(rows: list[str]) -> str:
    return "\n".join([HEADER, RULE, *rows])
