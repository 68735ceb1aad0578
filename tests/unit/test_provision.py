"""Broker credentials and ACL: the pure functions, and the files they end up in."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.provision import (
    ACL_FILE,
    DEVICE_CREDENTIALS,
    PASSWORD_ALPHABET,
    PASSWORD_FILE,
    PLATFORM_CREDENTIALS,
    PlatformPassword,
    Previous,
    ProvisionError,
    acl_text,
    check_prefix,
    device_csv_text,
    generate_password,
    hash_password,
    parse_device_csv,
    parse_password_file,
    plan,
    provision,
    read_previous,
    summary,
    verify_password,
    warnings,
    write_plan,
)
from devices.topics import DEVICE_ID_PATTERN

# Written by Debian's `mosquitto_passwd -c -b FILE alice secret` (Mosquitto 2.0.11).
MOSQUITTO_PASSWD_LINE = (
    "alice:$7$101$1gFw7sNrUt2vGmgP$Y23wMhHF617Obe0kccGV4Pxw2Nlo9XzBeMEaENjNqP0+2ANFVVTPm9RuAS+EJP5b"
    "jNqAPt1FLVXIgK+V/sP8ww=="
)
PLATFORM_PASSWORD = "sixteen chars at least"


def counter(prefix: str = "pw") -> Callable[[], str]:
    numbers: Iterator[int] = iter(range(1, 1000))
    return lambda: f"{prefix}{next(numbers):02d}"


# --- the hash format -------------------------------------------------------------------------


def test_a_hash_made_by_mosquitto_passwd_verifies() -> None:
    (hashed,) = parse_password_file(MOSQUITTO_PASSWD_LINE + "\n").values()
    assert verify_password("secret", hashed)
    assert not verify_password("Secret", hashed)


def test_hashes_have_mosquittos_layout() -> None:
    hashed = hash_password("secret", salt=bytes(range(12)))
    empty, kind, iterations, salt, key = hashed.split("$")
    assert (empty, kind, iterations) == ("", "7", "101")
    assert base64.b64decode(salt, validate=True) == bytes(range(12))
    assert len(base64.b64decode(key, validate=True)) == 64
    assert len(salt) == 16  # like mosquitto_passwd's: 12 bytes, standard base64
    assert len(key) == 88
    assert hash_password("secret", salt=bytes(range(12))) == hashed
    assert verify_password("secret", hashed)


def test_every_hash_has_its_own_salt() -> None:
    assert hash_password("same") != hash_password("same")


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "secret",
        "$6$c2FsdA==$aGFzaA==",  # Mosquitto 1.x's plain SHA-512: not what we write
        "$7$101$not base64$AAAA",
        "$7$x$AAAA$AAAA",
        "$7$0$AAAA$AAAA",
        "$7$101$AAAA$",
    ],
)
def test_other_or_broken_hashes_never_verify(hashed: str) -> None:
    assert not verify_password("secret", hashed)


def test_generated_passwords() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert len(password) == 24
        assert set(password) <= set(PASSWORD_ALPHABET)
    assert not set("0O1lI-_=+") & set(PASSWORD_ALPHABET)


# --- the ACL ---------------------------------------------------------------------------------


def test_the_acl_gives_devices_their_own_topics_and_the_platform_the_rest() -> None:
    text = acl_text("anxin")
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == [
        "pattern write anxin/v1/%u/heartbeat",
        "pattern write anxin/v1/%u/sos",
        "pattern write anxin/v1/%u/event",
        "pattern write anxin/v1/%u/telemetry",
        "pattern write anxin/v1/%u/status",
        "pattern read anxin/v1/%u/ack",
        "pattern read anxin/v1/%u/cmd",
        "user anxin",
        "topic deny anxin/v1/anxin/#",
        "topic read anxin/v1/+/heartbeat",
        "topic read anxin/v1/+/sos",
        "topic read anxin/v1/+/event",
        "topic read anxin/v1/+/telemetry",
        "topic read anxin/v1/+/status",
        "topic write anxin/v1/+/ack",
        "topic write anxin/v1/+/cmd",
    ]
    # Nothing before the first `user` line applies to anonymous clients but patterns.
    assert not any(line.startswith("topic") for line in rules[: rules.index("user anxin")])


def test_the_acl_follows_the_configured_prefix_and_platform_user() -> None:
    text = acl_text("anxin-prod", prefix="care/zhangbei/v1")
    assert "pattern write care/zhangbei/v1/%u/sos\n" in text
    assert "user anxin-prod\ntopic deny care/zhangbei/v1/anxin-prod/#\n" in text
    assert "topic read care/zhangbei/v1/+/sos\n" in text
    assert "anxin/v1" not in text


def test_the_platform_reads_what_zigbee2mqtt_gateways_publish_when_that_is_configured() -> None:
    assert "topic read zigbee2mqtt/#" not in acl_text("anxin")
    text = acl_text("anxin", zigbee_base="zigbee2mqtt")
    block = text[text.index("user anxin") :].splitlines()
    assert block[-1] == "topic read zigbee2mqtt/#"
    with pytest.raises(ProvisionError, match="Zigbee2MQTT base topic"):
        acl_text("anxin", zigbee_base="zigbee 2mqtt")


def test_the_acl_names_no_device() -> None:
    """Which devices exist is the password file's job: the ACL stays the same size."""
    first = plan(["d1"], Previous(), platform_user="anxin")
    second = plan([f"d{i}" for i in range(100)], Previous(), platform_user="anxin")
    assert first.acl == second.acl
    assert "d1" not in first.acl


@pytest.mark.parametrize("prefix", ["", "a/#", "a/+/b", "a//b", "/a", "a/", "$SYS", "a b", "a\tb"])
def test_a_prefix_that_would_widen_the_acl_is_refused(prefix: str) -> None:
    with pytest.raises(ProvisionError, match="topic prefix"):
        check_prefix(prefix)


@given(st.text(min_size=1, max_size=70))
def test_only_device_ids_become_device_accounts(candidate: str) -> None:
    planned = plan([candidate], Previous(), platform_user="platform.account")
    usernames = set(parse_password_file(planned.password_file)) - {"platform.account"}
    if DEVICE_ID_PATTERN.fullmatch(candidate):
        assert usernames == {candidate}
    else:
        assert usernames == set()
        assert planned.refused_ids == (candidate,)


# --- deciding passwords ----------------------------------------------------------------------


def test_a_first_run_gives_every_device_a_new_password() -> None:
    planned = plan(["d2", "d1"], Previous(), platform_user="anxin", new_password=counter())
    hashes = parse_password_file(planned.password_file)
    passwords = parse_device_csv(planned.device_csv)
    assert list(hashes) == ["anxin", "d1", "d2"]
    assert passwords == {"d1": "pw02", "d2": "pw03"}
    assert verify_password("pw01", hashes["anxin"])
    assert all(verify_password(passwords[d], hashes[d]) for d in passwords)
    assert planned.platform_password is PlatformPassword.GENERATED
    assert planned.platform_csv == "username,password\nanxin,pw01\n"
    assert planned.new_devices == ("d1", "d2")
    assert planned.device_csv.startswith("device_id,username,password\nd1,d1,pw02\n")


def test_a_rerun_keeps_passwords_and_hashes_adds_devices_and_drops_removed_ones() -> None:
    first = plan(["d1", "d2"], Previous(), platform_user="anxin", new_password=counter("a"))
    previous = Previous(
        hashes=parse_password_file(first.password_file),
        device_passwords=parse_device_csv(first.device_csv),
        platform_passwords={"anxin": "a01"},
    )
    second = plan(["d1", "d3"], previous, platform_user="anxin", new_password=counter("b"))
    hashes = parse_password_file(second.password_file)
    assert parse_device_csv(second.device_csv) == {"d1": "a02", "d3": "b01"}
    assert hashes["d1"] == previous.hashes["d1"]  # nothing changed, nothing rewritten
    assert hashes["anxin"] == previous.hashes["anxin"]
    assert "d2" not in hashes
    assert (second.new_devices, second.kept_devices) == (("d3",), ("d1",))
    assert second.removed_accounts == ("d2",)
    assert second.platform_password is PlatformPassword.KEPT
    assert second.platform_csv is None  # left as it is


def test_rotation_gives_every_device_a_new_password_and_leaves_the_platform() -> None:
    first = plan(["d1"], Previous(), platform_user="anxin", new_password=counter("a"))
    previous = Previous(
        hashes=parse_password_file(first.password_file),
        device_passwords=parse_device_csv(first.device_csv),
    )
    rotated = plan(["d1"], previous, platform_user="anxin", rotate=True, new_password=counter("b"))
    assert parse_device_csv(rotated.device_csv) == {"d1": "b01"}
    hashes = parse_password_file(rotated.password_file)
    assert not verify_password("a02", hashes["d1"])
    assert hashes["anxin"] == previous.hashes["anxin"]


def test_a_kept_password_whose_hash_no_longer_matches_is_hashed_again() -> None:
    previous = Previous(
        hashes={"anxin": hash_password("x" * 16), "d1": hash_password("old")},
        device_passwords={"d1": "new"},
    )
    hashes = parse_password_file(plan(["d1"], previous, platform_user="anxin").password_file)
    assert verify_password("new", hashes["d1"])


def test_a_device_in_the_password_file_but_not_in_the_csv_keeps_its_hash() -> None:
    """Taking over a hand-made password file never locks an installed device out."""
    earlier = hash_password("set by hand")
    previous = Previous(hashes={"anxin": hash_password("x" * 16), "d1": earlier})
    planned = plan(["d1"], previous, platform_user="anxin")
    assert parse_password_file(planned.password_file)["d1"] == earlier
    assert planned.unknown_devices == ("d1",)
    assert parse_device_csv(planned.device_csv) == {"d1": ""}
    assert "--rotate" in warnings(planned)[0]
    # ... and stays so on the next run, until rotated.
    again = plan(
        ["d1"],
        Previous(hashes=previous.hashes, device_passwords=parse_device_csv(planned.device_csv)),
        platform_user="anxin",
    )
    assert again.unknown_devices == ("d1",)
    rotated = plan(["d1"], previous, platform_user="anxin", rotate=True)
    assert rotated.new_devices == ("d1",)


def test_a_password_given_replaces_the_platforms_and_its_stale_file() -> None:
    previous = Previous(
        hashes={"anxin": hash_password("generated before")},
        platform_passwords={"anxin": "generated before"},
    )
    planned = plan([], previous, platform_user="anxin", platform_password=PLATFORM_PASSWORD)
    assert verify_password(PLATFORM_PASSWORD, parse_password_file(planned.password_file)["anxin"])
    assert planned.platform_password is PlatformPassword.STDIN
    assert planned.platform_csv == ""  # to be removed


def test_the_platform_password_is_recovered_from_its_file_when_the_password_file_is_gone() -> None:
    previous = Previous(platform_passwords={"anxin": "generated before"})
    planned = plan([], previous, platform_user="anxin")
    assert verify_password("generated before", parse_password_file(planned.password_file)["anxin"])
    assert planned.platform_password is PlatformPassword.KEPT


def test_a_platform_file_for_another_account_is_removed() -> None:
    previous = Previous(
        hashes={"anxin": hash_password("given on stdin")},
        platform_passwords={"old-name": "generated before"},
    )
    planned = plan([], previous, platform_user="anxin")
    assert planned.platform_password is PlatformPassword.KEPT
    assert planned.platform_csv == ""


def test_a_new_platform_user_does_not_inherit_a_former_devices_password() -> None:
    previous = Previous(hashes={"d9": hash_password("d9's")}, device_passwords={"d9": "d9's"})
    planned = plan(["d1"], previous, platform_user="d9", new_password=counter())
    assert planned.platform_password is PlatformPassword.GENERATED
    assert not verify_password("d9's", parse_password_file(planned.password_file)["d9"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"platform_user": "d1"}, "also a registered device id"),
        ({"platform_user": "an xin"}, "platform user"),
        ({"platform_user": "anxin:x"}, "platform user"),
        ({"platform_user": "anxin", "platform_password": "short"}, "at least 16"),
        ({"platform_user": "anxin", "platform_password": "x" * 20 + "\n"}, "one line"),
        ({"platform_user": "anxin", "prefix": "anxin/#"}, "topic prefix"),
    ],
)
def test_plans_that_cannot_be_written_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ProvisionError, match=match):
        plan(["d1"], Previous(), **kwargs)


def test_ids_that_are_not_device_ids_get_no_account() -> None:
    planned = plan(["d1", "a/b", "+", "d1"], Previous(), platform_user="anxin")
    assert planned.devices == ("d1",)
    assert planned.refused_ids == ("+", "a/b")
    assert list(parse_password_file(planned.password_file)) == ["anxin", "d1"]
    assert "2 registered ids" in warnings(planned)[0]


def test_nothing_shown_about_a_plan_holds_a_password(tmp_path: Path) -> None:
    planned = plan(["d1"], Previous(), platform_user="anxin", new_password=counter("SECRET"))
    shown = repr(planned) + "\n".join(summary(planned, [tmp_path / "x"], tmp_path))
    assert "SECRET" not in shown
    assert "SECRET" in planned.device_csv


# --- the CSV ---------------------------------------------------------------------------------


def test_the_csv_reads_back() -> None:
    passwords = {"d1": 'p,with "quotes"', "d2": ""}
    assert parse_device_csv(device_csv_text(passwords)) == passwords
    assert parse_device_csv("") == {}
    assert parse_device_csv("\ufeffdevice_id,username,password\r\nd1,d1,x\r\n") == {"d1": "x"}


@pytest.mark.parametrize(
    "text",
    ["id,password\nd1,x\n", "device_id,username,password\nd1,d1\n", "garbage\n"],
)
def test_a_csv_that_is_not_ours_is_an_error_not_a_fresh_start(text: str) -> None:
    with pytest.raises(ProvisionError):
        parse_device_csv(text)


# --- the files -------------------------------------------------------------------------------


def test_the_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = os.umask(0)
    try:
        _, written = provision(out, ["d1"])
    finally:
        os.umask(old)
    names = {path.name for path in written}
    assert names == {PASSWORD_FILE, ACL_FILE, DEVICE_CREDENTIALS, PLATFORM_CREDENTIALS}
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary file left


def test_a_rerun_reads_what_the_first_wrote(tmp_path: Path) -> None:
    provision(tmp_path, ["d1", "d2"])
    passwords = parse_device_csv((tmp_path / DEVICE_CREDENTIALS).read_text())
    before = {name: (tmp_path / name).read_text() for name in (PASSWORD_FILE, ACL_FILE)}
    second, written = provision(tmp_path, ["d1", "d2"])
    assert second.kept_devices == ("d1", "d2")
    assert parse_device_csv((tmp_path / DEVICE_CREDENTIALS).read_text()) == passwords
    assert {name: (tmp_path / name).read_text() for name in before} == before
    assert tmp_path / PLATFORM_CREDENTIALS not in written  # untouched
    assert read_previous(tmp_path).platform_passwords.keys() == {"anxin"}


def test_a_stale_platform_file_is_removed(tmp_path: Path) -> None:
    provision(tmp_path, ["d1"])
    assert (tmp_path / PLATFORM_CREDENTIALS).exists()
    planned, _ = provision(tmp_path, ["d1"], platform_password=PLATFORM_PASSWORD)
    assert not (tmp_path / PLATFORM_CREDENTIALS).exists()
    assert any(
        "removed platform-credentials.csv" in line for line in summary(planned, [], tmp_path)
    )


def test_an_unreadable_earlier_file_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / DEVICE_CREDENTIALS).write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ProvisionError, match="cannot read"):
        provision(tmp_path, ["d1"])


def test_write_plan_creates_the_folder(tmp_path: Path) -> None:
    planned = plan(["d1"], Previous(), platform_user="anxin")
    written = write_plan(tmp_path / "a" / "b", planned)
    assert (tmp_path / "a" / "b" / ACL_FILE).read_text() == planned.acl
    assert len(written) == 4
