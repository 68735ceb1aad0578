"""CPU a message of serve's live path, stage by stage, in one process, without the machine's noise.

    .venv/bin/python scripts/measure_live_path.py [--messages 100000] [--rounds 3]

The same work as ``anxin bench same-work`` (20 devices, QoS 1 heartbeats, one in 100 at battery
10), in batches of 1 000 as ``serve`` takes them, through its own parts:

- ``read``: MQTT 5 PUBLISH packets, as the broker sends them, read from a buffer by the bulk
  PUBLISH path (ingest/mqtt.py) into the inbox: ``Delivery`` objects;
- ``store``: ``IngestPipeline.store`` on a SQLite file (decode, rules, sightings, alerts, the
  commit, the telemetry points);
- ``encode``: the points as line protocol (ingest/telemetry/points.py, what the writer sends).

Each stage's process CPU time over the messages, best of ``--rounds`` (the least disturbed);
``store_q1_us``: the store's batch a quarter of the way up (the least moved by the machine's
other work: compare these); ``gc_us``: the garbage collector's part of it (start-up's objects
frozen first, as serve does).
``--calls``: the function calls a message of store and encode instead (cProfile): a count that
the machine's load does not move.
Run it with the venv of the checkout to measure (its code is the one imported): main's and a
branch's side by side, alternated, are comparable; figures from different runs are not.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PUBLISHERS = 20
LOW_BATTERY_EVERY = 100
BATCH = int(os.environ.get("MEASURE_BATCH", "1000"))  # serve's ingest_max_batch


def _packets(messages: int, start_ms: int) -> bytes:
    """What the broker sends: MQTT 5 QoS 1 PUBLISH packets without properties."""
    out = bytearray()
    for i in range(messages):
        battery = 10 if i % LOW_BATTERY_EVERY == 0 else 90
        payload = (
            f'{{"seq":{i},"battery":{battery},"rssi":-60,"ts":{start_ms + i // PUBLISHERS}}}'
        ).encode()
        topic = f"anxin/v1/d{i % PUBLISHERS}/heartbeat".encode()
        body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", i % 65535 + 1) + b"\0"
        body += payload
        length, encoded = len(body), bytearray()
        while True:
            byte, length = length & 0x7F, length >> 7
            encoded.append(byte | (0x80 if length else 0))
            if not length:
                break
        out += bytes([0x32]) + encoded + body
    return bytes(out)


def measure(messages: int, count_calls: bool = False) -> dict[str, Any]:
    from alerting.engine import RulesEngine
    from anxin.database import open_database, upgrade
    from anxin.service import message_decoder
    from anxin.settings import load_settings
    from ingest.mqtt import READ_SIZE, BrokerAddress, MqttConnection, SessionOptions
    from ingest.pipeline import IngestPipeline
    from ingest.telemetry.points import encode_batch
    from simulators.bench import register_devices

    settings = load_settings()
    start_ms = int(time.time() * 1000) - messages // PUBLISHERS - 1000
    data = _packets(messages, start_ms)
    connection = MqttConnection(
        BrokerAddress(host="127.0.0.1", port=1),
        SessionOptions(client_id="measure", subscriptions=[], inbox_limit=10**9),
    )
    client: Any = connection._client
    client._inbound_socket = client._sock
    # read: as the loop does, a READ_SIZE chunk at a time
    began = time.process_time()
    for at in range(0, len(data), READ_SIZE):
        chunk = data[at : at + READ_SIZE]
        leftover = client._inbound[client._inbound_at :]
        client._inbound, client._inbound_at = leftover + chunk, 0
        client.budget = 10**9
        client._read_publishes()
    read_s = time.process_time() - began
    deliveries = list(connection._inbox)
    if len(deliveries) != messages:
        raise SystemExit(f"read {len(deliveries)} of {messages} messages")

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'anxin.db'}"
        register_devices(url, [f"d{k}" for k in range(PUBLISHERS)])
        engine, sessions = open_database(url)
        upgrade(engine)
        pipeline = IngestPipeline(
            sessions=sessions,
            decoder=message_decoder(settings),
            engine=RulesEngine(settings.rules, settings.catalogue),
        )
        pipeline.store(deliveries[:BATCH])  # the first batch warms the caches
        gc.collect()
        gc.freeze()  # as serve does once started (anxin/service.py: settle_heap)
        points, stored, store_s, encode_s = 0, 0, 0.0, 0.0
        per_batch: list[float] = []  # each batch's store CPU a message
        collector = _Collections()
        profile = cProfile.Profile() if count_calls else None
        if profile is not None:
            profile.enable()
        for first in range(BATCH, messages, BATCH):
            began = time.process_time()
            batch = pipeline.store(deliveries[first : first + BATCH]).points
            encode_from = time.process_time()
            encode_batch(batch)  # the writer takes 1 000 a go, or 5 000
            store_s += encode_from - began
            per_batch.append((encode_from - began) / len(deliveries[first : first + BATCH]))
            encode_s += time.process_time() - encode_from
            points += len(batch)
            stored += len(deliveries[first : first + BATCH])
        if profile is not None:
            profile.disable()
        collector.stop()
        engine.dispose()
        gc.unfreeze()
    return {
        "read_us": round(read_s * 1e6 / messages, 2),
        "store_us": round(store_s * 1e6 / stored, 2),
        # The batch a quarter of the way up: less moved by the machine's other work.
        "store_q1_us": round(sorted(per_batch)[len(per_batch) // 4] * 1e6, 2),
        "encode_us": round(encode_s * 1e6 / max(1, points), 2),
        "points": points,
        "gc_us": round(collector.seconds * 1e6 / stored, 2),
    } | ({"calls": _calls(profile) / stored} if profile is not None else {})


def _calls(profile: cProfile.Profile) -> float:
    """Python and C function calls made (store and encode): the same from run to run."""
    stats = pstats.Stats(profile)
    return float(sum(entry[1] for entry in stats.stats.values()))  # type: ignore[attr-defined]


class _Collections:
    """The garbage collector's time meanwhile (its passes are paid by whatever allocates)."""

    def __init__(self) -> None:
        self.seconds, self._began = 0.0, 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.seconds += time.process_time() - self._began

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--calls", action="store_true", help="count the function calls a message (cProfile)"
    )
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    if args.calls:
        print(json.dumps({"calls_per_message": round(measure(args.messages, True)["calls"], 1)}))
        return
    runs = [measure(args.messages) for _ in range(args.rounds)]
    stages = ("read_us", "store_us", "encode_us")
    best = {key: min(run[key] for run in runs) for key in (*stages, "store_q1_us", "gc_us")}
    best["total_us"] = round(sum(best[key] for key in stages), 2)
    print(json.dumps({"best": best, "runs": runs, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
