"""deploy/: what ships is what runs.

- compose.yaml: `docker compose config` accepts it (when Docker's compose is here), and its
  services are the ones docs/operations.md describes, each anxin process restarted when it dies;
- the systemd units: `Restart=always`, the shared EnvironmentFile, an `anxin` command that
  exists; `systemd-analyze verify` finds nothing to say (when it is here);
- mosquitto.conf: Debian's Mosquitto starts on it as shipped (paths moved to a temporary
  folder): devices over TLS and the platform on its own listener, and what was queued for an
  absent ingest member survives the broker's own kill -9.
"""

from __future__ import annotations

import configparser
import getpass
import queue
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import typer
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from anxin.cli import app as cli_app
from devices.provision import DEVICE_CREDENTIALS, provision
from devices.service_accounts import SERVICE_CREDENTIALS, ServiceAccount, ServiceRole
from simulators.bench_broker import free_port, mosquitto_binary
from tests.integration.test_provision import connected
from tests.support.ports import wait_for_port
from tests.support.service import ANXIN

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ANXIN_SERVICES = {
    "migrate",
    "ingest-1",
    "ingest-2",
    "scheduler",
    "api-1",
    "api-2",
    "gateway-watch",
    "gateway-dc09",
}
SERVICES = ANXIN_SERVICES | {
    "mosquitto",
    "postgres",
    "influxdb",
    "proxy",
    "prometheus",
    "grafana",
}
# Bind mounts the operator provides (never committed).
OPERATOR_FILES = {"mosquitto/accounts", "mosquitto/certs", "dc09-accounts.toml"}


# --- compose.yaml ----------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin), else Debian's `docker-compose`; None when neither."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def _check_services(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES
    for name in ANXIN_SERVICES:
        expected = "no" if name == "migrate" else "always"
        assert str(services[name]["restart"]) == expected, name
    members = [services["ingest-1"]["environment"], services["ingest-2"]["environment"]]
    assert members[0]["ANXIN_MQTT_CLIENT_ID"] != members[1]["ANXIN_MQTT_CLIENT_ID"]
    assert {m["ANXIN_MQTT_SHARED_GROUP"] for m in members} == {"anxin"}
    # The members and API replicas on the platform listener; the gateways beside the devices.
    for name in ("ingest-1", "ingest-2"):
        assert "@mosquitto:1884" in services[name]["environment"]["ANXIN_MQTT_URL"]
    for name in ("api-1", "api-2"):
        assert "@mosquitto:1884" in services[name]["environment"]["ANXIN_MQTT_DOWNLINK_URL"]
    assert "@mosquitto:1883" in services["gateway-watch"]["environment"]["ANXIN_WATCH_MQTT_URL"]
    assert "@mosquitto:1883" in services["gateway-dc09"]["environment"]["ANXIN_DC09_MQTT_URL"]
    published = " ".join(str(p) for p in services["mosquitto"]["ports"])
    assert "8883" in published
    assert "1884" not in published


def test_compose_yaml_holds_the_city_and_its_files_exist() -> None:
    """Without Docker: the file as YAML, and every file it mounts from the repository."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    _check_services(compose["services"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith("./"):
                continue  # a named volume
            relative = source.removeprefix("./")
            if relative in OPERATOR_FILES:
                continue
            assert (DEPLOY / relative).exists(), f"{name} mounts {source}, which is not there"
    assert (DEPLOY / "Dockerfile").exists()


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no `docker compose` nor `docker-compose` on PATH")
    compose = str(DEPLOY / "compose.yaml")
    checked = subprocess.run(
        [*command, "--env-file", str(DEPLOY / "env.example"), "-f", compose, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    _check_services(yaml.safe_load(checked.stdout)["services"])
    if not (DEPLOY / ".env").exists():
        # Without the secrets it refuses, and says which.
        empty = tmp_path / "empty.env"
        empty.write_text("")
        refused = subprocess.run(
            [*command, "--env-file", str(empty), "-f", compose, "config"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert refused.returncode != 0
        assert "in deploy/.env" in refused.stderr


# --- systemd ---------------------------------------------------------------------------------

UNITS = {
    "anxin-ingest@.service": "ingest",
    "anxin-scheduler.service": "scheduler",
    "anxin-api@.service": "api",
    "anxin-gateway-watch.service": "gateway watch",
    "anxin-gateway-dc09.service": "gateway dc09",
}


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize(("name", "command"), UNITS.items())
def test_each_unit_restarts_always_and_runs_an_anxin_command(name: str, command: str) -> None:
    unit = _unit(DEPLOY / "systemd" / name)
    service = unit["Service"]
    assert service["Restart"] == "always"
    assert service["ExecStart"] == f"/opt/anxin/bin/anxin {command}"
    assert "/etc/anxin/anxin.env" in (DEPLOY / "systemd" / name).read_text()
    assert service["User"] == "anxin"
    # The command exists in this build's command line.
    group: Any = typer.main.get_command(cli_app)
    for word in command.split():
        found = getattr(group, "commands", {}).get(word)
        if found is None and command.startswith("gateway"):
            # The gateways are built on branches of their own: once merged this runs.
            pytest.skip(f"`anxin {command}` is not in this build yet")
        assert found is not None, f"no `anxin {command}`"
        group = found


def test_systemd_analyze_has_nothing_to_say(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze")
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        # Here: the test's anxin, as root (there is no anxin user on this machine).
        text = text.replace("/opt/anxin/bin/anxin", ANXIN)
        text = text.replace("User=anxin", "User=root").replace("Group=anxin", "Group=root")
        (tmp_path / name).write_text(text)
    instances = []
    for name in UNITS:
        if name.endswith("@.service"):
            instance = tmp_path / name.replace("@.", "@1.")
            instance.symlink_to(tmp_path / name)
            instances.append(instance)
        else:
            instances.append(tmp_path / name)
    verified = subprocess.run(
        [analyze, "verify", *map(str, instances)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    complaints = [line for line in verified.stderr.splitlines() if str(tmp_path) in line]
    assert complaints == []


# --- mosquitto.conf --------------------------------------------------------------------------


def _self_signed(folder: Path) -> None:
    key, certificate = str(folder / "server.key"), str(folder / "server.crt")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", key, "-out", certificate),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )


@contextmanager
def shipped_mosquitto(folder: Path, accounts: Path, certs: Path) -> Iterator[dict[int, int]]:
    """Mosquitto on deploy/mosquitto.conf, its paths and ports moved; yields shipped → here."""
    ports = {8883: free_port(), 1883: free_port(), 1884: free_port()}
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("/etc/mosquitto/anxin/", f"{accounts}/")
    text = text.replace("/etc/mosquitto/certs/", f"{certs}/")
    for shipped, here in ports.items():
        text = text.replace(f"listener {shipped}\n", f"listener {here} 127.0.0.1\n")
    data = folder / "data"
    data.mkdir(exist_ok=True)
    config = folder / "mosquitto.conf"
    config.write_text(
        f"user {getpass.getuser()}\npersistence_location {data}/\n"
        f"log_dest file {folder / 'mosquitto.log'}\n{text}"
    )
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for port in ports.values():
            wait_for_port(port)
        yield ports
        process.send_signal(signal.SIGKILL)  # the test's own kill -9
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def _tls_publish(port: int, ca: Path, username: str, password: str, count: int) -> None:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="ignored", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for n in range(count):
            sent = client.publish(f"anxin/v1/{username}/sos", f'{{"seq": {n}}}', qos=1)
            sent.wait_for_publish(10)
            assert sent.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_shipped_mosquitto_conf_runs_and_keeps_queued_sos_across_kill_9(
    tmp_path: Path,
) -> None:
    accounts, certs = tmp_path / "accounts", tmp_path / "certs"
    certs.mkdir()
    _self_signed(certs)
    member = ServiceAccount(username="anxin-ingest-1", role=ServiceRole.MEMBER)
    provision(accounts, ["pendant-a"], services=[member])
    device_password = (accounts / DEVICE_CREDENTIALS).read_text().splitlines()[1].split(",")[2]
    member_password = (accounts / SERVICE_CREDENTIALS).read_text().splitlines()[1].split(",")[2]
    queued = 1500  # above autosave_interval (1000 changes): one save at least
    with shipped_mosquitto(tmp_path, accounts, certs) as ports:
        with connected(
            ports[1884],
            member.username,
            member_password,
            client_id="anxin.ingest-1",
            clean_start=False,
            session_expiry_s=3600,
        ) as ingest:
            assert not ingest.subscribe("$share/anxin/anxin/v1/+/sos").is_failure
        # The member is away; the device sends over TLS, every PUBLISH PUBACKed.
        _tls_publish(ports[8883], certs / "server.crt", "pendant-a", device_password, queued)
    # Killed with SIGKILL on leaving the block; the same folder again.
    with (
        shipped_mosquitto(tmp_path, accounts, certs) as ports,
        connected(
            ports[1884],
            member.username,
            member_password,
            client_id="anxin.ingest-1",
            clean_start=False,
            session_expiry_s=3600,
        ) as ingest,
    ):
        got = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                got.add(ingest.next_message().payload)
            except queue.Empty:  # nothing more within the client's wait
                break
    print(f"\nqueued {queued} SOS for an absent member; after kill -9: {len(got)} delivered")
    # All but the changes after the last save (at most autosave_interval of them).
    assert len(got) >= queued - 1000
    assert len(got) > 0
