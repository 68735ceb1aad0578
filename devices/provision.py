"""Broker credentials and an ACL for the registered devices (``anxin devices provision``).

Mosquitto's own files, written by pure functions and one small I/O step:

- ``passwd``: Mosquitto's password file, one ``username:$7$...`` line per account (PBKDF2-SHA512,
  the format ``mosquitto_passwd`` writes by default in Mosquitto 2.0);
- ``acl``: ``pattern`` lines by which a device's account (its username is its device id) writes
  only its own uplinks and reads only its own downlinks, and a ``user`` block by which the
  platform's account reads every device's uplinks and writes every device's downlinks;
- ``device-credentials.csv``: ``device_id,username,password`` for the installers. It is also the
  memory of the passwords: a later run keeps them (unless rotating) and adds new devices;
- ``platform-credentials.csv``: ``username,password`` of the platform's account, only when this
  tool generated that password (kept apart so the installers' file never holds it).

Every file is written with mode 0600 and replaced atomically. See docs/provisioning.md.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from devices.registry import DeviceRow, DeviceStatus
from devices.service_accounts import (
    PLATFORM_ACL_FILE,
    PLATFORM_PASSWORD_FILE,
    SERVICE_CREDENTIALS,
    KnownService,
    ServiceAccount,
    ServicesPlan,
    parse_service_csv,
    plan_services,
    platform_acl_text,
    role_acl,
    service_csv_text,
)
from devices.topics import DEFAULT_PREFIX, DEVICE_ID_PATTERN, Downlink, Uplink

PASSWORD_FILE = "passwd"  # noqa: S105 (a file name)
ACL_FILE = "acl"
DEVICE_CREDENTIALS = "device-credentials.csv"
PLATFORM_CREDENTIALS = "platform-credentials.csv"
DEVICE_CSV_HEADER = ("device_id", "username", "password")
PLATFORM_CSV_HEADER = ("username", "password")

# Mosquitto 2.0's sha512-pbkdf2 ("$7$"): PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt,
# a 64-byte key, salt and key in standard base64 with padding (src/password_mosq.h).
HASH_ID = "7"
HASH_ITERATIONS = 101
SALT_BYTES = 12
KEY_BYTES = 64

# The platform's account goes into ANXIN_MQTT_URL as mqtt://USER:PASSWORD@host, so no character
# there needs percent-encoding; ":" is also what ends a username in the password file.
PLATFORM_USER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIN_PLATFORM_PASSWORD = 16
PASSWORD_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # noqa: S105
PASSWORD_LENGTH = 24
FILE_MODE = 0o600


class ProvisionError(Exception):
    """Provisioning cannot go on; the message is one line for the operator."""


class PlatformPassword(StrEnum):
    """Where the platform account's password came from."""

    STDIN = "from standard input"
    KEPT = "kept"
    GENERATED = "generated"


# --- passwords and Mosquitto's hash format ---------------------------------------------------


def generate_password() -> str:
    """24 letters and digits, about 139 random bits. None that are easily confused (0/O, 1/l/I)
    when an installer types it, nothing to escape in a URL, CSV or shell, and no leading ``-``
    or ``=`` that a spreadsheet would take for a formula."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto's ``$7$`` hash of ``password``, as ``mosquitto_passwd`` writes it."""
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS, KEY_BYTES)
    encoded_salt = base64.b64encode(salt).decode("ascii")
    encoded_key = base64.b64encode(key).decode("ascii")
    return f"${HASH_ID}${HASH_ITERATIONS}${encoded_salt}${encoded_key}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (a ``$7$`` hash) is that of ``password``; False for other formats."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != HASH_ID or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    iterations = int(parts[2])
    if not 1 <= iterations <= 10_000_000 or not expected:
        return False
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(key, expected)


# --- names -----------------------------------------------------------------------------------


def check_prefix(prefix: str, what: str = "topic prefix") -> str:
    """A topic prefix (or Zigbee2MQTT base topic) safe to write into an ACL line: levels
    without wildcards or blanks."""
    levels = prefix.split("/")
    if (
        not prefix
        or prefix.startswith("$")
        or any(not level for level in levels)
        or any(ch in "+#" or ch.isspace() or not ch.isprintable() for ch in prefix)
    ):
        raise ProvisionError(
            f"{what} {prefix!r} cannot go into an ACL: use levels without +, #, "
            "blanks or empty levels, like anxin/v1"
        )
    return prefix


def check_platform_user(username: str) -> str:
    if not PLATFORM_USER_PATTERN.fullmatch(username):
        raise ProvisionError(
            f"platform user {username!r}: use 1 to 64 of A-Z a-z 0-9 _ . - (it goes into a URL)"
        )
    return username


def check_platform_password(password: str) -> str:
    if len(password) < MIN_PLATFORM_PASSWORD:
        raise ProvisionError(
            f"the platform's password needs at least {MIN_PLATFORM_PASSWORD} characters "
            "(try: openssl rand -base64 24)"
        )
    if any(ch in "\r\n\0" for ch in password):
        raise ProvisionError("the platform's password must be one line")
    return password


def split_device_ids(device_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(usable, refused): an id outside ``[A-Za-z0-9_-]{1,64}`` gets no account: in place of
    ``%u`` a ``+``, ``#`` or ``/`` would widen what the account may do."""
    usable: set[str] = set()
    refused: set[str] = set()
    for device_id in device_ids:
        (usable if DEVICE_ID_PATTERN.fullmatch(device_id) else refused).add(device_id)
    return sorted(usable), sorted(refused)


# --- the ACL ---------------------------------------------------------------------------------


def device_patterns(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Every device account (its username is its device id) writes its own uplinks and reads
    its own downlinks, nothing else. Mosquitto puts the account's username in place of %u."""
    return [
        *(f"pattern write {prefix}/%u/{kind.value}" for kind in Uplink),
        *(f"pattern read {prefix}/%u/{kind.value}" for kind in Downlink),
    ]


def platform_acl(
    username: str, prefix: str = DEFAULT_PREFIX, zigbee_base: str | None = None
) -> list[str]:
    """The platform reads all uplinks (also through ``$share/...``) and writes all downlinks;
    with ``zigbee_base``, it also reads what Zigbee2MQTT gateways publish under it.

    The patterns apply to every account, so they would also let the platform publish uplinks
    as a device named like it; ``deny`` lines come first in Mosquitto and take that back."""
    return [
        f"user {username}",
        f"topic deny {prefix}/{username}/#",
        *(f"topic read {prefix}/+/{kind.value}" for kind in Uplink),
        *(f"topic write {prefix}/+/{kind.value}" for kind in Downlink),
        *([f"topic read {zigbee_base}/#"] if zigbee_base else []),
    ]


def acl_text(
    platform_user: str,
    prefix: str = DEFAULT_PREFIX,
    zigbee_base: str | None = None,
    gateways: Sequence[ServiceAccount] = (),
) -> str:
    """The whole ACL file: the devices' patterns and the platform's block, nothing for
    anonymous clients. It names no device: which devices exist is the password file's job."""
    check_prefix(prefix)
    check_platform_user(platform_user)
    if zigbee_base:
        check_prefix(zigbee_base, "Zigbee2MQTT base topic")
    lines = [
        "# Written by `anxin devices provision`: re-run it rather than editing this file.",
        "# Only what is listed is allowed; there are no lines for anonymous clients.",
        "",
        "# Devices: the username is the device id (only the password file's accounts sign in).",
        *device_patterns(prefix),
        "",
        "# The platform (anxin serve / anxin ingest).",
        *platform_acl(platform_user, prefix, zigbee_base),
    ]
    for gateway in gateways:
        lines += [
            "",
            f"# A gateway ({gateway.role.value} account).",
            *role_acl(gateway, prefix, None),
        ]
    return "\n".join(lines) + "\n"


# --- the files' text -------------------------------------------------------------------------


def password_file_text(hashes: Mapping[str, str]) -> str:
    """``username:hash`` lines, in the order given."""
    lines = []
    for username, hashed in hashes.items():
        if not username or ":" in username or any(ch.isspace() for ch in username):
            raise ProvisionError(f"username {username!r} cannot go into a password file")
        lines.append(f"{username}:{hashed}")
    return "".join(line + "\n" for line in lines)


def parse_password_file(text: str) -> dict[str, str]:
    """username → hash; blank lines and ``#`` comments skipped, as Mosquitto does."""
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        username, sep, hashed = line.partition(":")
        if sep:
            hashes[username] = hashed.strip()
    return hashes


def device_csv_text(passwords: Mapping[str, str]) -> str:
    """``device_id,username,password`` for the installers (the username is the device id)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DEVICE_CSV_HEADER)
    writer.writerows((device_id, device_id, password) for device_id, password in passwords.items())
    return out.getvalue()


def parse_device_csv(text: str, source: str = DEVICE_CREDENTIALS) -> dict[str, str]:
    """device_id → password ("" where the file holds none). A file that is not ours is an error,
    never a reason to start over (that would silently give every installed device a new
    password)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return {}
    if tuple(cell.strip().lstrip("\ufeff") for cell in rows[0]) != DEVICE_CSV_HEADER:
        raise ProvisionError(f"{source}: expected the header {','.join(DEVICE_CSV_HEADER)}")
    passwords: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(DEVICE_CSV_HEADER):
            raise ProvisionError(f"{source} line {number}: expected 3 columns")
        device_id, _username, password = row
        passwords[device_id] = password
    return passwords


def platform_csv_text(username: str, password: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([PLATFORM_CSV_HEADER, (username, password)])
    return out.getvalue()


def parse_platform_csv(text: str, source: str = PLATFORM_CREDENTIALS) -> dict[str, str]:
    """username → password."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return {}
    if tuple(cell.strip().lstrip("\ufeff") for cell in rows[0]) != PLATFORM_CSV_HEADER:
        raise ProvisionError(f"{source}: expected the header {','.join(PLATFORM_CSV_HEADER)}")
    return {row[0]: row[1] for row in rows[1:] if len(row) == 2 and row[1]}


# --- deciding what to write ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Previous:
    """What an earlier run left in the folder (empty when there was none)."""

    hashes: Mapping[str, str] = field(default_factory=dict)
    device_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    platform_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The platform listener's password file, and the service accounts' memory.
    platform_listener_hashes: Mapping[str, str] = field(default_factory=dict)
    services: Mapping[str, KnownService] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The files' contents and what changed; passwords only in the fields not shown by repr."""

    password_file: str = field(repr=False)
    acl: str
    device_csv: str = field(repr=False)
    # None: leave platform-credentials.csv as it is; "": remove it (stale); else its new text.
    platform_csv: str | None = field(repr=False)
    devices: tuple[str, ...]
    new_devices: tuple[str, ...]  # got a new password (new device, rotation, or none known)
    kept_devices: tuple[str, ...]
    unknown_devices: tuple[str, ...]  # kept the hash of an earlier password file, not in the CSV
    removed_accounts: tuple[str, ...]  # in the previous files, not in the new ones
    refused_ids: tuple[str, ...]  # registered, but not usable as MQTT usernames and topics
    platform_user: str
    platform_password: PlatformPassword
    # The service accounts (devices/service_accounts.py); "" for a file: remove it (none left).
    services: ServicesPlan
    platform_password_file: str = field(default="", repr=False)
    platform_acl: str = ""
    service_csv: str = field(default="", repr=False)


def plan(
    device_ids: Iterable[str],
    previous: Previous,
    *,
    platform_user: str,
    platform_password: str | None = None,
    rotate: bool = False,
    prefix: str = DEFAULT_PREFIX,
    zigbee_base: str | None = None,
    services: Sequence[ServiceAccount] = (),
    drop_services: Sequence[str] = (),
    new_password: Callable[[], str] = generate_password,
) -> Plan:
    """Decide every account's password and hash, and the files' text. No I/O."""
    acl_text(platform_user, prefix, zigbee_base)  # checks the names first
    devices, refused = split_device_ids(device_ids)
    accounts = plan_services(
        services,
        previous.services,
        {**previous.hashes, **previous.platform_listener_hashes},
        drop=drop_services,
        reserved=[platform_user, *devices],
        new_password=new_password,
    )
    acl = acl_text(platform_user, prefix, zigbee_base, accounts.gateways())
    if platform_user in devices:
        raise ProvisionError(
            f"platform user {platform_user!r} is also a registered device id: "
            "choose another --platform-user"
        )

    hashes: dict[str, str] = {}
    platform_csv: str | None = None
    if platform_password is not None:
        check_platform_password(platform_password)
        hashes[platform_user] = hash_password(platform_password)
        source = PlatformPassword.STDIN
        if previous.platform_passwords:
            platform_csv = ""  # whatever it holds is no longer the password
    elif platform_user in previous.hashes and platform_user not in previous.device_passwords:
        # (a former device's account is not taken over by a platform user of the same name)
        hashes[platform_user] = previous.hashes[platform_user]
        source = PlatformPassword.KEPT
        written = previous.platform_passwords.get(platform_user)
        if previous.platform_passwords and (
            written is None or not verify_password(written, hashes[platform_user])
        ):
            platform_csv = ""  # it names another account or an older password
    elif platform_user in previous.platform_passwords:
        hashes[platform_user] = hash_password(previous.platform_passwords[platform_user])
        source = PlatformPassword.KEPT
    else:
        generated = new_password()
        hashes[platform_user] = hash_password(generated)
        platform_csv = platform_csv_text(platform_user, generated)
        source = PlatformPassword.GENERATED

    passwords: dict[str, str] = {}
    new, kept, unknown = [], [], []
    for device_id in devices:
        known = None if rotate else previous.device_passwords.get(device_id) or None
        earlier = None if rotate else previous.hashes.get(device_id)
        if known is not None:
            passwords[device_id] = known
            # The same hash when it still matches: a run that changes nothing rewrites nothing.
            matches = earlier is not None and verify_password(known, earlier)
            hashes[device_id] = earlier if earlier is not None and matches else hash_password(known)
            kept.append(device_id)
        elif earlier is not None:
            # In the password file but not in the CSV (made by hand, or the CSV was lost): the
            # device keeps working with the password it has; the CSV cannot say what it is.
            passwords[device_id] = ""
            hashes[device_id] = earlier
            unknown.append(device_id)
        else:
            passwords[device_id] = new_password()
            hashes[device_id] = hash_password(passwords[device_id])
            new.append(device_id)

    for gateway in accounts.gateways():
        hashes[gateway.username] = accounts.hashes[gateway.username]
    platform_side = accounts.on_platform_listener()
    removed = sorted(
        (set(previous.device_passwords) | set(previous.hashes))
        - set(devices)
        - {platform_user}
        - {a.username for a in accounts.accounts}
    )
    return Plan(
        services=accounts,
        platform_password_file=password_file_text(
            {a.username: accounts.hashes[a.username] for a in platform_side}
        ),
        platform_acl=platform_acl_text(platform_side, prefix, zigbee_base) if platform_side else "",
        service_csv=(
            service_csv_text(accounts.accounts, accounts.passwords) if accounts.accounts else ""
        ),
        password_file=password_file_text(hashes),
        acl=acl,
        device_csv=device_csv_text(passwords),
        platform_csv=platform_csv,
        devices=tuple(devices),
        new_devices=tuple(new),
        kept_devices=tuple(kept),
        unknown_devices=tuple(unknown),
        removed_accounts=tuple(removed),
        refused_ids=tuple(refused),
        platform_user=platform_user,
        platform_password=source,
    )


# --- files -----------------------------------------------------------------------------------


def read_previous(folder: Path) -> Previous:
    """What an earlier run wrote into ``folder``; missing files are empty."""

    def text(name: str) -> str:
        try:
            return (folder / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ProvisionError(f"cannot read {folder / name}: {exc}") from exc

    return Previous(
        hashes=parse_password_file(text(PASSWORD_FILE)),
        device_passwords=parse_device_csv(
            text(DEVICE_CREDENTIALS), str(folder / DEVICE_CREDENTIALS)
        ),
        platform_passwords=parse_platform_csv(
            text(PLATFORM_CREDENTIALS), str(folder / PLATFORM_CREDENTIALS)
        ),
        platform_listener_hashes=parse_password_file(text(PLATFORM_PASSWORD_FILE)),
        services=parse_service_csv(text(SERVICE_CREDENTIALS), str(folder / SERVICE_CREDENTIALS)),
    )


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically by a file of mode 0600 holding ``text``.

    The new file keeps the owner and group of the one it replaces (run as root, a file once
    given to the ``mosquitto`` user stays readable by the broker)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)  # whatever the umask
        _keep_owner(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _keep_owner(path: Path, temporary: Path) -> None:
    try:
        before = path.stat()
    except FileNotFoundError:
        return
    now = temporary.stat()
    if (before.st_uid, before.st_gid) == (now.st_uid, now.st_gid):
        return
    try:
        os.chown(temporary, before.st_uid, before.st_gid)
    except PermissionError as exc:
        raise ProvisionError(
            f"{path} belongs to uid {before.st_uid}, gid {before.st_gid}; cannot give its "
            "replacement the same owner: run as that user or as root"
        ) from exc


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_plan(folder: Path, planned: Plan) -> list[Path]:
    """Write the files; the installers' CSV first, so a password is never hashed and lost."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    platform_files = planned.platform_password_file if planned.platform_acl else ""
    for name, text in (
        (DEVICE_CREDENTIALS, planned.device_csv),
        (SERVICE_CREDENTIALS, planned.service_csv),
        (PLATFORM_CREDENTIALS, planned.platform_csv),
        (PASSWORD_FILE, planned.password_file),
        (ACL_FILE, planned.acl),
        (PLATFORM_PASSWORD_FILE, platform_files),
        (PLATFORM_ACL_FILE, planned.platform_acl),
    ):
        path = folder / name
        if text is None:
            continue
        if text == "":
            path.unlink(missing_ok=True)
            continue
        write_private(path, text)
        written.append(path)
    return written


def provision(
    folder: Path,
    device_ids: Iterable[str],
    *,
    platform_user: str = "anxin",
    platform_password: str | None = None,
    rotate: bool = False,
    prefix: str = DEFAULT_PREFIX,
    zigbee_base: str | None = None,
    services: Sequence[ServiceAccount] = (),
    drop_services: Sequence[str] = (),
) -> tuple[Plan, list[Path]]:
    """Read what an earlier run left in ``folder``, decide, and write the files."""
    planned = plan(
        device_ids,
        read_previous(folder),
        platform_user=platform_user,
        platform_password=platform_password,
        rotate=rotate,
        prefix=prefix,
        zigbee_base=zigbee_base,
        services=services,
        drop_services=drop_services,
    )
    return planned, write_plan(folder, planned)


def registered_device_ids(session: Session) -> list[str]:
    """Devices that may connect: retired ones get no broker account."""
    return sorted(
        session.scalars(select(DeviceRow.id).where(DeviceRow.status != DeviceStatus.RETIRED.value))
    )


def summary(planned: Plan, written: Sequence[Path], folder: Path) -> list[str]:
    """What the operator is told: counts and paths, never a password."""
    counts = [
        (len(planned.new_devices), "new passwords"),
        (len(planned.kept_devices), "kept"),
        (len(planned.unknown_devices), f"kept, not in {DEVICE_CREDENTIALS}"),
    ]
    changes = ", ".join(f"{count} {what}" for count, what in counts if count)
    removed = len(planned.removed_accounts)
    lines = [
        f"{len(planned.devices)} devices"
        + (f": {changes}" if changes else "")
        + (f"; {removed} accounts removed" if removed else ""),
        f"platform account {planned.platform_user}: password {planned.platform_password.value}"
        + (
            f" (in {PLATFORM_CREDENTIALS})"
            if planned.platform_password is PlatformPassword.GENERATED
            else ""
        ),
        *_service_lines(planned.services),
        *(f"wrote {path}" for path in written),
    ]
    if planned.platform_csv == "":
        lines.append(f"removed {PLATFORM_CREDENTIALS}: it no longer held the platform's password")
    where = folder.resolve()
    lines.append(
        f"next: point mosquitto's password_file at {where / PASSWORD_FILE} and acl_file at "
        f"{where / ACL_FILE} (readable by the mosquitto user), then reload it: "
        "systemctl reload mosquitto"
    )
    if planned.platform_acl:
        lines.append(
            f"the platform listener (ingest members, API replicas): password_file "
            f"{where / PLATFORM_PASSWORD_FILE}, acl_file {where / PLATFORM_ACL_FILE}, "
            "use_username_as_clientid false (deploy/mosquitto.conf)"
        )
    return lines


def _service_lines(services: ServicesPlan) -> list[str]:
    if not services.accounts and not services.dropped:
        return []
    by_role: dict[str, list[str]] = {}
    for account in services.accounts:
        by_role.setdefault(account.role.value, []).append(account.username)
    listed = "; ".join(f"{role}: {', '.join(names)}" for role, names in sorted(by_role.items()))
    counts = [(len(services.new), "new passwords"), (len(services.dropped), "dropped")]
    extra = ", ".join(f"{n} {what}" for n, what in counts if n)
    return [
        f"{len(services.accounts)} service accounts ({listed or 'none'})"
        + (f": {extra}" if extra else "")
        + (f" (passwords in {SERVICE_CREDENTIALS})" if services.accounts else "")
    ]


def warnings(planned: Plan) -> list[str]:
    found = []
    if planned.refused_ids:
        shown = ", ".join(repr(device_id) for device_id in planned.refused_ids[:10])
        found.append(
            f"{len(planned.refused_ids)} registered ids are not device ids ([A-Za-z0-9_-]{{1,64}}) "
            f"and got no account: {shown}"
        )
    if planned.unknown_devices:
        found.append(
            f"{len(planned.unknown_devices)} devices keep a password that is not in "
            f"{DEVICE_CREDENTIALS} (their CSV rows have none); --rotate issues new ones"
        )
    if not planned.devices:
        found.append("no registered devices: only the platform's account was written")
    return found
