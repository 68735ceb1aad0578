"""Virtual devices' behaviours: pure functions of (seed, device, virtual time)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from devices.catalogue import CATALOGUE
from devices.topics import Uplink
from simulators.behaviours import (
    JITTER,
    WILL_DELAY,
    Emission,
    battery_level,
    bed_day,
    door_day,
    heartbeat_times,
    motion_times,
    routine,
)
from simulators.virtual_devices import (
    DevicePlan,
    Encoder,
    Silence,
    Window,
    build_home,
    device_stream,
    fleet_stream,
    registry_csv,
)

ZONE = ZoneInfo("Asia/Shanghai")
ORIGIN = datetime(2026, 3, 2, tzinfo=ZONE)  # midnight, local
DAY = timedelta(days=1)


def test_heartbeats_keep_their_interval_give_or_take_the_jitter() -> None:
    beats = list(heartbeat_times(7, "d1", 600, ORIGIN, ORIGIN, ORIGIN + DAY))
    assert 143 <= len(beats) <= 145
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(beats)]
    assert all(600 * (1 - 2 * JITTER) <= gap <= 600 * (1 + 2 * JITTER) for gap in gaps)
    assert len(set(gaps)) > 100  # jittered, not a metronome


def test_heartbeats_are_the_same_whatever_window_asks_for_them() -> None:
    whole = list(heartbeat_times(7, "d1", 600, ORIGIN, ORIGIN, ORIGIN + DAY))
    noon = ORIGIN + DAY / 2
    halves = [
        *heartbeat_times(7, "d1", 600, ORIGIN, ORIGIN, noon),
        *heartbeat_times(7, "d1", 600, ORIGIN, noon, ORIGIN + DAY),
    ]
    assert halves == whole
    assert list(heartbeat_times(8, "d1", 600, ORIGIN, ORIGIN, ORIGIN + DAY)) != whole


def test_a_pendant_is_charged_at_night_and_drains_by_day_without_running_low() -> None:
    pendant = CATALOGUE["sos-pendant"]
    assert pendant.battery is not None
    levels = {
        hour: battery_level(1, "p", pendant, ORIGIN, ORIGIN + timedelta(hours=hour), ZONE)
        for hour in (3, 7, 12, 21.9)
    }
    assert levels[3] == 100.0
    assert levels[7] is not None
    assert levels[12] is not None
    assert levels[21.9] is not None
    assert 100 > levels[7] > levels[12] > levels[21.9] > pendant.battery.low_pct


def test_a_coin_cell_drains_slowly_above_its_low_threshold() -> None:
    button = CATALOGUE["sos-button"]
    assert button.battery is not None
    today = battery_level(3, "b", button, ORIGIN, ORIGIN, ZONE)
    week = battery_level(3, "b", button, ORIGIN, ORIGIN + 7 * DAY, ZONE)
    assert today is not None
    assert week is not None
    assert button.battery.low_pct + 19 < week < today
    assert battery_level(3, "g", CATALOGUE["gas-detector"], ORIGIN, ORIGIN, ZONE) is None


def test_motion_follows_the_time_of_day() -> None:
    def count(hour: int) -> int:
        return sum(
            len(motion_times(5, f"m{n}", ORIGIN + timedelta(hours=hour), rate))
            for n, rate in enumerate([6.0 if 6 <= hour <= 9 else 0.2] * 50)
        )

    assert count(7) > 10 * max(1, count(2))


def test_out_of_bed_in_the_morning_and_back_in_the_evening() -> None:
    for n in range(30):
        events = bed_day(11, f"bed{n}", ORIGIN.date(), ZONE)
        exits = [t.astimezone(ZONE).hour for t, kind in events if kind == "bed_exit"]
        enters = [t.astimezone(ZONE).hour for t, kind in events if kind == "bed_enter"]
        assert any(5 <= hour <= 9 for hour in exits)
        assert any(20 <= hour <= 23 for hour in enters)
        assert events == sorted(events)


def test_every_door_opened_is_closed() -> None:
    for n in range(30):
        kinds = [kind for _, kind in door_day(11, f"door{n}", ORIGIN.date(), ZONE)]
        assert kinds.count("door_open") == kinds.count("door_close")
        assert kinds == ["door_open", "door_close"] * (len(kinds) // 2)


def test_each_model_sends_only_what_the_catalogue_says_it_can() -> None:
    for model in CATALOGUE.values():
        sent = routine(1, "x", model, ORIGIN, ORIGIN, ORIGIN + DAY, ZONE)
        events = {e.event_type for e in sent if e.kind is Uplink.EVENT}
        assert events <= model.events, model.name
        assert any(e.kind is Uplink.HEARTBEAT for e in sent)


def plan(model: str = "sos-pendant") -> DevicePlan:
    (device,) = build_home(1, [CATALOGUE[model]])
    return DevicePlan(device=device)


def test_a_lost_link_is_silence_then_the_will_then_back_online() -> None:
    lost = plan()
    start, end = ORIGIN + timedelta(hours=2), ORIGIN + timedelta(hours=4)
    lost.silences.append(Silence(start=start, end=end, cause="network"))
    will = Emission(
        at=start + WILL_DELAY,
        device_id=lost.device.device_id,
        kind=Uplink.STATUS,
        body={"status": "offline"},
        by_broker=True,
    )
    back = Emission(
        at=end, device_id=lost.device.device_id, kind=Uplink.STATUS, body={"status": "online"}
    )
    lost.extra += [will, back]
    sent = list(device_stream(lost, 1, ORIGIN, ORIGIN + DAY, ZONE))
    inside = [e for e in sent if start <= e.at < end]
    assert [e.body.get("status") for e in inside] == ["offline"]
    assert any(e.body.get("status") == "online" and e.at == end for e in sent)
    assert [e.at for e in sent] == sorted(e.at for e in sent)


def test_in_a_broker_outage_qos_1_waits_and_qos_0_is_lost() -> None:
    busy = plan("pir-motion")
    start, end = ORIGIN + timedelta(hours=7), ORIGIN + timedelta(hours=8)
    busy.silences.append(Silence(start=start, end=end, cause="broker"))
    quiet = list(device_stream(plan("pir-motion"), 1, ORIGIN, ORIGIN + DAY, ZONE))
    sent = list(device_stream(busy, 1, ORIGIN, ORIGIN + DAY, ZONE))
    held = [e for e in quiet if start <= e.at < end and e.qos == 1]
    assert held  # motion in the morning hour
    assert not [e for e in sent if start <= e.at < end]
    assert len([e for e in sent if e.at == end]) == len(held)
    assert [e.at for e in sent] == sorted(e.at for e in sent)


def test_a_quiet_spell_holds_back_activity_but_not_heartbeats() -> None:
    still = plan("pir-motion")
    still.quiet.append(Window(start=ORIGIN, end=ORIGIN + DAY))
    sent = list(device_stream(still, 1, ORIGIN, ORIGIN + DAY, ZONE))
    assert sent
    assert all(e.kind is Uplink.HEARTBEAT for e in sent)


def test_the_same_seed_gives_the_same_traffic() -> None:
    homes = build_home(1, [CATALOGUE[m] for m in ("sos-pendant", "bed-sensor", "door-contact")])

    def traffic(seed: int) -> list[tuple[str, bytes] | None]:
        encoder = Encoder("anxin/v1")
        plans = [DevicePlan(device=d) for d in homes]
        return [
            encoder.encode(e, e.at) for e in fleet_stream(plans, seed, ORIGIN, ORIGIN + DAY, ZONE)
        ]

    assert traffic(1) == traffic(1)
    assert traffic(1) != traffic(2)


def test_the_registry_csv_has_one_elder_per_home() -> None:
    devices = build_home(4, [CATALOGUE["sos-pendant"], CATALOGUE["bed-sensor"]], prefix="t")
    lines = registry_csv(devices).splitlines()
    assert lines[0].endswith(",room,zigbee_name")
    assert lines[0].startswith("device_id,model,elder_id")
    assert lines[1].startswith("t-00004-sos-pendant,sos-pendant,t-00004,")
    assert lines[2].startswith("t-00004-bed-sensor,bed-sensor,t-00004,")


def test_payloads_carry_ts_seq_and_the_battery() -> None:
    encoder = Encoder("anxin/v1")
    beat = Emission(at=ORIGIN, device_id="d", kind=Uplink.HEARTBEAT, body={"battery": 80.0})
    first = encoder.encode(beat, ORIGIN.astimezone(UTC))
    second = encoder.encode(beat, ORIGIN.astimezone(UTC))
    assert first == (
        "anxin/v1/d/heartbeat",
        b'{"ts":"2026-03-01T16:00:00.000+00:00","seq":1,"battery":80.0}',
    )
    assert second is not None
    assert b'"seq":2' in second[1]
