"""An influxd of its own for ``anxin bench same-work`` (and the tests): Debian's InfluxDB 1.6, on
free loopback ports, its data in a folder of the run, stopped afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from simulators.bench_broker import BrokerError, die_with_parent, free_port, stop_process

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def influxd_config(folder: Path, http_port: int, rpc_port: int) -> str:
    # Everything that listens is on loopback and a port of ours; nothing phones home.
    return f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{folder / "meta"}"

[data]
  dir = "{folder / "data"}"
  wal-dir = "{folder / "wal"}"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""


@dataclass(frozen=True, kw_only=True)
class BenchInflux:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_database(self, name: str) -> None:
        httpx.post(f"{self.url}/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()

    def count(self, database: str, influxql: str) -> int:
        """The first value of a ``SELECT count(…)``; 0 when there is nothing (yet)."""
        response = httpx.get(f"{self.url}/query", params={"db": database, "q": influxql})
        response.raise_for_status()
        series = response.json()["results"][0].get("series") or [{"values": [[0, 0]]}]
        return int(series[0]["values"][0][1])


@contextlib.contextmanager
def running_influxd(folder: Path) -> Iterator[BenchInflux]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "influxdb.conf"
    config.write_text(influxd_config(folder, port, free_port()))
    with (folder / "influxd.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
            [INFLUXD, "-config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # our Ctrl-C is for us
            preexec_fn=die_with_parent(),
        )
    try:
        server = BenchInflux(port=port, pid=process.pid)
        deadline = time.monotonic() + 30
        while not _answers(server):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"influxd did not start ({folder / 'influxd.log'})")
            time.sleep(0.05)
        yield server
    finally:
        stop_process(process, within_s=15)


def _answers(server: BenchInflux) -> bool:
    try:
        return httpx.get(f"{server.url}/ping", timeout=1).status_code == 204
    except httpx.TransportError:
        return False
