"""``anxin gateway watch`` against a real Mosquitto and a real ``anxin serve``: a watch's SOS
becomes an alert with its location, the AL reply comes only once the alert is stored, and a
watch's resend after the gateway or the broker was killed lands once."""

from __future__ import annotations

import json
import signal
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulators.bench_broker import BenchBroker, running_broker
from tests.integration.test_sos_path import PASSWORD, alert_of, register
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until
from tests.support.watch import WatchSocket, alarm_content, gateway_metric, running_gateway

pytestmark = pytest.mark.integration
WATCH = "8800000015"
SOS = "00010000"


def world(tmp_path: Path, broker_url: str) -> tuple[AnxinEnv, int, int]:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=broker_url)
    setup.add_user("dispatcher1", PASSWORD)
    register(setup, WATCH, "watch-4g")
    return setup, free_port(), free_port()


def _message(watch: WatchSocket) -> bytes | None:
    return next((f for f in watch.received if b"*MESSAGE," in f), None)


def test_sos_is_answered_only_once_stored_and_a_resend_after_the_gateway_died_lands_once(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup, listen, health = world(tmp_path, mosquitto.url)
    alarm = alarm_content(SOS)
    with running_anxin(setup):  # ingest's persistent session at the broker exists from here
        pass
    with running_gateway(setup, listen, ANXIN_API_PORT=str(health)) as gateway:
        watch = WatchSocket(listen, WATCH)
        watch.send("LK,50,100,95")
        watch.wait_for(b"LK", within_s=5)  # the broker PUBACKed the heartbeat
        watch.send(alarm)
        # anxin is down: nothing stores the SOS, so no AL, however often the watch asks; the
        # resends join the one wait rather than publish again.
        with pytest.raises(TimeoutError):
            watch.wait_for(b"AL", within_s=2.5, resend=lambda: watch.send(alarm))
        assert gateway_metric(health, "anxin_gateway_acks_waiting") == 1
        assert gateway_metric(health, "anxin_watch_alarm_repeats_total") >= 1
        gateway.send_signal(signal.SIGKILL)  # published, PUBACKed, not yet stored: killed
        gateway.wait()
        watch.close()
    with running_anxin(setup):
        token = setup.token("dispatcher1", PASSWORD)
        # The SOS was safe at the broker: anxin stores it although its gateway died.
        first = wait_until(lambda: alert_of(setup, token, WATCH), 15)
        with running_gateway(setup, listen, ANXIN_API_PORT=str(health)):
            watch = WatchSocket(listen, WATCH)  # the watch reconnects and sends its AL again
            watch.send(alarm)
            answered_at = watch.wait_for(b"AL", within_s=15, resend=lambda: watch.send(alarm))
            # The Ack's text reaches the watch's screen as MESSAGE (UTF-16BE hex).
            message = wait_until(lambda: (watch.read(0.2) and None) or _message(watch), 10)
            watch.close()
        alert = alert_of(setup, token, WATCH)
    assert alert is not None
    assert alert["id"] == first["id"]
    assert alert["count"] == 1  # the resend is the same press (same seq)
    assert alert["type"] == "sos"
    assert alert["location"]["lat"] == pytest.approx(22.570512)
    assert alert["location"]["lon"] == pytest.approx(113.8623267)
    assert alert["attributes"]["trigger"] == "watch"
    created = datetime.fromisoformat(alert["created_at"].replace("Z", "+00:00"))
    assert created.timestamp() <= answered_at  # stored, then answered
    text = bytes.fromhex(message.rstrip(b"]").split(b",", 1)[1].decode()).decode("utf-16-be")
    assert text.startswith("已收到您的呼叫")


def test_broker_killed_between_press_and_reply_the_resend_lands_once(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    folder.mkdir()
    persistent = ["persistence true", f"persistence_location {folder}/"]
    broker_stack = ExitStack()
    broker: BenchBroker = broker_stack.enter_context(running_broker(folder, settings=persistent))
    setup, listen, health = world(tmp_path, broker.url)
    alarm = alarm_content(SOS)
    try:
        with running_anxin(setup), running_gateway(setup, listen, ANXIN_API_PORT=str(health)):
            watch = WatchSocket(listen, WATCH)
            watch.send("LK")
            watch.wait_for(b"LK", within_s=5)
            broker_stack.close()  # the broker dies
            wait_until(
                lambda: gateway_metric(health, "anxin_gateway_broker_connected") == 0 or None, 10
            )
            watch.send(alarm)
            # Nothing can be safe now: no AL, the watch keeps sending it.
            with pytest.raises(TimeoutError):
                watch.wait_for(b"AL", within_s=2, resend=lambda: watch.send(alarm))
            broker_stack = ExitStack()
            broker_stack.enter_context(
                running_broker(folder, port=broker.port, settings=persistent)
            )
            watch.wait_for(b"AL", within_s=40, resend=lambda: watch.send(alarm))
            watch.close()
            token = setup.token("dispatcher1", PASSWORD)
            alert = alert_of(setup, token, WATCH)
    finally:
        broker_stack.close()
    assert alert is not None
    assert alert["count"] == 1
    assert json.dumps(alert["attributes"]).count('"trigger"') == 1
    assert alert["occurred_at"].startswith(datetime.now(UTC).strftime("%Y-%m-%d"))


def test_configuration_errors_are_one_line(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    missing = setup.cli("gateway", "watch")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "anxin: configuration error: anxin gateway watch needs ANXIN_WATCH_MQTT_URL"
        " (its broker account)"
    )
    bad = anxin_env(tmp_path / "bad", ANXIN_WATCH_LISTEN="5900").cli("gateway", "watch")
    assert bad.returncode == 2
    assert "ANXIN_WATCH_LISTEN='5900': '5900' is not host:port" in bad.stderr
