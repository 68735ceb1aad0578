"""A throwaway PostgreSQL (Debian's package): a temporary folder, a free port, removed after.

PostgreSQL refuses to run as root, so when the tests run as root the server (and ``initdb``)
run as the ``postgres`` system user that Debian's package creates, in a folder it owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support.ports import free_port

NOT_INSTALLED = (
    "PostgreSQL is not installed (no initdb/postgres under /usr/lib/postgresql/*/bin or on PATH): "
    "`make test` installs it (Debian package postgresql)"
)
START_WITHIN_S = 30.0


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    folder: Path
    log: Path
    started_in_s: float

    @property
    def url(self) -> str:
        """The maintenance database, as anxin takes it (``postgresql://``)."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, prefix: str = "anxin_test") -> str:
        """A new, empty database with a unique name; returns the name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self._admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop it, closing whatever connections are still open on it."""
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextmanager
    def fresh_database(self, prefix: str = "anxin_test") -> Iterator[str]:
        """A new database for the block (its URL), dropped afterwards."""
        name = self.create_database(prefix)
        try:
            yield self.url_for(name)
        finally:
            self.drop_database(name)

    def _admin(self) -> psycopg.Connection[Any]:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)


def postgres_bin_dir() -> Path:
    """Debian's newest PostgreSQL (``/usr/lib/postgresql/<version>/bin``), else one on PATH."""

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise RuntimeError(NOT_INSTALLED)


@dataclass(frozen=True)
class _RunAs:
    """Who runs PostgreSQL: ourselves, or the ``postgres`` user when we are root."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_this_process(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: "
                "`make test` installs Debian's postgresql package, which creates it"
            ) from None
        return cls(uid=user.pw_uid, gid=user.pw_gid)

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def popen_options(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@contextmanager
def running_postgres(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server for the block; stop it and remove its folder afterwards.

    Durability is turned off (``fsync=off`` …): it is a test server, thrown away afterwards.
    """
    binaries = postgres_bin_dir()
    run_as = _RunAs.for_this_process()
    folder = Path(tempfile.mkdtemp(prefix="anxin-postgres-"))
    try:
        run_as.own(folder)
        data = folder / "data"
        log = folder / "postgres.log"
        _initdb(binaries, data, run_as, folder)
        options = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "timezone": "UTC",
            **(settings or {}),
        }
        for attempt in range(3):
            port = free_port()
            process, started_in_s = _start(binaries, data, folder, port, log, run_as, options)
            if process is not None:
                break
            # Someone else took the free port between our probe and the server's bind.
            if attempt == 2 or "could not bind" not in log.read_text(errors="replace"):
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}")
        assert process is not None
        try:
            yield PostgresServer(
                host="127.0.0.1", port=port, folder=folder, log=log, started_in_s=started_in_s
            )
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _initdb(binaries: Path, data: Path, run_as: _RunAs, folder: Path) -> None:
    result = subprocess.run(
        [
            str(binaries / "initdb"),
            "--pgdata", str(data),
            "--username", "postgres",
            "--auth-local", "trust",
            "--auth-host", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
        ],
        cwd=folder,
        env=_environment(folder),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **run_as.popen_options(),
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _start(
    binaries: Path,
    data: Path,
    folder: Path,
    port: int,
    log: Path,
    run_as: _RunAs,
    options: dict[str, str],
) -> tuple[subprocess.Popen[bytes] | None, float]:
    """Start the server and wait until it accepts connections; None if it exited instead."""
    started = time.monotonic()
    command = [
        str(binaries / "postgres"),
        "-D", str(data),
        "-p", str(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={folder}",
    ]  # fmt: skip
    for name, value in options.items():
        command += ["-c", f"{name}={value}"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=_environment(folder),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            **run_as.popen_options(),
        )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = started + START_WITHIN_S
    while True:
        if process.poll() is not None:
            return None, 0.0
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return process, time.monotonic() - started
        except psycopg.OperationalError:
            pass  # not listening yet, or "the database system is starting up"
        if time.monotonic() > deadline:
            _stop(process)
            raise TimeoutError(
                f"PostgreSQL not accepting connections after {START_WITHIN_S} s:\n"
                f"{log.read_text(errors='replace')}"
            )
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: disconnect clients, then stop); immediate if that hangs."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGINT, 30), (signal.SIGQUIT, 10)):
        process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
            return
    process.kill()
    process.wait()


def _environment(folder: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_", "LANG"))}
    return {**keep, "HOME": str(folder), "LC_ALL": "C", "TZ": "UTC"}
