"""A watch for the tests: a blocking TCP client speaking the bracketed protocol, and
``anxin gateway watch`` run for real as a subprocess."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx

from gateways.watch.frames import Framer, RawFrame, encode_frame
from tests.support.ports import wait_for_port
from tests.support.service import AnxinEnv, running_role


def alarm_content(status: str, when: datetime | None = None, *, fix: bool = True) -> str:
    """An AL record like the vendor's example, at ``when`` (now), with the status word."""
    at = (when or datetime.now(UTC)).strftime("%d%m%y,%H%M%S")
    where = "A,22.570512,N,113.8623267,E" if fix else "V,0.0,N,0.0,E"
    return (
        f"AL,{at},{where},0.00,154.8,0.0,11,100,80,0,0,{status},7,0,460,1,"
        "9529,21809,155,9529,21242,132,0,12.4"
    )


class WatchSocket:
    """One watch's connection: send frames, read the gateway's."""

    def __init__(self, port: int, device_id: str = "8800000015", vendor: str = "3G") -> None:
        self.device_id, self.vendor = device_id, vendor
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.framer = Framer()
        self.received: list[bytes] = []

    def send(self, content: str) -> None:
        self.sock.sendall(encode_frame(self.vendor, self.device_id, content))

    def read(self, within_s: float) -> list[bytes]:
        """Frames that arrive within ``within_s`` (all of them, kept in ``received`` too)."""
        deadline = time.monotonic() + within_s
        got: list[bytes] = []
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            if not data:
                break
            got += [i.data for i in self.framer.feed(data) if isinstance(i, RawFrame)]
        self.received += got
        return got

    def wait_for(
        self,
        content: bytes,
        within_s: float,
        resend: Callable[[], None] | None = None,
        every_s: float = 1.0,
    ) -> float:
        """Read until a frame whose content starts with ``content`` comes; resend meanwhile
        (as a watch resends its AL). Returns when it came (time.time())."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for frame in self.read(min(every_s, deadline - time.monotonic())):
                if frame.split(b"*", 3)[-1].startswith(content):
                    return time.time()
            if resend is not None:
                resend()
        raise TimeoutError(f"no {content!r} within {within_s} s; got {self.received}")

    def close(self) -> None:
        self.sock.close()


@contextmanager
def running_gateway(
    setup: AnxinEnv, listen_port: int, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``anxin gateway watch`` with ``setup``'s environment (its own health port), until ready."""
    health_port = env.pop("ANXIN_API_PORT")
    environment = {
        "ANXIN_API_PORT": health_port,
        "ANXIN_WATCH_LISTEN": f"127.0.0.1:{listen_port}",
        "ANXIN_WATCH_MQTT_URL": setup.env["ANXIN_MQTT_URL"],
        **env,
    }
    with running_role(setup, "gateway", "watch", env=environment) as process:
        wait_for_port(listen_port)
        yield process


def gateway_metric(health_port: int, name: str) -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    text = httpx.get(f"http://127.0.0.1:{health_port}/metrics", timeout=2).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
