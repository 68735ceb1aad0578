"""A Mosquitto of its own for ``anxin bench ingest``: a free loopback port, a temporary folder,
anonymous, stopped afterwards (and, on Linux, also when the bench dies)."""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


class BrokerError(RuntimeError):
    """A service of the bench (Mosquitto, influxd) is missing or did not start."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchBroker:
    host: str
    port: int
    pid: int
    log: Path

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux stop the child when the bench process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def stop_process(process: subprocess.Popen[bytes], within_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_broker(
    folder: Path, host: str = "127.0.0.1", port: int | None = None, settings: Sequence[str] = ()
) -> Iterator[BenchBroker]:
    """Mosquitto configured like deploy/mosquitto.conf where it matters for throughput, on
    ``port`` or a free one, with more ``settings`` lines if given."""
    port = port or free_port(host)
    config, log = folder / "mosquitto.conf", folder / "mosquitto.log"
    config.write_text(
        "\n".join(
            [
                f"listener {port} {host}",
                # Started as root, mosquitto would become the `mosquitto` user, who cannot
                # write in our folder: stay who we are.
                f"user {getpass.getuser()}",
                "allow_anonymous true",
                "persistence false",
                "set_tcp_nodelay true",
                "max_queued_messages 1000000",
                "max_inflight_messages 2000",
                *settings,
                f"log_dest file {log}",
                "log_type error",
                "log_type warning",
                "",
            ]
        )
    )
    process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
        [mosquitto_binary(), "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Our Ctrl-C is for us: we stop the broker ourselves, after the client.
        start_new_session=True,
        preexec_fn=die_with_parent(),  # started before any thread: only prctl, then exec
    )
    try:
        _wait_for_port(host, port, process, log)
        yield BenchBroker(host=host, port=port, pid=process.pid, log=log)
    finally:
        stop_process(process)


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise BrokerError(f"mosquitto exited with {process.returncode}: {text.strip()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(f"mosquitto does not listen on {host}:{port}") from None
            time.sleep(0.02)


def process_cpu_s(pid: int, thread: int | None = None) -> float | None:
    """CPU seconds (user + system) a process, or one of its threads, has used so far (Linux)."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float | None:
    """CPU seconds all cores of the machine have been busy since boot (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
