"""Ingest's pulse: while connected to the broker, say so in the database every few seconds.

The scheduler reads it: a gap is an outage of the platform, not silence of the devices."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerting.platform import PULSE_EVERY, beat
from devices.clock import Clock
from ingest.mqtt import MqttConnection

log = structlog.get_logger(__name__)


async def keep_pulse(
    sessions: sessionmaker[Session],
    connection: MqttConnection,
    clock: Clock,
    stop: asyncio.Event,
    every_s: float = PULSE_EVERY.total_seconds(),
) -> None:
    while not stop.is_set():
        wait_s = 1.0  # not connected (yet): look again soon
        if connection.connected:
            try:
                await asyncio.to_thread(_beat, sessions, clock)
                wait_s = every_s
            except SQLAlchemyError as error:
                log.warning("ingest.pulse_failed", error=type(error).__name__)
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait_s)
        except TimeoutError:
            continue


def _beat(sessions: sessionmaker[Session], clock: Clock) -> None:
    with sessions.begin() as session:
        beat(session, clock())
