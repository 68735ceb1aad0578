"""The command line as an operator meets it."""

from __future__ import annotations

import json
import socket
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.service import anxin_env


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ANXIN_API_PORT", "abc", "ANXIN_API_PORT='abc': Input should be a valid integer"),
        ("ANXIN_MQTT_URL", "http://user:hunter22@broker", "ANXIN_MQTT_URL: scheme must be"),
    ],
)
def test_bad_configuration_is_one_clear_line(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    setup = anxin_env(tmp_path, **{variable: value})
    result = setup.cli("serve")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("anxin: configuration error: ")
    assert expected in lines[0]
    assert "hunter22" not in result.stderr


def test_serve_without_a_broker_says_so(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path)
    result = setup.cli("serve")
    assert result.returncode == 2
    assert "ANXIN_MQTT_URL is not set" in result.stderr


def test_db_upgrade_and_users_add(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path)
    upgraded = setup.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    added = setup.cli(
        "users", "add", "zhao", "--role", "supervisor", "--scope", "张家口市", "--password-stdin",
        stdin="a long password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with sqlite3.connect(setup.database_path) as db:
        ((username, role, scope, password_hash),) = db.execute(
            "SELECT username, role, scope, password_hash FROM users"
        ).fetchall()
    assert (username, role, scope) == ("zhao", "supervisor", "张家口市")
    assert password_hash.startswith("$argon2id$")
    assert "a long password" not in password_hash


def test_users_add_refuses_a_short_password_and_an_unknown_role(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path)
    short = setup.cli("users", "add", "qian", "--role", "dispatcher", "--password-stdin", stdin="x")
    assert short.returncode == 2
    assert "at least 8 characters" in short.stderr
    role = setup.cli("users", "add", "qian", "--role", "boss", "--password-stdin", stdin="x" * 9)
    assert role.returncode == 2
    assert "boss" in role.stderr


def test_serve_on_a_database_without_schema_says_what_to_do(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path, ANXIN_MQTT_URL="mqtt://127.0.0.1:1")
    result = setup.cli("serve")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "anxin: the database schema is not current (no schema): run `anxin db upgrade`"
    )


def test_an_api_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        setup = anxin_env(tmp_path, ANXIN_API_PORT=str(port))
        assert setup.cli("db", "upgrade").returncode == 0
        result = setup.cli("api")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"anxin: configuration error: cannot listen on 127.0.0.1:{port}: "
        + lines[0].rsplit(": ", 1)[-1]
    ]
    assert "in use" in lines[0]


def test_a_short_secret_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path, ANXIN_SECRET_KEY="tooshort")
    result = setup.cli("api")
    assert result.returncode == 2
    assert "ANXIN_SECRET_KEY: needs at least 32 characters" in result.stderr
    assert "tooshort" not in result.stderr


def test_devices_import_reports_bad_lines_and_imports_the_rest(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path)
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(
        "device_id,model,elder_id,elder_name,community,categories\n"
        "p-1,sos-pendant,E1,张秀英,张家口市/张北县,独居\n"
        "p-2,sos-pendant,E1,张秀英,张家口市/张北县,独居;神仙\n"
        "p 3,pull-cord,E1,张秀英,,\n",
        encoding="utf-8",
    )
    first = setup.cli("devices", "import", str(fleet))
    assert first.returncode == 1
    assert "2 rows imported" in first.stdout
    # A cosmetic field: the row is kept, the category left out, and the report says so.
    assert f"{fleet}:3: warning: category '神仙' left out" in first.stderr
    assert f"{fleet}:4: device_id 'p 3'" in first.stderr
    again = setup.cli("devices", "import", str(fleet))
    assert "elders 0 new" in again.stdout
    assert "devices 0 new, 0 updated" in again.stdout
    with sqlite3.connect(setup.database_path) as db:
        assert db.execute("SELECT count(*) FROM elders").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM devices").fetchone() == (2,)
    missing = setup.cli("devices", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("anxin: cannot read")


def test_dead_letters_list(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path)
    assert setup.cli("db", "upgrade").returncode == 0
    assert setup.cli("dead-letters", "list").stdout.strip() == "no dead letters"
    with sqlite3.connect(setup.database_path) as db:
        db.execute(
            "INSERT INTO dead_letters (received_at, topic, device_id, reason, payload) "
            "VALUES ('2026-11-22 03:00:00', 'anxin/v1/d1/event', 'd1', 'unknown event type', ?)",
            (b'{"type": "explode"}',),
        )
    listed = setup.cli("dead-letters", "list", "--device", "d1")
    assert listed.returncode == 0
    assert "anxin/v1/d1/event  unknown event type" in listed.stdout


def test_influx_settings_and_spool_folder_errors_are_one_line(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path, ANXIN_INFLUX_URL="http://127.0.0.1:9", ANXIN_MQTT_URL="mqtt://x")
    result = setup.cli("serve")
    assert result.returncode == 2
    assert "ANXIN_INFLUX_URL needs ANXIN_INFLUX_DB (v1 API)" in result.stderr
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    setup = anxin_env(
        tmp_path,
        ANXIN_INFLUX_URL="http://127.0.0.1:9",
        ANXIN_INFLUX_DB="anxin",
        ANXIN_INFLUX_SPOOL_DIR=str(blocked / "spool"),
        ANXIN_MQTT_URL="mqtt://127.0.0.1:9",
    )
    assert setup.cli("db", "upgrade").returncode == 1  # InfluxDB cannot be reached
    result = setup.cli("serve")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("anxin: configuration error: cannot use the telemetry spool")


def test_a_bare_number_is_a_duration_in_seconds(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path)
    out = tmp_path / "t.jsonl"
    result = setup.cli("simulate", "--devices", "5", "--duration", "900", "--out", str(out))
    assert result.returncode == 0, result.stderr
    # Fifteen minutes of virtual time: heartbeats, none later than 900 s after the first.
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    times = [datetime.fromisoformat(m["time"]) for m in lines if "time" in m]
    assert times
    assert max(times) - min(times) <= timedelta(seconds=900)
    help_text = " ".join(setup.cli("simulate", "--help").stdout.replace("│", " ").split())
    assert "or a bare number of seconds" in help_text
