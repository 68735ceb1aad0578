"""Broker accounts of anxin's own processes, beside the devices' (``anxin devices provision``).

Three kinds, each with what it may do and no more:

- ``member``: an ingest process (``anxin ingest``, ``anxin serve``). Reads every uplink (also
  through ``$share/...``) and writes every downlink (the Acks).
- ``api``: an ``anxin api`` replica's downlink publisher (ANXIN_MQTT_DOWNLINK_URL). Writes the
  downlinks (Acks after a claim, Commands), reads nothing.
- ``gateway``: ``anxin gateway watch`` / ``anxin gateway dc09``. Writes every uplink (for the
  devices connected to it) and reads the downlinks (to hand them their Acks and Commands).

Members and API replicas sign in on a listener of their own, the *platform listener*: its
password file and ACL (``platform-passwd``, ``platform-acl``) hold only their accounts, and it
does not replace client ids by usernames. So an ingest member keeps its own client id
(ANXIN_MQTT_CLIENT_ID), and a live member can resume a dead member's broker session under that
client id to drain it (ingest/takeover.py): a takeover needs no one's password but its own.
Gateways sign in where the devices do (``passwd``, ``acl``; ``use_username_as_clientid``): a
gateway faces the devices' protocols, so it cannot pick a client id, and cannot touch the
platform's sessions.

The accounts are remembered in ``service-credentials.csv`` (``username,role,password``, mode
0600): a later run keeps them and their passwords, adds those named, drops those told to. See
docs/provisioning.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from devices.topics import DEFAULT_PREFIX, Downlink, Uplink

PLATFORM_PASSWORD_FILE = "platform-passwd"  # noqa: S105 (a file name)
PLATFORM_ACL_FILE = "platform-acl"
SERVICE_CREDENTIALS = "service-credentials.csv"
SERVICE_CSV_HEADER = ("username", "role", "password")


class ServiceRole(StrEnum):
    MEMBER = "member"
    API = "api"
    GATEWAY = "gateway"

    @property
    def on_platform_listener(self) -> bool:
        return self is not ServiceRole.GATEWAY


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceAccount:
    username: str
    role: ServiceRole


@dataclass(frozen=True, kw_only=True)
class KnownService:
    """A service account an earlier run wrote into ``service-credentials.csv``."""

    role: ServiceRole
    password: str = field(repr=False)


def role_acl(account: ServiceAccount, prefix: str, zigbee_base: str | None) -> list[str]:
    """The account's ``user`` block."""
    uplinks = [f"{prefix}/+/{kind.value}" for kind in Uplink]
    downlinks = [f"{prefix}/+/{kind.value}" for kind in Downlink]
    lines = [f"user {account.username}"]
    if account.role is ServiceRole.MEMBER:
        lines += [f"topic read {t}" for t in uplinks] + [f"topic write {t}" for t in downlinks]
        lines += [f"topic read {zigbee_base}/#"] if zigbee_base else []
    elif account.role is ServiceRole.API:
        lines += [f"topic write {t}" for t in downlinks]
    else:
        # The devices' patterns apply to every account of that listener: a gateway is not a
        # device of its own name (deny lines come first in Mosquitto).
        lines += [f"topic deny {prefix}/{account.username}/#"]
        lines += [f"topic write {t}" for t in uplinks] + [f"topic read {t}" for t in downlinks]
    return lines


def platform_acl_text(
    accounts: Sequence[ServiceAccount], prefix: str = DEFAULT_PREFIX, zigbee_base: str | None = None
) -> str:
    """The platform listener's whole ACL: its accounts' blocks, nothing else."""
    lines = [
        "# Written by `anxin devices provision`: re-run it rather than editing this file.",
        "# The platform listener: ingest members and API replicas; no device signs in here.",
    ]
    for account in accounts:
        lines += ["", *role_acl(account, prefix, zigbee_base)]
    return "\n".join(lines) + "\n"


def service_csv_text(accounts: Sequence[ServiceAccount], passwords: Mapping[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SERVICE_CSV_HEADER)
    writer.writerows((a.username, a.role.value, passwords[a.username]) for a in accounts)
    return out.getvalue()


def parse_service_csv(text: str, source: str = SERVICE_CREDENTIALS) -> dict[str, KnownService]:
    """username → its role and password. A file that is not ours is an error."""
    from devices.provision import ProvisionError

    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return {}
    if tuple(cell.strip().lstrip("\ufeff") for cell in rows[0]) != SERVICE_CSV_HEADER:
        raise ProvisionError(f"{source}: expected the header {','.join(SERVICE_CSV_HEADER)}")
    known: dict[str, KnownService] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(SERVICE_CSV_HEADER) or not row[2]:
            raise ProvisionError(f"{source} line {number}: expected username,role,password")
        try:
            role = ServiceRole(row[1])
        except ValueError:
            raise ProvisionError(f"{source} line {number}: unknown role {row[1]!r}") from None
        known[row[0]] = KnownService(role=role, password=row[2])
    return known


@dataclass(frozen=True, kw_only=True)
class ServicesPlan:
    accounts: tuple[ServiceAccount, ...]
    passwords: Mapping[str, str] = field(repr=False)
    hashes: Mapping[str, str] = field(repr=False)
    new: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]

    def on_platform_listener(self) -> list[ServiceAccount]:
        return [a for a in self.accounts if a.role.on_platform_listener]

    def gateways(self) -> list[ServiceAccount]:
        return [a for a in self.accounts if not a.role.on_platform_listener]


def plan_services(
    named: Iterable[ServiceAccount],
    known: Mapping[str, KnownService],
    previous_hashes: Mapping[str, str],
    *,
    drop: Iterable[str] = (),
    reserved: Iterable[str] = (),
    new_password: Callable[[], str],
) -> ServicesPlan:
    """The accounts (the earlier run's, plus those named, minus those dropped), each with its
    password (kept, else new) and hash (the earlier one while it still matches). No I/O."""
    from devices.provision import (
        ProvisionError,
        check_platform_user,
        hash_password,
        verify_password,
    )

    dropped = set(drop)
    roles = {name: k.role for name, k in known.items() if name not in dropped}
    for account in named:
        check_platform_user(account.username)
        if account.username in dropped:
            raise ProvisionError(f"{account.username!r} is both added and dropped")
        if roles.get(account.username, account.role) is not account.role:
            raise ProvisionError(
                f"{account.username!r} is already a {roles[account.username].value} account: "
                "drop it first to give the name another role"
            )
        roles[account.username] = account.role
    clash = sorted(set(roles) & set(reserved))
    if clash:
        raise ProvisionError(
            f"{clash[0]!r} is also the platform user or a registered device id: "
            "a service account needs a name of its own"
        )
    passwords: dict[str, str] = {}
    hashes: dict[str, str] = {}
    new, kept = [], []
    for username in sorted(roles):
        previous = known.get(username)
        if previous is not None and previous.role is roles[username]:
            passwords[username] = previous.password
            earlier = previous_hashes.get(username)
            matches = earlier is not None and verify_password(previous.password, earlier)
            hashes[username] = earlier if earlier and matches else hash_password(previous.password)
            kept.append(username)
        else:
            passwords[username] = new_password()
            hashes[username] = hash_password(passwords[username])
            new.append(username)
    accounts = tuple(ServiceAccount(username=u, role=roles[u]) for u in sorted(roles))
    return ServicesPlan(
        accounts=accounts,
        passwords=passwords,
        hashes=hashes,
        new=tuple(new),
        kept=tuple(kept),
        dropped=tuple(sorted(dropped & set(known))),
    )
