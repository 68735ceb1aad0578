"""The accounts file (``ANXIN_DC09_ACCOUNTS``, TOML): keys, device ids and code tables.

```toml
unlisted = "accept"          # or "refuse": plain frames from accounts not listed here
[accounts."1234"]
key = "0123456789ABCDEF"     # optional: frames must then be encrypted
key_encoding = "text"        # "text": the characters are the key; "hex": decoded
device_id = "hub-1234"       # optional; default: the account
code_table = "climax"        # optional: "standard" (default), "climax", or one below
[accounts."1234".codes]      # optional, over the table: CID "102" or SIA "XY" → meaning
"616" = "service_request"
[code_tables.my-vendor]      # a named table: based_on a built-in one, with codes over it
based_on = "standard"
codes = { "102" = "fall", "XZ" = "smoke", "XR" = "smoke:restore" }
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.codec import describe
from devices.topics import DEVICE_ID_PATTERN
from gateways.dc09.codes import BUILTIN_TABLES, CodeTable
from gateways.dc09.crypto import BadKeyError, KeyEncoding, decode_key

ACCOUNT_PATTERN = r"^[0-9A-Za-z]{1,16}$"


class AccountsError(ValueError):
    """An accounts file that cannot be used; the message names the account and field."""


class _TableFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    based_on: str = "standard"
    codes: dict[str, str] = Field(default_factory=dict)


class _AccountFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, Field(min_length=1)] | None = None
    key_encoding: KeyEncoding | None = None
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern)] | None = None
    code_table: str = "standard"
    codes: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_needs_encoding(self) -> _AccountFile:
        if self.key is not None and self.key_encoding is None:
            raise ValueError("key_encoding: say how the key is written: 'text' or 'hex'")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unlisted: Literal["accept", "refuse"] = "accept"
    accounts: dict[Annotated[str, Field(pattern=ACCOUNT_PATTERN)], _AccountFile] = Field(
        default_factory=dict
    )
    code_tables: dict[str, _TableFile] = Field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Account:
    account: str
    device_id: str
    key: bytes | None
    codes: CodeTable


@dataclass(frozen=True, kw_only=True, slots=True)
class Accounts:
    by_account: Mapping[str, Account]
    accept_unlisted: bool = True

    def find(self, account: str) -> Account | None:
        """The account's entry; for an unlisted one (when accepted), the account itself as
        device id, no key and the standard table; None when it cannot be used."""
        found = self.by_account.get(account) or self.by_account.get(account.upper())
        if found is not None:
            return found
        if not self.accept_unlisted or not DEVICE_ID_PATTERN.fullmatch(account):
            return None
        return Account(account=account, device_id=account, key=None, codes=STANDARD)


STANDARD = BUILTIN_TABLES["standard"]
NO_ACCOUNTS = Accounts(by_account={})


def load_accounts(path: Path) -> Accounts:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AccountsError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsError(f"{path}: not TOML: {exc}") from None
    return parse_accounts(raw, where=str(path))


def parse_accounts(raw: Mapping[str, object], where: str = "accounts") -> Accounts:
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise AccountsError(f"{where}: {describe(exc)}") from None
    tables = dict(BUILTIN_TABLES)
    for name, spec in parsed.code_tables.items():
        base = BUILTIN_TABLES.get(spec.based_on)
        if base is None:
            raise AccountsError(
                f"{where}: code_tables.{name}.based_on: {spec.based_on!r} is not a built-in "
                f"table ({', '.join(BUILTIN_TABLES)})"
            )
        try:
            tables[name] = base.overridden(name, spec.codes)
        except ValueError as exc:
            raise AccountsError(f"{where}: code_tables.{name}.codes: {exc}") from None
    accounts: dict[str, Account] = {}
    for number, entry in parsed.accounts.items():
        here = f"{where}: accounts.{number!r}"
        table = tables.get(entry.code_table)
        if table is None:
            raise AccountsError(
                f"{here}.code_table: {entry.code_table!r} is not a table ({', '.join(tables)})"
            )
        try:
            if entry.codes:
                table = table.overridden(f"{table.name}+{number}", entry.codes)
        except ValueError as exc:
            raise AccountsError(f"{here}.codes: {exc}") from None
        key = None
        if entry.key is not None and entry.key_encoding is not None:
            try:
                key = decode_key(entry.key, entry.key_encoding)
            except BadKeyError as exc:
                raise AccountsError(f"{here}.{exc}") from None
        device_id = entry.device_id or number
        if not DEVICE_ID_PATTERN.fullmatch(device_id):
            raise AccountsError(f"{here}: the account is no device id: give device_id")
        accounts[number] = Account(account=number, device_id=device_id, key=key, codes=table)
    return Accounts(by_account=accounts, accept_unlisted=parsed.unlisted == "accept")
