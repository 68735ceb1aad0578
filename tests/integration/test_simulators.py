"""anxin simulate, record and replay, against a real Mosquitto and a real anxin."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.traffic import TrafficMessage, read_traffic
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import ANXIN, AnxinEnv, anxin_env, running_anxin, wait_until

# Forty seconds of a small fleet with one of each kind of incident the event rules know.
SCENARIO = """\
name: live-and-virtual
start: 2026-03-02T09:00:00+08:00
duration: 40s
device_prefix: lv
fleet:
  - homes: 4
    models: [sos-pendant, fall-detector, smoke-detector, temperature-sensor, water-leak]
timeline:
  - at: 2s
    elder: 1
    model: fall-detector
    fall: {}
    expect: [{type: fall, status: new}]
  - at: 4s
    elder: 2
    fall: {cancel_after: 8s}
    expect: [{type: fall, status: cancelled}]
  - at: 6s
    elder: 3
    sos: {presses: 3, every: 5s}
    expect: [{type: sos, status: new, count: 3}]
  - at: 8s
    elder: 4
    smoke: {restore_after: 10s}
    expect: [{type: smoke, status: new}]
  - at: 10s
    elder: 1
    model: water-leak
    tamper: {restore_after: 12s}
    expect: [{type: tamper, status: resolved}]
  - at: 12s
    elder: 2
    model: water-leak
    battery: {level: 12}
    expect: []
  - at: 30s
    elder: 2
    model: water-leak
    water_leak: {}
    expect: [{type: water_leak, status: new}, {type: low_battery, status: new}]
"""


def prepared(tmp_path: Path, **env: str) -> tuple[AnxinEnv, Path, Path]:
    """An anxin folder with the scenario's fleet imported and its traffic written."""
    setup = anxin_env(tmp_path / "anxin", **env)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    traffic = tmp_path / "traffic.jsonl"
    made = setup.cli(
        "simulate", "--scenario", str(scenario), "--registry", "fleet.csv", "--out", str(traffic)
    )
    assert made.returncode == 0, made.stderr
    imported = setup.cli("devices", "import", "fleet.csv")
    assert imported.returncode == 0, imported.stderr
    return setup, scenario, traffic


def alerts_of(stdout: str) -> set[tuple[str, str, int, str]]:
    alerts = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {(a["device_id"], a["type"], a["count"], a["status"]) for a in alerts}


def test_virtual_replay_raises_what_the_scenario_expects(tmp_path: Path) -> None:
    setup, scenario, traffic = prepared(tmp_path)
    result = setup.cli("replay", str(traffic), "--virtual", "--json", "--expect", str(scenario))
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    fall = next(a for a in alerts if a["device_id"] == "lv-00001-fall-detector")
    assert set(fall) >= {"device_id", "type", "category", "priority", "status", "count"}
    assert (fall["type"], fall["category"], fall["priority"]) == ("fall", "emergency", "critical")
    # Virtual time: the scenario's morning, not today.
    assert fall["created_at"].startswith("2026-03-02T01:00:")
    assert "as expected by" in result.stderr


def test_expect_exits_non_zero_on_a_difference(tmp_path: Path) -> None:
    setup, _, traffic = prepared(tmp_path)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        SCENARIO.replace("{type: fall, status: cancelled}", "{type: fall, status: new}").replace(
            "count: 3", "count: 2"
        ),
        encoding="utf-8",
    )
    result = setup.cli("replay", str(traffic), "--virtual", "--expect", str(wrong))
    assert result.returncode == 1
    assert "lv-00002-sos-pendant: fall is cancelled, expected new" in result.stderr
    assert "lv-00003-sos-pendant: sos count 3, expected 2" in result.stderr


def test_live_and_virtual_replay_raise_the_same_alerts(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup, _, traffic = prepared(tmp_path, ANXIN_MQTT_URL=mosquitto.url)
    virtual = setup.cli("replay", str(traffic), "--virtual", "--json")
    assert virtual.returncode == 0, virtual.stderr
    with running_anxin(setup):
        live = setup.cli("replay", str(traffic), "--speed", "4", "--json")
    assert live.returncode == 0, live.stderr
    assert alerts_of(live.stdout) == alerts_of(virtual.stdout)
    assert len(alerts_of(live.stdout)) == 7


def test_a_replay_against_a_platform_reached_only_by_mqtt_and_http(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The engineer's machine has no database of the platform's: `--api` reads the alerts
    through the HTTP API (a token, or a login); with neither, it says what it sent."""
    setup, scenario, traffic = prepared(tmp_path, ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("eng", "a-good-password", role="engineer")
    with running_anxin(setup):
        token = setup.token("eng", "a-good-password")
        elsewhere = anxin_env(tmp_path / "laptop", ANXIN_MQTT_URL=mosquitto.url)
        laptop = AnxinEnv(elsewhere.folder, {**elsewhere.env, "ANXIN_API_TOKEN": token})
        live = laptop.cli(
            "replay", str(traffic), "--speed", "4", "--json", "--api", setup.api_url,
            "--expect", str(scenario),
        )  # fmt: skip
        # The scenario's alerts, each as expected (the virtual replay raises the same: above).
        assert live.returncode == 0, live.stderr
        assert "read through the API" in live.stderr
        assert len(alerts_of(live.stdout)) == 7
        # A login instead of a token (the alerts are counted on those already open now).
        login = AnxinEnv(
            elsewhere.folder, {**elsewhere.env, "ANXIN_API_PASSWORD": "a-good-password"}
        )
        again = login.cli(
            "replay", str(traffic), "--speed", "40", "--json", "--api", setup.api_url,
            "--user", "eng",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "read through the API" in again.stderr
        blind = elsewhere.cli("replay", str(traffic), "--speed", "40")
    assert not (elsewhere.folder / "anxin.db").exists()
    assert blind.returncode == 0, blind.stderr
    assert "no --api and no database: the alerts raised were not read" in blind.stderr
    assert blind.stderr.startswith("published 11 messages in ")
    assert "(event 8, sos 3)" in blind.stderr


def test_record_writes_what_arrives_retained_and_binary_too(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    mosquitto_pub(mosquitto.port, "anxin/v1/rec-1/status", "online", qos=1, protocol="mqttv311")
    subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-t", "anxin/v1/rec-2/status", "-r",
         "-q", "1", "-m", "offline"],
        check=True, timeout=10,
    )  # fmt: skip
    out = tmp_path / "recorded.jsonl"
    recorder = subprocess.Popen(
        [ANXIN, "record", "--out", str(out), "--count", "3"],
        env=dict(setup.env),
        cwd=setup.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert recorder.stderr is not None
        assert "recording" in recorder.stderr.readline()
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        client.publish("anxin/v1/rec-3/event", b"\xff\xfe not utf-8", qos=1).wait_for_publish(5)
        client.publish("anxin/v1/rec-3/heartbeat", '{"battery": 80}', qos=0).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        stdout, _ = recorder.communicate(timeout=20)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0
    assert "3 messages (QoS 0: 1, QoS 1: 2; 1 retained, 1 not UTF-8)" in stdout
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["retain"] is True
    assert json.loads(lines[1])["payload_b64"] == "//4gbm90IHV0Zi04"
    records = [r for r in read_traffic(out) if isinstance(r, TrafficMessage)]
    assert [(r.topic, r.qos, r.retain) for r in records] == [
        ("anxin/v1/rec-2/status", 1, True),
        ("anxin/v1/rec-3/event", 1, False),
        ("anxin/v1/rec-3/heartbeat", 0, False),
    ]
    assert records[1].payload == b"\xff\xfe not utf-8"


def test_ctrl_c_stops_simulate_cleanly_with_a_summary(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    fleet = subprocess.Popen(
        [ANXIN, "simulate", "--devices", "20", "--models", "sos-pendant,pir-motion", "--rate",
         "40", "--json"],
        env=dict(setup.env), cwd=setup.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        with listening(mosquitto.port, "anxin/v1/+/heartbeat") as beats:
            for _ in range(20):  # publishing for a while, by what arrives, not by a clock
                beats.get(timeout=20)
        fleet.send_signal(signal.SIGINT)
        stdout, stderr = fleet.communicate(timeout=20)
    finally:
        if fleet.poll() is None:
            fleet.kill()
    assert fleet.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] is True
    assert summary["connections"] == 20
    assert summary["messages"] > 0
    assert summary["by_kind"]["heartbeat"] > 0
    assert summary["errors"] == {}
    # Each device had its own connection and says it is gone on the way out.
    with listening(mosquitto.port, "anxin/v1/+/status") as statuses:
        seen = wait_until(lambda: statuses.qsize() >= 20 or None, within_s=10)
        assert seen
        payloads = {statuses.get().payload for _ in range(20)}
    assert payloads == {b"offline"}


def test_a_multiplexed_fleet_publishes_over_a_few_connections(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    with listening(mosquitto.port, "anxin/v1/+/heartbeat") as beats:
        result = setup.cli(
            "simulate", "--devices", "30", "--models", "sos-pendant", "--connections", "2",
            "--rate", "30", "--duration", "3s", "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["connections"] == 2
        assert summary["errors"] == {}
        assert summary["interrupted"] is False
        assert 30 <= summary["messages"] <= 200
        assert beats.qsize() == summary["by_kind"]["heartbeat"]


def test_bad_options_and_files_are_one_clear_line(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    unknown = setup.cli("simulate", "--models", "sos-pendent", "--out", "x.jsonl")
    assert unknown.returncode == 2
    assert "unknown model(s) sos-pendent" in unknown.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"time": "2026-03-02T00:00:00Z", "topic": "a", "payload": "x"}\nnope\n')
    replayed = setup.cli("replay", str(bad), "--virtual")
    assert replayed.returncode == 2
    assert "bad.jsonl:2: payload: Invalid JSON" in replayed.stderr


def test_a_device_that_loses_its_link_gets_its_last_will_from_the_broker(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    scenario = tmp_path / "lost.yaml"
    scenario.write_text(
        "name: lost\nstart: 2026-03-02T09:00:00+08:00\nduration: 4m\ndevice_prefix: lost\n"
        "fleet:\n  - homes: 2\n    models: [sos-pendant]\n"
        "timeline:\n  - at: 2s\n    elder: 1\n    offline: {for: 3m}\n"
        "    expect: [{type: device_offline, alerts: 0}]\n",
        encoding="utf-8",
    )
    with listening(mosquitto.port, "anxin/v1/lost-00001-sos-pendant/status") as statuses:
        result = setup.cli("simulate", "--scenario", str(scenario), "--speed", "20", "--json")
        assert result.returncode == 0, result.stderr
        seen = [statuses.get(timeout=5).payload for _ in range(4)]
    # Connected; the will, published by the broker when the link died; back; gone at the end.
    assert seen == [b"online", b"offline", b"online", b"offline"]
    assert json.loads(result.stdout)["errors"] == {}


def test_ctrl_c_stops_record_with_its_summary(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    out = tmp_path / "recorded.jsonl"
    recorder = subprocess.Popen(
        [ANXIN, "record", "--out", str(out), "--topic", "anxin/v1/#"],
        env=dict(setup.env), cwd=setup.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert recorder.stderr is not None
        assert "recording anxin/v1/#" in recorder.stderr.readline()
        mosquitto_pub(mosquitto.port, "anxin/v1/rec-9/heartbeat", "{}", qos=1)
        wait_until(lambda: out.stat().st_size > 0 or None)
        recorder.send_signal(signal.SIGINT)
        stdout, _ = recorder.communicate(timeout=20)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0
    assert "1 messages (QoS 1: 1; 0 retained, 0 not UTF-8), 0 link changes" in stdout


def test_a_simulated_device_resends_an_unanswered_sos_with_its_seq_until_the_ack(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Nobody answers the first presses: they come again, same seq, every --sos-resend; once
    anxin's Ack `received` for that seq arrives, that press is sent no more."""
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    scenario = tmp_path / "resend.yaml"
    scenario.write_text(
        "name: resend\nstart: 2026-03-02T09:00:00+08:00\nduration: 6s\ndevice_prefix: rs\n"
        "fleet:\n  - homes: 1\n    models: [sos-pendant]\n"
        "timeline:\n  - at: 1s\n    elder: 1\n    sos: {}\n    expect: [{type: sos}]\n",
        encoding="utf-8",
    )
    device = "rs-00001-sos-pendant"
    with listening(mosquitto.port, f"anxin/v1/{device}/sos") as presses:
        simulate = subprocess.Popen(
            [ANXIN, "simulate", "--scenario", str(scenario), "--sos-resend", "0.5", "--json"],
            env=dict(setup.env), cwd=setup.folder, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        first = json.loads(presses.get(timeout=10).payload)
        again = json.loads(presses.get(timeout=5).payload)
        assert again["seq"] == first["seq"]
        ack = {"alert_id": 1, "status": "received", "message": "…", "seq": first["seq"]}
        mosquitto_pub(mosquitto.port, f"anxin/v1/{device}/ack", json.dumps(ack))
        out, _ = simulate.communicate(timeout=30)
    summary = json.loads(out)
    assert summary["sos"]["answered"] == 1
    assert summary["sos"]["unanswered"] == 0
    assert summary["sos"]["resent"] >= 1
    # After the Ack, at most the one resend already on its way when it came.
    assert presses.qsize() <= 1
