"""`anxin devices provision` against a real Mosquitto: what each account may and may not do."""

from __future__ import annotations

import csv
import queue
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from anxin.database import open_database, upgrade
from devices.provision import (
    ACL_FILE,
    DEVICE_CREDENTIALS,
    PASSWORD_FILE,
    PLATFORM_CREDENTIALS,
    parse_password_file,
    provision,
    verify_password,
)
from devices.registry import register_device
from tests.support.mosquitto import Mosquitto, running_mosquitto
from tests.support.service import AnxinEnv, anxin_env

WAIT_S = 5.0
QUIET_S = 0.3  # how long "nothing more arrives" is watched, after a later message did arrive
PLATFORM = "anxin"
PLATFORM_PASSWORD = "platform password of the tests"
A, B = "pendant-a", "pendant-b"
NOT_AUTHORIZED = 135  # MQTT 5 reason code


# --- a Mosquitto that authenticates and authorises with the provisioned files ---------------


@contextmanager
def secured_mosquitto(folder: Path, files: Path, *extra: str) -> Iterator[Mosquitto]:
    """Mosquitto on a free port with ``files``' password file and ACL, nobody anonymous."""
    settings = [
        "allow_anonymous false",
        f"password_file {files / PASSWORD_FILE}",
        f"acl_file {files / ACL_FILE}",
        *extra,
    ]
    with running_mosquitto(folder, settings) as broker:
        yield broker


# --- paho clients with bounded waits ---------------------------------------------------------


class Client:
    """A connected MQTT 5 client: subscribe and publish wait for the broker's answer."""

    def __init__(self, port: int, username: str | None, password: str | None, client_id: str):
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()
        self.connacks: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._pubacks: dict[int, ReasonCode] = {}
        self._published = threading.Condition()
        self.paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username is not None:
            self.paho.username_pw_set(username, password)
        self.paho.on_connect = lambda _c, _u, _f, code, _p: self.connacks.put(code)
        self.paho.on_subscribe = lambda _c, _u, _mid, codes, _p: self._subacks.put(codes)
        self.paho.on_publish = self._on_publish
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_disconnect = lambda *_: self.disconnected.set()
        self.port = port

    def _on_publish(
        self, _c: paho.Client, _u: object, mid: int, code: ReasonCode, _p: object
    ) -> None:
        with self._published:
            self._pubacks[mid] = code
            self._published.notify_all()

    def connect(self, clean_start: bool = True, session_expiry_s: int = 0) -> ReasonCode:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry_s
        self.paho.connect(
            "127.0.0.1", self.port, keepalive=30, clean_start=clean_start, properties=properties
        )
        self.paho.loop_start()
        return self.connacks.get(timeout=WAIT_S)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def subscribe(self, topic: str) -> ReasonCode:
        self.paho.subscribe(topic, qos=1)
        (code,) = self._subacks.get(timeout=WAIT_S)
        return code

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> ReasonCode:
        """The PUBACK's reason code (QoS 1); for QoS 0, Success once it is sent."""
        info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        with self._published:
            if not self._published.wait_for(lambda: info.mid in self._pubacks, timeout=WAIT_S):
                raise TimeoutError(f"no PUBACK for {topic} after {WAIT_S} s")
            return self._pubacks.pop(info.mid)

    def next_message(self) -> paho.MQTTMessage:
        return self.messages.get(timeout=WAIT_S)

    def nothing_more(self) -> bool:
        try:
            extra = self.messages.get(timeout=QUIET_S)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {extra.topic}: {extra.payload!r}")


@contextmanager
def connected(
    port: int,
    username: str,
    password: str,
    client_id: str | None = None,
    clean_start: bool = True,
    session_expiry_s: int = 0,
) -> Iterator[Client]:
    client = Client(port, username, password, client_id or f"test-{username}")
    try:
        code = client.connect(clean_start, session_expiry_s)
        assert not code.is_failure, f"{username} refused: {code}"
        yield client
    finally:
        client.close()


def connack(port: int, username: str | None, password: str | None) -> ReasonCode:
    """The broker's answer to a CONNECT; the network loop runs here, so no retry follows."""
    client = Client(port, username, password, "test-connack")
    client.paho.connect("127.0.0.1", port, keepalive=30)
    deadline = time.monotonic() + WAIT_S
    try:
        while client.connacks.empty():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no CONNACK after {WAIT_S} s")
            client.paho.loop(timeout=0.05)
        return client.connacks.get_nowait()
    finally:
        client.paho.disconnect()


def read_csv(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["device_id"]: row["password"] for row in csv.DictReader(handle)}


# --- the fleet: two devices and the platform, provisioned through the Python API ------------


@dataclass(frozen=True)
class Fleet:
    port: int
    passwords: dict[str, str]

    def device(
        self, device_id: str, client_id: str | None = None
    ) -> AbstractContextManager[Client]:
        return connected(self.port, device_id, self.passwords[device_id], client_id)

    def platform(self, client_id: str = "anxin-test") -> AbstractContextManager[Client]:
        return connected(self.port, PLATFORM, PLATFORM_PASSWORD, client_id)


@contextmanager
def fleet_on_broker(tmp_path: Path, *extra: str) -> Iterator[Fleet]:
    files = tmp_path / "broker-files"
    provision(files, [A, B], platform_user=PLATFORM, platform_password=PLATFORM_PASSWORD)
    passwords = read_csv(files / DEVICE_CREDENTIALS)
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    with secured_mosquitto(folder, files, *extra) as broker:
        yield Fleet(port=broker.port, passwords=passwords)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with fleet_on_broker(tmp_path) as running:
        yield running


def test_a_device_publishes_its_own_uplinks_and_the_platform_receives_them(fleet: Fleet) -> None:
    with fleet.platform() as platform, fleet.device(A) as device:
        for kind in ("sos", "heartbeat", "status"):
            assert not platform.subscribe(f"anxin/v1/+/{kind}").is_failure
        sos = device.publish(f"anxin/v1/{A}/sos", b'{"trigger": "button"}')
        heartbeat = device.publish(f"anxin/v1/{A}/heartbeat", b"{}", qos=0)
        status = device.publish(f"anxin/v1/{A}/status", b"online", retain=True)
        received = [platform.next_message() for _ in range(3)]

    assert sos.value == 0
    assert status.value == 0
    assert not heartbeat.is_failure
    assert [(m.topic, m.payload) for m in received] == [
        (f"anxin/v1/{A}/sos", b'{"trigger": "button"}'),
        (f"anxin/v1/{A}/heartbeat", b"{}"),
        (f"anxin/v1/{A}/status", b"online"),
    ]


@pytest.mark.parametrize(("owner", "delivered"), [(A, True), (B, False)])
def test_a_device_leaves_its_last_will_only_on_its_own_status(
    fleet: Fleet, owner: str, delivered: bool
) -> None:
    with fleet.platform() as platform:
        assert not platform.subscribe("anxin/v1/+/status").is_failure
        device = Client(fleet.port, A, fleet.passwords[A], "test-will")
        device.paho.will_set(f"anxin/v1/{owner}/status", b"offline", qos=1, retain=True)
        code = device.connect()
        # MQTT 5 "disconnect with will message": the broker publishes the will as if the link
        # had dropped.
        device.paho.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        device.paho.loop_stop()
        if delivered:
            assert not code.is_failure
            will = platform.next_message()
            assert (will.topic, will.payload) == (f"anxin/v1/{A}/status", b"offline")
        else:
            # Refused at CONNECT or accepted and never published: either way nobody sees it.
            assert platform.nothing_more()


def test_the_platform_may_read_uplinks_through_a_shared_subscription(fleet: Fleet) -> None:
    with fleet.platform() as platform, fleet.device(A) as device:
        assert not platform.subscribe("$share/anxin/anxin/v1/+/sos").is_failure
        assert device.publish(f"anxin/v1/{A}/sos", b"{}").value == 0
        message = platform.next_message()
    assert message.topic == f"anxin/v1/{A}/sos"


def test_a_device_cannot_raise_an_sos_as_another_device(fleet: Fleet) -> None:
    with fleet.platform() as platform, fleet.device(A) as device:
        assert not platform.subscribe("anxin/v1/+/sos").is_failure
        forged = device.publish(f"anxin/v1/{B}/sos", b'{"forged": true}')
        own = device.publish(f"anxin/v1/{A}/sos", b'{"own": true}')
        # Both went over one connection in this order: a delivered forgery would come first.
        first = platform.next_message()
        assert platform.nothing_more()

    assert forged.value == NOT_AUTHORIZED, forged
    assert own.value == 0
    assert (first.topic, first.payload) == (f"anxin/v1/{A}/sos", b'{"own": true}')


@pytest.mark.parametrize(
    "topic",
    [
        f"anxin/v1/{B}/heartbeat",
        f"anxin/v1/{B}/status",
        f"anxin/v1/{A}/ack",  # a device writes no downlink, not even its own
        f"anxin/v1/{B}/ack",
        f"anxin/v1/{B}/cmd",
        f"anxin/v1/{A}/other",
        "zigbee2mqtt/kitchen",
    ],
)
def test_a_device_may_publish_nowhere_else(fleet: Fleet, topic: str) -> None:
    with fleet.device(A) as device:
        assert device.publish(topic, b"{}").value == NOT_AUTHORIZED


def test_a_forged_ack_never_reaches_the_device(fleet: Fleet) -> None:
    with fleet.platform() as platform, fleet.device(A) as a, fleet.device(B) as b:
        assert not b.subscribe(f"anxin/v1/{B}/ack").is_failure
        assert a.publish(f"anxin/v1/{B}/ack", b'{"status": "help_coming"}').value == NOT_AUTHORIZED
        assert platform.publish(f"anxin/v1/{B}/ack", b'{"status": "received"}').value == 0
        first = b.next_message()
        assert b.nothing_more()
    assert first.payload == b'{"status": "received"}'


@pytest.mark.parametrize("topic", [f"anxin/v1/{B}/ack", "anxin/v1/+/ack", "anxin/v1/#", "#"])
def test_a_device_reads_no_other_devices_downlinks(fleet: Fleet, topic: str) -> None:
    with fleet.platform() as platform, fleet.device(A) as device:
        granted = device.subscribe(topic)
        assert not device.subscribe(f"anxin/v1/{A}/ack").is_failure
        assert not platform.publish(f"anxin/v1/{B}/ack", b'{"to": "b"}').is_failure
        assert not platform.publish(f"anxin/v1/{B}/cmd", b'{"to": "b"}').is_failure
        assert platform.publish(f"anxin/v1/{A}/ack", b'{"to": "a"}').value == 0
        received = [device.next_message()]
        # Overlapping subscriptions may bring A's own ack twice; nothing else may come.
        while True:
            try:
                received.append(device.messages.get(timeout=QUIET_S))
            except queue.Empty:
                break
    # Mosquitto 2.0 grants the subscription and withholds the messages; a refusal is fine too.
    assert granted.is_failure or granted.value <= 1
    assert {(m.topic, m.payload) for m in received} == {(f"anxin/v1/{A}/ack", b'{"to": "a"}')}


def test_a_device_reads_no_uplinks_of_others(fleet: Fleet) -> None:
    with fleet.device(A) as a, fleet.device(B) as b:
        a.subscribe(f"anxin/v1/{B}/sos")
        a.subscribe(f"anxin/v1/{A}/ack")
        assert not b.publish(f"anxin/v1/{B}/sos", b"{}").is_failure
        assert a.nothing_more()


def test_the_platform_acknowledges_a_device_and_it_receives_the_ack(fleet: Fleet) -> None:
    with fleet.platform() as platform, fleet.device(A) as device:
        assert not device.subscribe(f"anxin/v1/{A}/ack").is_failure
        assert not device.subscribe(f"anxin/v1/{A}/cmd").is_failure
        ack = platform.publish(f"anxin/v1/{A}/ack", b'{"status": "help_coming"}')
        command = platform.publish(f"anxin/v1/{A}/cmd", b'{"command": "ping"}')
        received = [device.next_message(), device.next_message()]
    assert (ack.value, command.value) == (0, 0)
    assert [(m.topic, m.payload) for m in received] == [
        (f"anxin/v1/{A}/ack", b'{"status": "help_coming"}'),
        (f"anxin/v1/{A}/cmd", b'{"command": "ping"}'),
    ]


@pytest.mark.parametrize("device_id", [A, PLATFORM])
def test_the_platform_cannot_publish_uplinks(fleet: Fleet, device_id: str) -> None:
    """Not even as a device named like its account, which the devices' patterns would allow."""
    with fleet.platform() as platform:
        for kind in ("sos", "heartbeat", "status"):
            topic = f"anxin/v1/{device_id}/{kind}"
            assert platform.publish(topic, b"{}").value == NOT_AUTHORIZED, topic


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (A, "not the password"),
        (A, None),
        (A, "B's password"),
        ("someone-else", "whatever it is"),
        (None, None),  # anonymous
    ],
)
def test_a_wrong_password_is_refused_at_connect(
    fleet: Fleet, username: str | None, password: str | None
) -> None:
    if password == "B's password":
        password = fleet.passwords[B]
    code = connack(fleet.port, username, password)
    assert code.is_failure
    assert code.value in (134, 135)  # bad user name or password / not authorized


@pytest.mark.parametrize(("username_as_client_id", "kicked"), [(True, False), (False, True)])
def test_use_username_as_clientid_keeps_a_device_from_taking_the_platforms_client_id(
    tmp_path: Path, username_as_client_id: bool, kicked: bool
) -> None:
    extra = ["use_username_as_clientid true"] if username_as_client_id else []
    with (
        fleet_on_broker(tmp_path, *extra) as running,
        running.platform(client_id="anxin-prod-1") as platform,
        running.device(A, client_id="anxin-prod-1"),
    ):
        # Without the option, Mosquitto hands the client id to the newcomer, whoever it is.
        assert platform.disconnected.wait(timeout=1.0) is kicked


def test_with_use_username_as_clientid_a_device_cannot_discard_the_platforms_queued_sos(
    tmp_path: Path,
) -> None:
    """Without the option, a device connecting under the platform's client id while ingest is
    away resumes the platform's session, and the queued SOS, which it may not read, is lost."""
    ingest_id = "anxin-prod-1"
    with fleet_on_broker(tmp_path, "use_username_as_clientid true") as running:
        platform = partial(connected, running.port, PLATFORM, PLATFORM_PASSWORD, ingest_id)
        with platform(session_expiry_s=3600) as ingest:
            assert not ingest.subscribe("anxin/v1/+/sos").is_failure
        with running.device(B) as device:
            assert device.publish(f"anxin/v1/{B}/sos", b"{}").value == 0  # queued for ingest
        for clean_start in (False, True):
            with connected(
                running.port, A, running.passwords[A], ingest_id, clean_start, 3600
            ) as intruder:
                assert not intruder.disconnected.is_set()
        with platform(clean_start=False, session_expiry_s=3600) as ingest:
            assert ingest.next_message().topic == f"anxin/v1/{B}/sos"


def test_after_a_rerun_and_a_reload_removed_and_rotated_accounts_are_shut_out(
    tmp_path: Path,
) -> None:
    files = tmp_path / "broker-files"
    provision(files, [A, B, "pendant-c"], platform_password=PLATFORM_PASSWORD)
    before = read_csv(files / DEVICE_CREDENTIALS)
    (tmp_path / "mosquitto").mkdir()
    with (
        secured_mosquitto(tmp_path / "mosquitto", files) as broker,
        connected(broker.port, A, before[A]) as kept,
        connected(broker.port, B, before[B]) as removed,
    ):
        provision(files, [A, "pendant-c"])  # B is no longer registered
        broker.reload()
        assert removed.disconnected.wait(timeout=WAIT_S)  # Mosquitto checks who is connected
        assert not kept.disconnected.is_set()
        assert connack(broker.port, B, before[B]).is_failure

        provision(files, [A, "pendant-c"], rotate=True)
        after = read_csv(files / DEVICE_CREDENTIALS)
        broker.reload()
        assert kept.disconnected.wait(timeout=WAIT_S)  # its password changed
        assert connack(broker.port, A, before[A]).is_failure
        assert not connack(broker.port, A, after[A]).is_failure
        # The platform kept its password through both runs.
        assert not connack(broker.port, PLATFORM, PLATFORM_PASSWORD).is_failure


# --- the hash format, checked against Debian's mosquitto_passwd ----------------------------


def test_the_hashes_of_mosquitto_passwd_verify(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), "someone", "a password"],
        check=True,
        timeout=10,
        capture_output=True,
    )
    hashed = parse_password_file(path.read_text())["someone"]
    assert hashed.startswith("$7$101$")
    assert verify_password("a password", hashed)
    assert not verify_password("another password", hashed)


# --- the command line ------------------------------------------------------------------------


def register(setup: AnxinEnv, *device_ids: str) -> None:
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        for device_id in device_ids:
            register_device(session, device_id, "sos-pendant")
    engine.dispose()


def test_the_cli_writes_the_files_for_registered_devices_and_a_rerun_keeps_passwords(
    tmp_path: Path,
) -> None:
    setup = anxin_env(tmp_path / "anxin")
    register(setup, "pendant-1", "pendant-2")
    out = tmp_path / "broker-files"

    first = setup.cli(
        "devices", "provision", "--out", str(out), "--platform-password-stdin",
        stdin=PLATFORM_PASSWORD + "\n",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    for name in (PASSWORD_FILE, ACL_FILE, DEVICE_CREDENTIALS):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert not (out / PLATFORM_CREDENTIALS).exists()  # the operator knows that password
    passwords = read_csv(out / DEVICE_CREDENTIALS)
    hashes = parse_password_file((out / PASSWORD_FILE).read_text())
    assert sorted(passwords) == ["pendant-1", "pendant-2"]
    assert sorted(hashes) == ["anxin", "pendant-1", "pendant-2"]
    assert verify_password(PLATFORM_PASSWORD, hashes["anxin"])
    assert all(verify_password(passwords[d], hashes[d]) for d in passwords)
    acl = (out / ACL_FILE).read_text()
    assert "pattern write anxin/v1/%u/heartbeat\n" in acl
    assert "topic read zigbee2mqtt/#\n" in acl  # what ingest subscribes to by default
    assert f"password_file at {out / PASSWORD_FILE}" in first.stdout
    assert "reload" in first.stdout
    for secret in (*passwords.values(), PLATFORM_PASSWORD):
        assert secret not in first.stdout + first.stderr

    register(setup, "pendant-3")
    again = setup.cli("devices", "provision", "--out", str(out))
    assert again.returncode == 0, again.stderr
    kept = read_csv(out / DEVICE_CREDENTIALS)
    rehashed = parse_password_file((out / PASSWORD_FILE).read_text())
    assert {d: kept[d] for d in passwords} == passwords
    assert kept["pendant-3"] not in passwords.values()
    assert rehashed["anxin"] == hashes["anxin"]  # the platform keeps its password
    assert "3 devices: 1 new passwords, 2 kept" in again.stdout
    assert "platform account anxin: password kept" in again.stdout

    # The broker takes what the command line wrote.
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    with (
        secured_mosquitto(folder, out) as broker,
        connected(broker.port, PLATFORM, PLATFORM_PASSWORD) as platform,
        connected(broker.port, "pendant-3", kept["pendant-3"]) as device,
    ):
        assert not platform.subscribe("anxin/v1/+/sos").is_failure
        assert device.publish("anxin/v1/pendant-3/sos", b"{}").value == 0
        assert platform.next_message().topic == "anxin/v1/pendant-3/sos"

    rotated = setup.cli("devices", "provision", "--out", str(out), "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    fresh = read_csv(out / DEVICE_CREDENTIALS)
    assert sorted(fresh) == sorted(kept)
    assert all(fresh[d] != kept[d] for d in kept)
    assert parse_password_file((out / PASSWORD_FILE).read_text())["anxin"] == hashes["anxin"]


def test_the_cli_generates_the_platform_password_apart_from_the_devices(tmp_path: Path) -> None:
    setup = anxin_env(
        tmp_path / "anxin", ANXIN_MQTT_TOPIC_PREFIX="care/v2", ANXIN_ZIGBEE2MQTT_BASE_TOPIC=""
    )
    register(setup, "pendant-1")
    out = tmp_path / "broker-files"

    result = setup.cli("devices", "provision", "--out", str(out), "--platform-user", "anxin-prod")
    assert result.returncode == 0, result.stderr
    platform_file = out / PLATFORM_CREDENTIALS
    assert stat.S_IMODE(platform_file.stat().st_mode) == 0o600
    with platform_file.open(newline="") as handle:
        ((username, password),) = [tuple(row) for row in csv.reader(handle)][1:]
    assert username == "anxin-prod"
    assert verify_password(
        password, parse_password_file((out / PASSWORD_FILE).read_text())[username]
    )
    assert password not in (out / DEVICE_CREDENTIALS).read_text()
    assert password not in result.stdout + result.stderr
    acl = (out / ACL_FILE).read_text()
    assert (
        "user anxin-prod\ntopic deny care/v2/anxin-prod/#\ntopic read care/v2/+/heartbeat\n" in acl
    )
    assert "pattern write care/v2/%u/sos\n" in acl
    assert "zigbee2mqtt" not in acl  # switched off

    # A password given later replaces the generated one, whose file would now be wrong.
    given = setup.cli(
        "devices", "provision", "--out", str(out), "--platform-user", "anxin-prod",
        "--platform-password-stdin", stdin=PLATFORM_PASSWORD,
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    assert not platform_file.exists()


def test_the_cli_refuses_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    register(setup, "pendant-1")
    out = tmp_path / "broker-files"
    for args, stdin, expected in [
        (["--platform-user", "pendant-1"], None, "is also a registered device id"),
        (["--platform-user", "an xin"], None, "platform user 'an xin'"),
        (["--platform-password-stdin"], "short\n", "at least 16 characters"),
    ]:
        result = setup.cli("devices", "provision", "--out", str(out), *args, stdin=stdin)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("anxin: ")
        assert expected in lines[0]
        assert not out.exists()


def test_the_cli_skips_ids_that_cannot_be_mqtt_accounts(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    register(setup, "pendant-1", "bad/id+#")
    out = tmp_path / "broker-files"
    result = setup.cli("devices", "provision", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "'bad/id+#'" in result.stderr
    assert "bad" not in (out / ACL_FILE).read_text()
    assert sorted(parse_password_file((out / PASSWORD_FILE).read_text())) == ["anxin", "pendant-1"]
