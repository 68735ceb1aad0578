from __future__ import annotations

import socket
import time

from simulators.bench_broker import free_port

__all__ = ["free_port", "wait_for_port"]


def wait_for_port(port: int, within_s: float = 10.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts TCP connections on ``port``."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {within_s}s") from None
            time.sleep(0.05)
