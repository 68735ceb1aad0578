"""Virtual 4G watches (`protocol: watch`): their frames read back through the gateway's own
codec as the emissions they came from, and the scenario group is checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.topics import Uplink
from gateways.watch.frames import parse_frame
from gateways.watch.messages import read_message
from gateways.watch.translate import ReplyWhen, translate
from simulators.behaviours import Emission, home_location
from simulators.scenario import load_scenario
from simulators.scenario_file import ScenarioError
from simulators.watch_encoding import WatchEncoder

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
AT = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
WATCH = "1158000003"


def through_gateway(emission: Emission):  # type: ignore[no-untyped-def]
    out = []
    for raw in WatchEncoder(WATCH).frames(emission, AT):
        frame = parse_frame(raw)
        assert frame.length_ok
        out.append(translate(frame, read_message(frame)))
    return out


def test_heartbeats_are_lk_and_positions_ud() -> None:
    (lk,) = through_gateway(
        Emission(at=AT, device_id=WATCH, kind=Uplink.HEARTBEAT, body={"battery": 77})
    )
    assert lk.reply == "LK"
    assert lk.publications[0].payload["battery"] == 77
    where = home_location(WATCH)
    (ud,) = through_gateway(
        Emission(at=AT, device_id=WATCH, kind=Uplink.HEARTBEAT, body={"location": where})
    )
    assert ud.publications[0].payload["location"]["lat"] == pytest.approx(where["lat"])


def test_an_sos_is_an_al_with_the_fix_and_low_battery_keeps_it_an_sos() -> None:
    body = {"trigger": "watch", "location": {"room": "随身"}, "battery": 15}
    (al,) = through_gateway(Emission(at=AT, device_id=WATCH, kind=Uplink.SOS, body=body))
    assert al.reply_when is ReplyWhen.STORED
    kinds = [(p.kind, p.payload.get("type")) for p in al.publications]
    assert kinds == [(Uplink.SOS, None), (Uplink.EVENT, "low_battery")]
    sos = al.publications[0].payload
    assert sos["location"]["lat"] == pytest.approx(home_location(WATCH)["lat"])
    assert sos["ts"] == "2026-03-02T08:30:00Z"  # the protocol's time is UTC
    assert sos["seq"] == int(AT.timestamp())


@pytest.mark.parametrize("event", ["fall", "low_battery", "removed"])
def test_events_are_alarm_bits(event: str) -> None:
    emission = Emission(at=AT, device_id=WATCH, kind=Uplink.EVENT, body={"type": event})
    (al,) = through_gateway(emission)
    assert [p.payload["type"] for p in al.publications] == [event]
    restore = Emission(
        at=AT, device_id=WATCH, kind=Uplink.EVENT, body={"type": event, "state": "restore"}
    )
    assert through_gateway(restore) == []


def test_readings_are_health_frames() -> None:
    metrics = {"heart_rate": 72, "spo2": 97, "bp_systolic": 120, "bp_diastolic": 80}
    emission = Emission(at=AT, device_id=WATCH, kind=Uplink.TELEMETRY, body={"metrics": metrics})
    replies = through_gateway(emission)
    assert [r.reply for r in replies] == ["bphrt", "oxygen,1"]
    got = {k: v for r in replies for p in r.publications for k, v in p.payload["metrics"].items()}
    assert got == metrics


def test_the_sample_scenario_and_a_watch_group_of_other_models(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "watches.yaml")
    assert all(
        d.watch and d.device_id.isdigit() and len(d.device_id) == 10 for d in scenario.devices
    )
    assert len({d.device_id for d in scenario.devices}) == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: t\nstart: 2026-03-02T00:00:00+08:00\nduration: 1h\nfleet:\n"
        "  - homes: 1\n    models: [sos-pendant]\n    protocol: watch\ntimeline: []\n"
    )
    with pytest.raises(ScenarioError, match="only watch-4g"):
        load_scenario(bad)


def test_a_day_of_a_watch_has_positions_readings_and_keepalives() -> None:
    scenario = load_scenario(SCENARIOS / "watches.yaml")
    from simulators.virtual_devices import device_stream

    plan = scenario.plans[0]
    emissions = list(
        device_stream(
            plan, scenario.seed, scenario.start, scenario.start + timedelta(hours=2), scenario.zone
        )
    )
    heartbeats = [e for e in emissions if e.kind is Uplink.HEARTBEAT]
    assert sum("location" in e.body for e in heartbeats) >= 10  # a UD every 10 min
    assert sum("location" not in e.body for e in heartbeats) >= 14  # an LK every 8 min
    assert sum(e.kind is Uplink.TELEMETRY for e in emissions) >= 3
