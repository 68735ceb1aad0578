"""Several ``anxin`` processes started at once (their start-ups overlap, which halves a test's
wait), each stopped with SIGINT at the end of the block."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack

import httpx

from tests.support.service import ANXIN, AnxinEnv, wait_until


def start_together(
    running: ExitStack, setups: Sequence[AnxinEnv], command: str
) -> list[subprocess.Popen[bytes]]:
    """``anxin COMMAND`` for each setup, all started before any is waited for; returns once
    every one answers /readyz. Each is stopped when ``running`` closes."""
    processes = []
    for setup in setups:
        log = (setup.folder / f"anxin-{command}.log").open("ab")
        running.callback(log.close)
        process = subprocess.Popen(
            [ANXIN, *command.split()], env=dict(setup.env), cwd=setup.folder, stdout=log, stderr=log
        )
        running.callback(stop, process)
        processes.append(process)
    for setup, process in zip(setups, processes, strict=True):
        wait_until(lambda s=setup, p=process: _ready(s, p, command), within_s=30)
    return processes


def _ready(setup: AnxinEnv, process: subprocess.Popen[bytes], command: str) -> bool | None:
    if process.poll() is not None:
        log = (setup.folder / f"anxin-{command}.log").read_text(errors="replace")
        raise RuntimeError(f"anxin {command} exited with {process.returncode}:\n{log}")
    try:
        return True if httpx.get(f"{setup.api_url}/readyz", timeout=1).status_code == 200 else None
    except httpx.TransportError:
        return None


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
