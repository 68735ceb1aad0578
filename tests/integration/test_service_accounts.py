"""The service accounts `anxin devices provision` writes, on a real Mosquitto with the two
listeners of deploy/mosquitto.conf: the devices' (client id = username) and the platform's
(its own password file and ACL, client ids kept).

An ingest member can resume a dead member's session under that member's client id with its
own account (the takeover of ingest/takeover.py), and gets what was queued there; a device
cannot sign in on the platform listener; a gateway writes uplinks and reads downlinks only; an
API replica's account writes downlinks only."""

from __future__ import annotations

import csv
import getpass
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.provision import DEVICE_CREDENTIALS, provision
from devices.service_accounts import (
    PLATFORM_ACL_FILE,
    PLATFORM_PASSWORD_FILE,
    SERVICE_CREDENTIALS,
    ServiceAccount,
    ServiceRole,
)
from simulators.bench_broker import free_port, mosquitto_binary
from tests.integration.test_provision import NOT_AUTHORIZED, connack, connected
from tests.support.ports import wait_for_port

pytestmark = pytest.mark.integration

DEVICE = "pendant-a"
ACCOUNTS = [
    ServiceAccount(username="anxin-ingest-1", role=ServiceRole.MEMBER),
    ServiceAccount(username="anxin-ingest-2", role=ServiceRole.MEMBER),
    ServiceAccount(username="anxin-api-1", role=ServiceRole.API),
    ServiceAccount(username="anxin-gw-watch", role=ServiceRole.GATEWAY),
]
SOS = f"anxin/v1/{DEVICE}/sos"


@dataclass(frozen=True)
class Broker:
    devices_port: int
    platform_port: int
    passwords: dict[str, str]


@contextmanager
def two_listeners(tmp_path: Path) -> Iterator[Broker]:
    files = tmp_path / "files"
    provision(files, [DEVICE], platform_user="anxin", services=ACCOUNTS)
    with (files / DEVICE_CREDENTIALS).open(newline="") as handle:
        passwords = {row["device_id"]: row["password"] for row in csv.DictReader(handle)}
    with (files / SERVICE_CREDENTIALS).open(newline="") as handle:
        passwords |= {row["username"]: row["password"] for row in csv.DictReader(handle)}
    devices_port, platform_port = free_port(), free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                "per_listener_settings true",
                f"user {getpass.getuser()}",
                "persistence false",
                "max_queued_messages 1000",
                f"log_dest file {tmp_path / 'mosquitto.log'}",
                f"listener {devices_port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {files / 'passwd'}",
                f"acl_file {files / 'acl'}",
                "use_username_as_clientid true",
                f"listener {platform_port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {files / PLATFORM_PASSWORD_FILE}",
                f"acl_file {files / PLATFORM_ACL_FILE}",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(devices_port)
        wait_for_port(platform_port)
        yield Broker(devices_port, platform_port, passwords)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with two_listeners(tmp_path) as running:
        yield running


def test_a_member_drains_a_dead_members_session_with_its_own_account(broker: Broker) -> None:
    group = f"$share/anxin/{SOS}"
    # Member 2 subscribes in a persistent session, then dies (gone, its session kept).
    with connected(
        broker.platform_port,
        "anxin-ingest-2",
        broker.passwords["anxin-ingest-2"],
        client_id="anxin.ingest-2",
        clean_start=False,
        session_expiry_s=3600,
    ) as member_2:
        assert not member_2.subscribe(group).is_failure
    with connected(broker.devices_port, DEVICE, broker.passwords[DEVICE]) as device:
        assert not device.publish(SOS, b'{"seq": 1}').is_failure
    # Member 1, its own account, member 2's client id: the queued SOS comes to it.
    with connected(
        broker.platform_port,
        "anxin-ingest-1",
        broker.passwords["anxin-ingest-1"],
        client_id="anxin.ingest-2",
        clean_start=False,
        session_expiry_s=3600,
    ) as member_1:
        queued = member_1.next_message()
        assert (queued.topic, queued.payload) == (SOS, b'{"seq": 1}')
        # And it may answer the device.
        assert not member_1.publish(f"anxin/v1/{DEVICE}/ack", b"{}").is_failure


def test_nobody_but_the_platform_signs_in_on_the_platform_listener(broker: Broker) -> None:
    assert connack(broker.platform_port, DEVICE, broker.passwords[DEVICE]).value == NOT_AUTHORIZED
    gateway = broker.passwords["anxin-gw-watch"]
    assert connack(broker.platform_port, "anxin-gw-watch", gateway).value == NOT_AUTHORIZED
    # …and the members are not accounts of the devices' listener.
    member = broker.passwords["anxin-ingest-1"]
    assert connack(broker.devices_port, "anxin-ingest-1", member).value == NOT_AUTHORIZED


def test_a_gateway_writes_uplinks_and_reads_downlinks_only(broker: Broker) -> None:
    with (
        connected(
            broker.platform_port, "anxin-ingest-1", broker.passwords["anxin-ingest-1"]
        ) as member,
        connected(
            broker.devices_port, "anxin-gw-watch", broker.passwords["anxin-gw-watch"]
        ) as gateway,
    ):
        assert not member.subscribe("anxin/v1/+/sos").is_failure
        assert not gateway.subscribe("anxin/v1/+/ack").is_failure
        # Mosquitto grants the subscription but delivers nothing the ACL forbids.
        gateway.subscribe("anxin/v1/+/sos")
        assert not gateway.publish("anxin/v1/watch-9/sos", b'{"seq": 2}').is_failure
        assert member.next_message().topic == "anxin/v1/watch-9/sos"
        assert gateway.publish("anxin/v1/watch-9/ack", b"{}").value == NOT_AUTHORIZED
        assert member.publish("anxin/v1/watch-9/ack", b"{}").value == 0
        assert gateway.next_message().topic == "anxin/v1/watch-9/ack"
        assert gateway.nothing_more()


def test_an_api_replica_writes_downlinks_and_reads_nothing(broker: Broker) -> None:
    with (
        connected(broker.devices_port, DEVICE, broker.passwords[DEVICE]) as device,
        connected(broker.platform_port, "anxin-api-1", broker.passwords["anxin-api-1"]) as api,
    ):
        assert not device.subscribe(f"anxin/v1/{DEVICE}/cmd").is_failure
        api.subscribe("anxin/v1/+/sos")
        assert not api.publish(f"anxin/v1/{DEVICE}/cmd", b"{}").is_failure
        assert device.next_message().topic == f"anxin/v1/{DEVICE}/cmd"
        assert api.publish(SOS, b"{}").value == NOT_AUTHORIZED
        assert not device.publish(SOS, b"{}").is_failure
        assert api.nothing_more()
