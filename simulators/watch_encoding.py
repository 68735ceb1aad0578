"""A virtual 4G watch's traffic as the watch protocol's frames (docs/watch-gateway.md).

An emission of the fleet (a heartbeat, an SOS, an event, telemetry) becomes what such a watch
sends: ``LK`` with steps and battery, a ``UD_LTE`` position, an ``AL_LTE`` with the status bit
of the alarm and the fix, ``bphrt`` / ``oxygen`` readings. Live, the frames go over TCP to
``anxin gateway watch``; in a traffic file, a watch's line is what the gateway publishes for the
frame, made by the gateway's own codec, so a virtual replay sees watches as live anxin does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from devices.topics import Uplink, uplink_topic
from gateways.watch.frames import encode_frame, parse_frame
from gateways.watch.messages import StatusBit, read_message
from gateways.watch.translate import Publication, translate
from simulators.behaviours import Emission, home_location

VENDOR = "3G"
_EVENT_BITS = {
    "fall": 1 << StatusBit.FALL,
    "low_battery": 1 << StatusBit.LOW_BATTERY,
    "removed": 1 << StatusBit.REMOVED,
}


class WatchEncoder:
    """One watch's frames; the step count is the only thing it remembers."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id

    def contents(self, emission: Emission, ts: datetime) -> list[str]:
        """The frames' contents (type and fields) for ``emission``; [] for what a watch does
        not say (a status, a cancel, a restore)."""
        body = emission.body
        battery = int(body.get("battery", 80))
        steps = _steps(ts)
        if emission.kind is Uplink.HEARTBEAT:
            if "location" in body:
                return ["UD_LTE," + _record(ts, body["location"], battery, steps, 0)]
            return [f"LK,{steps},0,{battery}"]
        if emission.kind is Uplink.SOS:
            where = body.get("location")
            fix = where if isinstance(where, Mapping) and "lat" in where else None
            status = 1 << StatusBit.SOS
            if battery <= 20:
                status |= 1 << StatusBit.LOW_BATTERY_STATE  # an SOS with low battery
            location = fix or home_location(self.device_id)
            return ["AL_LTE," + _record(ts, location, battery, steps, status)]
        if emission.kind is Uplink.EVENT:
            bit = _EVENT_BITS.get(str(body.get("type")))
            if bit is None or body.get("state") == "restore":
                return []
            location = home_location(self.device_id)
            return ["AL_LTE," + _record(ts, location, battery, steps, bit)]
        if emission.kind is Uplink.TELEMETRY:
            metrics: Mapping[str, Any] = body.get("metrics", {})
            out = []
            if "heart_rate" in metrics:
                systolic = int(metrics.get("bp_systolic", 0))
                diastolic = int(metrics.get("bp_diastolic", 0))
                out.append(f"bphrt,{systolic},{diastolic},{int(metrics['heart_rate'])},,,,")
            if "spo2" in metrics:
                out.append(f"oxygen,0,{int(metrics['spo2'])}")
            return out
        return []

    def frames(self, emission: Emission, ts: datetime) -> list[bytes]:
        return [encode_frame(VENDOR, self.device_id, c) for c in self.contents(emission, ts)]

    def is_alarm(self, content: str) -> bool:
        return content.startswith("AL")

    def as_published(
        self, emission: Emission, ts: datetime, prefix: str
    ) -> tuple[str, bytes] | None:
        """What the gateway publishes for this emission's frames (one message: readings of
        several frames are one telemetry message)."""
        publications: list[Publication] = []
        for raw in self.frames(emission, ts):
            frame = parse_frame(raw)
            publications += translate(frame, read_message(frame)).publications
        if not publications:
            return None
        first = publications[0]
        payload: dict[str, Any] = dict(first.payload)
        if first.kind is Uplink.TELEMETRY:
            payload["metrics"] = {
                name: value
                for p in publications
                if p.kind is Uplink.TELEMETRY
                for name, value in p.payload["metrics"].items()
            }
        topic = uplink_topic(self.device_id, first.kind, prefix)
        return topic, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _steps(ts: datetime) -> int:
    """A pedometer that only counts up (the watch never resets it)."""
    return int(ts.timestamp() - 1_700_000_000) // 9


def _record(
    ts: datetime, location: Mapping[str, Any], battery: int, steps: int, status: int
) -> str:
    when = ts.astimezone(UTC).strftime("%d%m%y,%H%M%S")  # the protocol's time is UTC
    lat, lon = float(location["lat"]), float(location["lon"])
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    return (
        f"{when},A,{abs(lat):.6f},{ns},{abs(lon):.6f},{ew},0.00,0.0,0.0,8,80,{battery},"
        f"{steps},0,{status:08X},1,1,460,0,9529,21809,155,0,10.0"
    )
