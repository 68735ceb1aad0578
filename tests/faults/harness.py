"""The fault suite's world: real Mosquitto, PostgreSQL and ``anxin`` processes, killed for real.

Members are ``anxin ingest`` processes sharing the uplinks (``ANXIN_MQTT_SHARED_GROUP``) on one
PostgreSQL database, each with its own client id; they can be killed (SIGKILL) and started
again under the same id. Counting reads the alerts table after the drain.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from anxin.database import open_database, upgrade
from devices.sql import normalise_url
from tests.faults.fleet import FleetReport, Press, SosFleet
from tests.support.service import ANXIN, anxin_env


@dataclass
class Member:
    name: str
    folder: Path
    env: Mapping[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    command: str = "ingest"

    @property
    def log(self) -> Path:
        return self.folder / f"anxin-{self.command}.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ANXIN_API_PORT']}"

    @property
    def health_url(self) -> str:
        return f"{self.api_url}/readyz"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [ANXIN, self.command], env=dict(self.env), cwd=self.folder, stdout=log, stderr=log
            )
        self.starts += 1

    def wait_ready(self, within_s: float = 30) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """kill -9: no goodbye to the broker or the database."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if f'"{name}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found


@dataclass
class Members:
    members: list[Member] = field(default_factory=list)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __getitem__(self, index: int) -> Member:
        return self.members[index]

    def drained(self) -> int:
        """Messages stored by takeovers of another member's session, over all members."""
        return sum(
            int(str(event.get("messages", 0)))
            for member in self.members
            for event in member.events("ingest.takeover_drained")
        )


def migrated(database_url: str) -> None:
    engine, _ = open_database(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@contextmanager
def running_members(
    folder: Path, broker_url: str, database_url: str, count: int = 3, **settings: str
) -> Iterator[Members]:
    members = Members()
    for n in range(1, count + 1):
        name = f"member-{n}"
        env = anxin_env(
            folder / name,
            ANXIN_MQTT_URL=broker_url,
            ANXIN_DATABASE_URL=database_url,
            ANXIN_MQTT_SHARED_GROUP="anxin",
            ANXIN_MQTT_CLIENT_ID=f"anxin-ingest-{n}",
            ANXIN_LOG_LEVEL="info",
            **settings,
        ).env
        members.members.append(Member(name=name, folder=folder / name, env=env))
    try:
        for member in members:
            member.start()
        for member in members:
            member.wait_ready()
        yield members
    finally:
        for member in members:
            member.stop()


def in_thread(
    fleet: SosFleet, plan: list[Press], rate_per_s: float, within_s: float
) -> tuple[threading.Thread, list[FleetReport]]:
    """Run the fleet in a thread: the thread, and a list that holds its report once done."""
    box: list[FleetReport] = []
    thread = threading.Thread(
        target=lambda: box.append(fleet.run(plan, rate_per_s=rate_per_s, within_s=within_s)),
        daemon=True,
    )
    thread.start()
    return thread, box


@dataclass(frozen=True, kw_only=True)
class SosCount:
    lost: int
    duplicated: int
    unexpected: int
    alerts: int


def sos_alerts(database_url: str) -> dict[str, list[int]]:
    """Each device's SOS alerts: their counts."""
    rows = _rows(database_url, "SELECT device_id, count FROM alerts WHERE type = 'sos'")
    alerts: dict[str, list[int]] = {}
    for device_id, number in rows:
        alerts.setdefault(device_id, []).append(int(number))
    return alerts


def count_sos(plan: list[Press], alerts: Mapping[str, list[int]]) -> SosCount:
    """Against the presses: one alert per device, counting its presses exactly."""
    expected = Counter(press.device for press in plan)
    lost = duplicated = unexpected = 0
    for device, presses_made in expected.items():
        counts = alerts.get(device, [])
        stored = sum(counts)
        lost += max(0, presses_made - stored)
        duplicated += max(0, stored - presses_made) + max(0, len(counts) - 1)
    unexpected = sum(sum(c) for d, c in alerts.items() if d not in expected)
    return SosCount(
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        alerts=sum(len(c) for c in alerts.values()),
    )


def drain(plan: list[Press], database_url: str, within_s: float, quiet_s: float = 1.5) -> SosCount:
    """Wait until every press is stored, or nothing changed for ``quiet_s`` after ``within_s``;
    then count."""
    deadline = time.monotonic() + within_s
    last: SosCount | None = None
    changed = time.monotonic()
    while True:
        count = count_sos(plan, sos_alerts(database_url))
        if count.lost == 0:
            # Everything is in: a moment more, for a late duplicate to show.
            time.sleep(quiet_s)
            return count_sos(plan, sos_alerts(database_url))
        if last is None or count != last:
            last, changed = count, time.monotonic()
        if time.monotonic() > deadline and time.monotonic() - changed > quiet_s:
            return count
        time.sleep(0.25)


def stored_at(database_url: str) -> dict[str, float]:
    """When each device's first SOS alert was stored (``created_at``, seconds since the epoch)."""
    sql = "SELECT device_id, min(created_at) FROM alerts WHERE type = 'sos' GROUP BY 1"
    rows = _rows(database_url, sql)
    return {device: at.timestamp() for device, at in rows}


def _rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()
