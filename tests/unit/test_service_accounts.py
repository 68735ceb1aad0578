"""Service accounts: kept across runs, dropped when told, never a device's or the platform's
name, each role's ACL no wider than it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.provision import ProvisionError, plan, provision, read_previous
from devices.service_accounts import (
    PLATFORM_ACL_FILE,
    PLATFORM_PASSWORD_FILE,
    SERVICE_CREDENTIALS,
    ServiceAccount,
    ServiceRole,
    parse_service_csv,
)

MEMBER = ServiceAccount(username="anxin-ingest-1", role=ServiceRole.MEMBER)
API = ServiceAccount(username="anxin-api-1", role=ServiceRole.API)
GATEWAY = ServiceAccount(username="anxin-gw-dc09", role=ServiceRole.GATEWAY)


def test_the_accounts_are_remembered_with_their_passwords(tmp_path: Path) -> None:
    first, _ = provision(tmp_path, ["p1"], services=[MEMBER, API, GATEWAY])
    again, _ = provision(tmp_path, ["p1"])  # named no more: still there
    assert first.services.new == ("anxin-api-1", "anxin-gw-dc09", "anxin-ingest-1")
    assert again.services.kept == first.services.new
    assert again.services.new == ()
    assert again.services.passwords == first.services.passwords
    assert again.platform_password_file == first.platform_password_file  # same hashes
    known = parse_service_csv((tmp_path / SERVICE_CREDENTIALS).read_text())
    assert {name: k.role for name, k in known.items()} == {
        "anxin-api-1": ServiceRole.API,
        "anxin-gw-dc09": ServiceRole.GATEWAY,
        "anxin-ingest-1": ServiceRole.MEMBER,
    }
    assert oct((tmp_path / SERVICE_CREDENTIALS).stat().st_mode & 0o777) == "0o600"


def test_members_and_api_replicas_go_to_the_platform_listener_gateways_beside_devices(
    tmp_path: Path,
) -> None:
    provision(tmp_path, ["p1"], services=[MEMBER, API, GATEWAY])
    passwd = (tmp_path / "passwd").read_text()
    platform = (tmp_path / PLATFORM_PASSWORD_FILE).read_text()
    assert "anxin-gw-dc09:" in passwd
    assert "anxin-ingest-1:" not in passwd
    assert "anxin-ingest-1:" in platform
    assert "anxin-api-1:" in platform
    assert "anxin-gw-dc09" not in platform
    assert "p1:" not in platform
    acl = (tmp_path / "acl").read_text()
    assert "user anxin-gw-dc09\ntopic deny anxin/v1/anxin-gw-dc09/#\n" in acl
    assert "topic write anxin/v1/+/sos" in acl.split("user anxin-gw-dc09")[1]
    platform_acl = (tmp_path / PLATFORM_ACL_FILE).read_text()
    api_block = platform_acl.split("user anxin-api-1\n")[1].split("\n\n")[0]
    assert api_block.splitlines() == ["topic write anxin/v1/+/ack", "topic write anxin/v1/+/cmd"]
    assert "pattern" not in platform_acl


def test_a_dropped_account_is_gone_and_its_files_with_it(tmp_path: Path) -> None:
    provision(tmp_path, ["p1"], services=[MEMBER])
    done, _ = provision(tmp_path, ["p1"], drop_services=["anxin-ingest-1"])
    assert done.services.dropped == ("anxin-ingest-1",)
    assert done.services.accounts == ()
    assert not (tmp_path / PLATFORM_PASSWORD_FILE).exists()
    assert not (tmp_path / SERVICE_CREDENTIALS).exists()


@pytest.mark.parametrize("name", ["anxin", "p1"])
def test_a_service_account_cannot_take_the_platforms_or_a_devices_name(name: str) -> None:
    with pytest.raises(ProvisionError, match="a name of its own"):
        plan(
            ["p1"],
            read_previous(Path("/nonexistent")),
            platform_user="anxin",
            services=[ServiceAccount(username=name, role=ServiceRole.GATEWAY)],
        )


def test_a_name_keeps_its_role_until_dropped(tmp_path: Path) -> None:
    provision(tmp_path, [], services=[MEMBER])
    with pytest.raises(ProvisionError, match="already a member account"):
        provision(
            tmp_path, [], services=[ServiceAccount(username=MEMBER.username, role=ServiceRole.API)]
        )
