"""Import the community office's spreadsheet of elders and their devices (contract §3 columns).

Parsing is pure (text in, rows and per-line errors out); applying is one transaction that
creates or updates, so importing the same file twice changes nothing the second time.

A row is refused only for what decides who and what it registers (the device id, the model,
the elder's identity and community). A cosmetic field never refuses it: a contact relation
written as people write it (儿子, 老伴, son) is read as its relation and kept as written; one
not known is stored as ``other``; a date, a category, a contact that cannot be read is left
out. Each such row gets a warning that says what was kept and what was not.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from devices.elders import (
    ContactRelation,
    ContactRow,
    ElderCategory,
    ElderRow,
    in_scope,
    parse_category,
    parse_community,
    relation_of,
)
from devices.registry import DeviceRow
from devices.topics import DEVICE_ID_PATTERN

REQUIRED_COLUMNS = ("device_id", "model")
OPTIONAL_COLUMNS = (
    "elder_id", "elder_name", "elder_phone", "address", "community", "categories",
    "contact_name", "contact_phone", "contact_relation", "zigbee_name",
    # Additions to the contract's columns, all optional:
    "room", "install_date", "medical_notes", "key_safe_note",
)  # fmt: skip
MAX_ROWS = 200_000
# Columns about the elder: meaningless on a row that does not say who the elder is.
_ELDER_COLUMNS = (
    "elder_phone", "address", "community", "categories", "contact_name", "contact_phone",
    "contact_relation", "medical_notes", "key_safe_note",
)  # fmt: skip
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,30}$")
# Dates as typed: 2026-03-01, 2026/3/1, 2026.3.1, 2026年3月1日.
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
LABEL_MAX = 32
_MODEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class CsvFormatError(ValueError):
    """The file as a whole cannot be read (not CSV, missing columns, too large)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ElderKey:
    """Rows with the same elder_id, or without one the same name and phone, are one elder."""

    external_id: str | None
    name: str | None
    phone: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportRow:
    line: int
    device_id: str
    model: str
    zigbee_name: str | None = None
    room: str | None = None
    install_date: date | None = None
    elder: ElderKey | None = None
    elder_name: str | None = None
    address: str | None = None
    community: str | None = None
    categories: tuple[ElderCategory, ...] = ()
    medical_notes: str | None = None
    key_safe_note: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_relation: ContactRelation | None = None
    # The relation as written, when it says more than ``contact_relation`` (儿子: family).
    contact_label: str | None = None
    # What a cosmetic field lost (the row itself is kept): the report's warnings.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class RowError:
    line: int
    message: str


RowWarning = RowError  # the same shape: a line and what it says


@dataclass(kw_only=True, slots=True)
class ImportReport:
    rows: int = 0
    elders_created: int = 0
    elders_updated: int = 0
    devices_created: int = 0
    devices_updated: int = 0
    contacts_added: int = 0
    encoding: str = "utf-8"
    errors: list[RowError] = field(default_factory=list)
    # Rows imported with something left out or read differently (a relation as `other`).
    warnings: list[RowWarning] = field(default_factory=list)


def decode_csv(data: bytes) -> tuple[str, str]:
    """UTF-8 (with or without BOM), else GB18030: what Excel on a Chinese Windows writes."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise CsvFormatError("the file is neither UTF-8 nor GB18030 text") from exc


def parse_rows(
    text: str, known_models: Collection[str] | None = None
) -> tuple[list[ImportRow], list[RowError]]:
    """Check every row; a bad row is reported with its line number and the rest go on."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise CsvFormatError(f"missing column(s): {', '.join(missing)} (the first line names them)")
    unknown = sorted(set(columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS) - {""})
    if unknown:
        raise CsvFormatError(f"unknown column(s): {', '.join(unknown)}")
    reader.fieldnames = columns
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    seen_devices: dict[str, int] = {}
    seen_zigbee: dict[str, int] = {}
    for number, record in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise CsvFormatError(f"more than {MAX_ROWS} rows: split the file")
        line = reader.line_num
        cells = {k: (v or "").strip() for k, v in record.items() if k}
        if not any(cells.values()):
            continue  # blank lines are not errors
        try:
            row = _parse_row(line, cells, known_models)
        except ValueError as exc:
            errors.append(RowError(line=line, message=str(exc)))
            continue
        if row.device_id in seen_devices:
            message = f"device {row.device_id} is already on line {seen_devices[row.device_id]}"
            errors.append(RowError(line=line, message=message))
            continue
        if row.zigbee_name and row.zigbee_name in seen_zigbee:
            message = (
                f"zigbee_name {row.zigbee_name!r} is already on line {seen_zigbee[row.zigbee_name]}"
            )
            errors.append(RowError(line=line, message=message))
            continue
        seen_devices[row.device_id] = line
        if row.zigbee_name:
            seen_zigbee[row.zigbee_name] = line
        rows.append(row)
    return rows, errors


def _parse_row(line: int, cells: dict[str, str], known: Collection[str] | None) -> ImportRow:
    device_id, model = cells.get("device_id", ""), cells.get("model", "")
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise ValueError(f"device_id {device_id!r} must be 1-64 of A-Z a-z 0-9 _ -")
    if not _MODEL.fullmatch(model) or (known is not None and model not in known):
        raise ValueError(f"unknown model {model!r}")
    warnings: list[str] = []
    elder_id = cells.get("elder_id") or None
    elder_name = cells.get("elder_name") or None
    if not (elder_id or elder_name) and (given := [c for c in _ELDER_COLUMNS if cells.get(c)]):
        warnings.append(
            f"{', '.join(given)} not stored: the row names no elder (elder_id or elder_name);"
            " the device is registered unassigned"
        )
        cells = {k: v for k, v in cells.items() if k not in _ELDER_COLUMNS}
    if elder_id:
        # The elder is known by the id: a phone that cannot be read is left out.
        elder_phone = _optional_phone(cells.get("elder_phone"), "elder_phone", warnings)
    else:
        # Without an id the phone is part of who the elder is: it must be right.
        elder_phone = _phone(cells.get("elder_phone"), "elder_phone")
    elder = None
    if elder_id or elder_name:
        elder = ElderKey(
            external_id=elder_id, name=None if elder_id else elder_name, phone=elder_phone
        )
    community = parse_community(cells["community"]) if cells.get("community") else None
    categories = _categories(cells.get("categories", ""), warnings)
    contact_name = cells.get("contact_name") or None
    try:
        contact_phone = _phone(cells.get("contact_phone"), "contact_phone")
    except ValueError as exc:
        warnings.append(f"contact {contact_name or ''!r} not added: {exc}")
        contact_name = contact_phone = None
    if contact_name and not contact_phone:
        warnings.append(f"contact {contact_name!r} not added: it has no phone number")
        contact_name = None
    relation, label = _relation(cells.get("contact_relation", ""), warnings)
    install_date = _date(cells.get("install_date", ""), warnings)
    return ImportRow(
        line=line,
        device_id=device_id,
        model=model,
        zigbee_name=_bounded(cells.get("zigbee_name"), 128, "zigbee_name"),
        room=_bounded(cells.get("room"), 64, "room"),
        install_date=install_date,
        elder=elder,
        elder_name=_bounded(elder_name, 64, "elder_name"),
        address=_bounded(cells.get("address"), 255, "address"),
        community=community,
        categories=categories,
        medical_notes=cells.get("medical_notes") or None,
        key_safe_note=cells.get("key_safe_note") or None,
        contact_name=_bounded(contact_name, 64, "contact_name"),
        contact_phone=contact_phone,
        contact_relation=relation if contact_phone else None,
        contact_label=label if contact_phone else None,
        warnings=tuple(warnings),
    )


def _relation(text: str, warnings: list[str]) -> tuple[ContactRelation | None, str | None]:
    """The relation a word means and the word itself (None when it is the relation's own
    English name); a word not known is ``other``, kept as written, with a warning."""
    if not text:
        return None, None
    relation = relation_of(text)
    label = text if len(text) <= LABEL_MAX else text[:LABEL_MAX]
    if len(text) > LABEL_MAX:
        warnings.append(f"contact_relation longer than {LABEL_MAX} characters: cut to {label!r}")
    if relation is None:
        warnings.append(
            f"contact_relation {text!r} is not a relation anxin knows: stored as other,"
            " the word kept as written"
        )
        return ContactRelation.OTHER, label
    return relation, None if text.strip().lower() == relation.value else label


def _categories(text: str, warnings: list[str]) -> tuple[ElderCategory, ...]:
    found: dict[ElderCategory, None] = {}
    for part in re.split(r"[;；,，、]", text):
        if not part.strip():
            continue
        try:
            found[parse_category(part)] = None
        except ValueError:
            known = "独居 空巢 高龄 特困 失能 重残 留守, or their English names"
            warnings.append(f"category {part.strip()!r} left out: not one of {known}")
    return tuple(found)


def _date(text: str, warnings: list[str]) -> date | None:
    if not text:
        return None
    match = _DATE.fullmatch(text)
    try:
        if match is not None:
            return date(*(int(g) for g in match.groups()))
    except ValueError:
        pass
    warnings.append(f"install_date {text!r} left out: not a date (write 2026-03-01)")
    return None


def _optional_phone(text: str | None, column: str, warnings: list[str]) -> str | None:
    try:
        return _phone(text, column)
    except ValueError as exc:
        warnings.append(f"{exc}: left out")
        return None


def _phone(text: str | None, column: str) -> str | None:
    if not text:
        return None
    if not _PHONE.fullmatch(text):
        raise ValueError(f"{column} {text!r} is not a phone number")
    return text.replace(" ", "").replace("-", "")


def _bounded(text: str | None, limit: int, column: str) -> str | None:
    if text and len(text) > limit:
        raise ValueError(f"{column} is longer than {limit} characters")
    return text or None


def apply_rows(
    session: Session, rows: Iterable[ImportRow], report: ImportReport, scope: str = ""
) -> None:
    """Create or update elders, contacts and devices; blank cells never erase what is stored.

    ``scope``: the importing user's community tier path; rows about elders outside it (or
    devices without an elder, which only an unscoped user may register) are refused."""
    rows = list(rows)
    elders = _ElderIndex(session, [r.elder for r in rows if r.elder is not None])
    devices = {
        d.id: d
        for ids in _chunks([r.device_id for r in rows])
        for d in session.scalars(select(DeviceRow).where(DeviceRow.id.in_(ids)))
    }
    taken_zigbee = {
        name: device_id
        for names in _chunks([r.zigbee_name for r in rows if r.zigbee_name])
        for name, device_id in session.execute(
            select(DeviceRow.zigbee_name, DeviceRow.id).where(DeviceRow.zigbee_name.in_(names))
        )
    }
    touched_elders: set[int] = set()
    for row in rows:
        owner = taken_zigbee.get(row.zigbee_name) if row.zigbee_name else None
        if owner is not None and owner != row.device_id:
            message = f"zigbee_name {row.zigbee_name!r} belongs to device {owner}"
            report.errors.append(RowError(line=row.line, message=message))
            continue
        if scope and not _row_in_scope(row, elders, scope):
            message = f"outside your scope {scope}: the elder's community must be within it"
            report.errors.append(RowError(line=row.line, message=message))
            continue
        elder = elders.upsert(row, row.elder, report, touched_elders) if row.elder else None
        if elder is not None and row.contact_phone:
            report.contacts_added += _add_contact(elder, row)
        device = devices.get(row.device_id)
        if device is None:
            device = DeviceRow(id=row.device_id, model=row.model)
            session.add(device)
            devices[row.device_id] = device
            report.devices_created += 1
            _update_device(device, row, elder)
        elif _update_device(device, row, elder):
            report.devices_updated += 1
        report.rows += 1
        report.warnings.extend(RowWarning(line=row.line, message=m) for m in row.warnings)
    session.flush()


def _row_in_scope(row: ImportRow, elders: _ElderIndex, scope: str) -> bool:
    if row.elder is None:
        return False
    known = elders.find(row.elder)
    community = row.community or (known.community if known is not None else None)
    if known is not None and not in_scope(known.community, scope):
        return False  # moving someone out of another district's care is not yours to do
    return in_scope(community, scope)


def _chunks(values: list[str], size: int = 5000) -> Iterable[list[str]]:
    """IN lists of a size every database takes (SQLite allows 32,766 parameters)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _update_device(device: DeviceRow, row: ImportRow, elder: ElderRow | None) -> bool:
    changed = False
    if elder is not None and (elder.id is None or device.elder_id != elder.id):
        device.elder, changed = elder, True
    wanted = {
        "model": row.model,
        "zigbee_name": row.zigbee_name,
        "room": row.room,
        "install_date": row.install_date,
    }
    for name, value in wanted.items():
        if value is not None and getattr(device, name) != value:
            setattr(device, name, value)
            changed = True
    return changed


def _add_contact(elder: ElderRow, row: ImportRow) -> int:
    relation = (row.contact_relation or ContactRelation.FAMILY).value
    for contact in elder.contacts:
        if contact.phone == row.contact_phone:
            contact.name = row.contact_name or contact.name
            if row.contact_relation:
                contact.relation, contact.label = row.contact_relation.value, row.contact_label
            return 0
    position = max((c.position for c in elder.contacts), default=0) + 1
    elder.contacts.append(
        ContactRow(
            position=position,
            name=row.contact_name or row.contact_phone or "",
            phone=row.contact_phone or "",
            relation=relation,
            label=row.contact_label,
        )
    )
    return 1


class _ElderIndex:
    """Finds the elder a row names, loading the file's elders up front in a few queries."""

    def __init__(self, session: Session, keys: list[ElderKey]) -> None:
        self._session = session
        external = {k.external_id for k in keys if k.external_id}
        by_name = {(k.name, k.phone) for k in keys if not k.external_id}
        self._by_external: dict[str, ElderRow] = {}
        self._by_name: dict[tuple[str | None, str | None], ElderRow] = {}
        for ids in _chunks(sorted(external)):
            for elder in session.scalars(select(ElderRow).where(ElderRow.external_id.in_(ids))):
                self._by_external[elder.external_id or ""] = elder
        for names in _chunks(sorted({name for name, _ in by_name if name})):
            for elder in session.scalars(
                select(ElderRow).where(ElderRow.external_id.is_(None), ElderRow.name.in_(names))
            ):
                self._by_name.setdefault((elder.name, elder.phone), elder)

    def find(self, key: ElderKey) -> ElderRow | None:
        if key.external_id:
            return self._by_external.get(key.external_id)
        return self._by_name.get((key.name, key.phone))

    def upsert(
        self, row: ImportRow, key: ElderKey, report: ImportReport, touched: set[int]
    ) -> ElderRow:
        elder = self.find(key)
        created = elder is None
        if elder is None:
            elder = ElderRow(
                external_id=key.external_id,
                name=row.elder_name or key.external_id or "",
                phone=key.phone,
                categories=[],
                contacts=[],
            )
            self._session.add(elder)
            report.elders_created += 1
            touched.add(id(elder))
            if key.external_id:
                self._by_external[key.external_id] = elder
            else:
                self._by_name[(key.name, key.phone)] = elder
        changed = _update_elder(elder, row, key)
        if changed and not created and id(elder) not in touched:
            report.elders_updated += 1
            touched.add(id(elder))
        return elder


def _update_elder(elder: ElderRow, row: ImportRow, key: ElderKey) -> bool:
    changed = False
    for name, value in (
        ("name", row.elder_name),
        ("phone", key.phone),
        ("address", row.address),
        ("community", row.community),
        ("medical_notes", row.medical_notes),
        ("key_safe_note", row.key_safe_note),
    ):
        if value is not None and getattr(elder, name) != value:
            setattr(elder, name, value)
            changed = True
    if row.categories:
        categories = sorted(c.value for c in row.categories)
        if sorted(elder.categories or []) != categories:
            elder.categories = categories
            changed = True
    return changed


def import_csv(
    session: Session,
    data: bytes,
    known_models: Collection[str] | None = None,
    scope: str = "",
) -> ImportReport:
    """Parse and apply in the caller's transaction; the report lists rejected lines."""
    text, encoding = decode_csv(data)
    rows, errors = parse_rows(text, known_models)
    report = ImportReport(encoding=encoding, errors=list(errors))
    apply_rows(session, rows, report, scope)
    report.errors.sort(key=lambda e: e.line)
    report.warnings.sort(key=lambda e: e.line)
    return report
