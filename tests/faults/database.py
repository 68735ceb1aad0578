"""A PostgreSQL of its own for a fault that restarts it, on the same port and data folder."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from tests.support.ports import free_port
from tests.support.postgres import (
    PostgresServer,
    _initdb,
    _RunAs,
    _start,
    _stop,
    postgres_bin_dir,
)

OPTIONS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "timezone": "UTC",
}


@dataclass
class RestartablePostgres:
    server: PostgresServer
    binaries: Path
    data: Path
    run_as: _RunAs
    process: Popen[bytes]

    def restart(self) -> float:
        """Fast shutdown (clients disconnected), then start again: seconds it was away."""
        started = time.monotonic()
        _stop(self.process)
        process, _ = _start(
            self.binaries,
            self.data,
            self.server.folder,
            self.server.port,
            self.server.log,
            self.run_as,
            OPTIONS,
        )
        assert process is not None, self.server.log.read_text(errors="replace")
        self.process = process
        return time.monotonic() - started


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    binaries = postgres_bin_dir()
    run_as = _RunAs.for_this_process()
    folder = Path(tempfile.mkdtemp(prefix="anxin-postgres-"))
    try:
        run_as.own(folder)
        data, log = folder / "data", folder / "postgres.log"
        _initdb(binaries, data, run_as, folder)
        port = free_port()
        process, started_in_s = _start(binaries, data, folder, port, log, run_as, OPTIONS)
        assert process is not None, log.read_text(errors="replace")
        server = PostgresServer(
            host="127.0.0.1", port=port, folder=folder, log=log, started_in_s=started_in_s
        )
        world = RestartablePostgres(
            server=server, binaries=binaries, data=data, run_as=run_as, process=process
        )
        try:
            yield world
        finally:
            _stop(world.process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
