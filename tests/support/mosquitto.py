"""A real Mosquitto broker on a free port, in a temporary folder, stopped afterwards."""

from __future__ import annotations

import getpass
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulators.bench_broker import free_port, mosquitto_binary
from tests.support.ports import wait_for_port

ANONYMOUS = ("allow_anonymous true",)


@dataclass(frozen=True)
class Mosquitto:
    host: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def reload(self) -> None:
        """What `systemctl reload mosquitto` does: SIGHUP, the files are read again."""
        self.process.send_signal(signal.SIGHUP)


@contextmanager
def running_mosquitto(folder: Path, settings: Sequence[str] = ANONYMOUS) -> Iterator[Mosquitto]:
    """Mosquitto with ``settings`` (anonymous access by default) on a free loopback port."""
    port = free_port()
    config = folder / "mosquitto.conf"
    log = folder / "mosquitto.log"
    config.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                # Started as root, mosquitto would become the `mosquitto` user, who can neither
                # write in the test's folder nor read 0600 files: stay who we are.
                f"user {getpass.getuser()}",
                "persistence false",
                "set_tcp_nodelay true",
                # The platform's session must not lose queued QoS 1 messages while it is away.
                "max_queued_messages 100000",
                *settings,
                f"log_dest file {log}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        yield Mosquitto(host="127.0.0.1", port=port, log=log, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
