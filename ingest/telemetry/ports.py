"""The seams of telemetry storage: where batches go, where the API reads points from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class TelemetryStoreError(Exception):
    """The telemetry store could not do what was asked."""


class StoreUnavailableError(TelemetryStoreError):
    """Down, too slow, or refusing writes for now (auth, no database, overloaded): the same
    batch may be written later."""


class BatchRefusedError(TelemetryStoreError):
    """The store read the batch and will never take (some of) it: retrying cannot help."""


class TelemetrySink(Protocol):
    def write(self, body: bytes, on_sent: Callable[[], object] | None = None) -> None:
        """Write one body of line protocol (precision ms); raise StoreUnavailableError or
        BatchRefusedError. ``on_sent`` is called once the body is out and the answer awaited,
        or at the start where the client cannot tell."""

    def ping(self) -> bool:
        """Is the store reachable now? Never raises."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TelemetryPoint:
    time: datetime
    metric: str
    value: float


class TelemetryReader(Protocol):
    def query(
        self, device_id: str, metric: str | None, start: datetime, end: datetime, limit: int
    ) -> list[TelemetryPoint]:
        """The device's points between ``start`` and ``end`` (inclusive), oldest first, the
        most recent ``limit`` of them; every metric when ``metric`` is None. Raises
        StoreUnavailableError."""
