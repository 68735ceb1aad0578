"""``anxin`` run for real, as a subprocess of the tests, with its own database and ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from tests.support.ports import free_port

T = TypeVar("T")

ANXIN = str(Path(sys.executable).parent / "anxin")


@dataclass(frozen=True)
class AnxinEnv:
    folder: Path
    env: Mapping[str, str]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ANXIN_API_PORT']}"

    @property
    def database_path(self) -> Path:
        return self.folder / "anxin.db"

    def cli(
        self, *args: str, stdin: str | None = None, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ANXIN, *args],
            env=dict(self.env),
            cwd=self.folder,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def add_user(self, name: str, password: str, role: str = "dispatcher") -> None:
        result = self.cli("users", "add", name, "--role", role, "--password-stdin", stdin=password)
        assert result.returncode == 0, result.stderr

    def token(self, name: str, password: str) -> str:
        response = httpx.post(
            f"{self.api_url}/api/v1/auth/token", data={"username": name, "password": password}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


def anxin_env(folder: Path, **overrides: str) -> AnxinEnv:
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ANXIN_DATABASE_URL": f"sqlite:///{folder / 'anxin.db'}",
        "ANXIN_VAR_DIR": str(folder / "var"),
        "ANXIN_API_PORT": str(free_port()),
        "ANXIN_LOG_FORMAT": "json",
        "ANXIN_MQTT_CLIENT_ID": f"anxin-test-{folder.name}-{os.getpid()}",
        **overrides,
    }
    return AnxinEnv(folder=folder, env=env)


@contextmanager
def running_anxin(
    setup: AnxinEnv, command: str = "serve", ready_within_s: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``anxin COMMAND``, wait until /readyz says ready, stop it with SIGINT afterwards."""
    with running_role(setup, command, ready_within_s=ready_within_s) as process:
        yield process


@contextmanager
def running_role(
    setup: AnxinEnv,
    *args: str,
    env: Mapping[str, str] | None = None,
    ready_within_s: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``anxin ARGS…`` (``gateway watch`` say) with ``setup``'s environment and ``env`` over it,
    until the /readyz on its ANXIN_API_PORT says ready (within ``ready_within_s``: longer for
    soaks on a loaded machine); stopped with SIGINT afterwards."""
    environment = {**setup.env, **(env or {})}
    log_path = setup.folder / f"anxin-{'-'.join(args)}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [ANXIN, *args], env=environment, cwd=setup.folder, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{environment['ANXIN_API_PORT']}"
        _wait_ready(url, process, log_path, ready_within_s)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log_path: Path, within_s: float = 30.0
) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"anxin exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"anxin not ready after {within_s:g} s:\n{log_path.read_text()}")


def wait_until(probe: Callable[[], T | None], within_s: float = 10.0) -> T:
    """Poll ``probe`` until it returns something, for at most ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {within_s} s")
        time.sleep(0.02)
