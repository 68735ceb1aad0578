"""A Mosquitto that a fault can stop (SIGTERM) or kill (SIGKILL) and start again on its port,
with persistence in its folder, as deploy/mosquitto.conf sets it up."""

from __future__ import annotations

import getpass
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from simulators.bench_broker import free_port, mosquitto_binary
from tests.support.ports import wait_for_port

# What deploy/mosquitto.conf ships, but for the listener, the accounts and the folder.
PERSISTENT = (
    "allow_anonymous true",
    "persistence true",
    "autosave_on_changes true",
    "autosave_interval 1000",
    "max_queued_messages 1000000",
    "max_inflight_messages 2000",
)


@dataclass
class Broker:
    folder: Path
    settings: Sequence[str] = PERSISTENT
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "mosquitto.log"

    def start(self) -> None:
        config = self.folder / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    f"user {getpass.getuser()}",
                    "set_tcp_nodelay true",
                    f"persistence_location {self.folder}/",
                    *self.settings,
                    f"log_dest file {self.log}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def end(self, how: signal.Signals) -> None:
        """SIGTERM: a clean stop (it saves its state); SIGKILL: whatever was not saved is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_broker(folder: Path, settings: Sequence[str] = PERSISTENT) -> Iterator[Broker]:
    folder.mkdir(parents=True, exist_ok=True)
    broker = Broker(folder=folder, settings=settings)
    broker.start()
    try:
        yield broker
    finally:
        broker.end(signal.SIGTERM)
