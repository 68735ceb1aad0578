"""Replay against a broker: a traffic file published in order, at ``speed`` times its pace."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.mqtt import BrokerAddress
from simulators.traffic import TrafficLine, TrafficMessage

CONNECT_WITHIN_S = 10.0


class ReplayError(RuntimeError):
    """The broker could not be reached or refused the replay."""


def connected_client(broker: BrokerAddress, client_id: str) -> paho.Client:
    """A paho client with its network thread, connected (or ReplayError)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    client.max_inflight_messages_set(1000)
    ready = threading.Event()
    client.on_connect = lambda _c, _u, _f, reason, _p: (
        ready.set() if not reason.is_failure else None
    )
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise ReplayError(f"cannot reach the broker {broker.host}:{broker.port}: {exc}") from exc
    client.loop_start()
    if not ready.wait(CONNECT_WITHIN_S):
        client.loop_stop()
        raise ReplayError(f"the broker {broker.host}:{broker.port} did not accept us")
    return client


def publish_traffic(
    lines: Iterable[TrafficLine],
    client: paho.Client,
    *,
    speed: float,
    stop: threading.Event,
    progress: Callable[[int, datetime], None] | None = None,
) -> int:
    """Publish each message at its time (relative to the first) divided by ``speed``, in file
    order; link lines are skipped (a broker replay cannot cut the platform off). Returns the
    number published; returns early when ``stop`` is set."""
    published = 0
    started = time.monotonic()
    first: datetime | None = None
    last_info: paho.MQTTMessageInfo | None = None
    for line in lines:
        if not isinstance(line, TrafficMessage):
            continue
        first = first or line.time
        due = started + (line.time - first).total_seconds() / speed
        wait = due - time.monotonic()
        if wait > 0 and stop.wait(wait):
            break
        if stop.is_set():
            break
        info = client.publish(line.topic, line.payload, qos=line.qos, retain=line.retain)
        if line.qos:
            last_info = info
        published += 1
        if progress is not None:
            progress(published, line.time)
    if last_info is not None:
        last_info.wait_for_publish(timeout=30)
    return published


def probe_topic(prefix: str) -> str:
    """A heartbeat from a device nobody registers: stored as a dead letter once ingest has got
    this far, so its arrival says everything published before it was handled."""
    return f"{prefix}/anxin-replay-probe-{os.getpid()}-{int(time.time())}/heartbeat"
