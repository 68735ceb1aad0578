"""When InfluxV1 tells that a body is out: after its last byte has left, before the answer.

The writer starts encoding the next batch then (writer.py). The server here is a socket of
the test's own that reads the whole request and answers only when the test lets it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ingest.telemetry.sink_v1 import InfluxV1


class HeldServer:
    """Reads one HTTP request whole, then answers 204 when the test lets it."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.body_read = 0
        self.body_in = threading.Event()
        self.answer = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = int(next(v for k, v in _headers(head) if k == b"content-length"))
            while len(body) < length:
                body += connection.recv(65536)
            self.body_read = len(body)
            self.body_in.set()
            assert self.answer.wait(5)
            connection.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.answer.set()
        self._thread.join(5)
        self._listener.close()


def _headers(head: bytes) -> Iterator[tuple[bytes, bytes]]:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        yield name.strip().lower(), value.strip()


@pytest.fixture
def server() -> Iterator[HeldServer]:
    held = HeldServer()
    yield held
    held.close()


def test_told_once_the_whole_body_is_out_and_before_the_answer(server: HeldServer) -> None:
    body = b"\n".join(b"heartbeat,device_id=d%d seen=1i %d" % (i, i) for i in range(20_000))
    told: list[bool] = []

    def body_out() -> None:
        # The server has all of the body (told at the start, it would have none), and has
        # not answered (told after the answer, the write would wait for it in vain).
        told.append(server.body_in.wait(2) and not server.answer.is_set())
        server.answer.set()

    InfluxV1(f"http://127.0.0.1:{server.port}", "db", timeout_s=5).write(body, on_sent=body_out)
    assert told == [True]
    assert server.body_read == len(body)
