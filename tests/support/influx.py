"""Real time-series servers for the tests: Debian's ``influxd`` (InfluxDB 1.6, the v1 API) and
``victoria-metrics`` (which serves InfluxDB's ``/api/v2/write``), each on free loopback ports in
a temporary folder, stopped afterwards. ``influxd`` can be stopped and started again on the same
port and data, for the outage tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from simulators.bench_influx import INFLUXD, influxd_config
from tests.support.ports import free_port
from tests.support.service import wait_until

VICTORIA_METRICS = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


@dataclass
class InfluxServer:
    """One influxd: ``stop()`` and ``start()`` keep its port and its data."""

    folder: Path
    port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.folder / "influxdb.conf"
        config.write_text(influxd_config(self.folder, self.port, self.rpc_port))
        log = (self.folder / "influxd.log").open("ab")
        self.process = subprocess.Popen([INFLUXD, "-config", str(config)], stdout=log, stderr=log)
        log.close()
        wait_until(self._answers, within_s=30)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def query(self, database: str, influxql: str) -> list[dict[str, object]]:
        """The series of an InfluxQL statement, times in epoch milliseconds."""
        response = httpx.get(
            f"{self.url}/query", params={"db": database, "q": influxql, "epoch": "ms"}
        )
        response.raise_for_status()
        result = response.json()["results"][0]
        assert "error" not in result, result["error"]
        series: list[dict[str, object]] = result.get("series", [])
        return series

    def create_database(self, name: str) -> None:
        response = httpx.post(f"{self.url}/query", data={"q": f'CREATE DATABASE "{name}"'})
        response.raise_for_status()

    def _answers(self) -> bool | None:
        if self.process is not None and self.process.poll() is not None:
            log = (self.folder / "influxd.log").read_text(errors="replace")
            raise RuntimeError(f"influxd exited with {self.process.returncode}:\n{log}")
        try:
            return httpx.get(f"{self.url}/ping", timeout=1).status_code == 204 or None
        except httpx.TransportError:
            return None


@contextmanager
def running_influxd(folder: Path) -> Iterator[InfluxServer]:
    folder.mkdir(parents=True, exist_ok=True)
    server = InfluxServer(folder=folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class VictoriaMetrics:
    """One victoria-metrics: ``stop()`` and ``start()`` keep its port and its data."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.folder / "victoria-metrics.log").open("ab")
        self.process = subprocess.Popen(
            [
                VICTORIA_METRICS,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.folder / 'data'}",
                "-loggerLevel=WARN",
                # Rows are searchable at once, not after the default few seconds.
                "-search.latencyOffset=0s",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_until(self._answers, within_s=30)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def export(self, match: str) -> list[dict[str, object]]:
        """Every series matching ``match`` with its values (JSON lines of /api/v1/export)."""
        httpx.get(f"{self.url}/internal/force_flush").raise_for_status()
        response = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match})
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line]

    def _answers(self) -> bool | None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"victoria-metrics exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200 or None
        except httpx.TransportError:
            return None


@contextmanager
def running_victoria_metrics(folder: Path) -> Iterator[VictoriaMetrics]:
    folder.mkdir(parents=True, exist_ok=True)
    server = VictoriaMetrics(folder=folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
