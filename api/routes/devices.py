"""Devices: ``/api/v1/devices``, and the spreadsheet import."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Select, select

from api.audit import record
from api.commit import commit_or_conflict
from api.deps import Context, DbSession, DeviceEditor, RegistryAdmin, Staff
from api.pagination import decode_cursor, encode_cursor
from api.params import ElderFilter, IsoDate, RowId
from api.problems import problem, refuse_null, role_refused
from api.tokens import Principal
from devices.csv_import import CsvFormatError, ImportReport, import_csv
from devices.elders import ElderRow, in_scope, within_community
from devices.registry import DeviceRow, DeviceStatus
from devices.topics import DEVICE_ID_PATTERN

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

_DEVICE_NOT_FOUND = problem("No such device, or not within your scope.", "device not found")

MAX_IMPORT_BYTES = 64 * 1024 * 1024


class DeviceFields(BaseModel):
    elder_id: RowId | None = None
    room: Annotated[str, Field(max_length=64, examples=["卧室"])] | None = None
    install_date: IsoDate | None = None
    zigbee_name: Annotated[str, Field(max_length=128)] | None = None
    status: DeviceStatus = DeviceStatus.ACTIVE


class DeviceIn(DeviceFields):
    id: Annotated[str, Field(pattern=f"^{DEVICE_ID_PATTERN.pattern}$", examples=["pendant-0017"])]
    model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", examples=["sos-pendant"])]


class DevicePatch(DeviceFields):
    # May be left out, never null: the schema says so (null → 422).
    model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] | SkipJsonSchema[None] = None
    status: DeviceStatus | SkipJsonSchema[None] = None  # type: ignore[assignment]


class DeviceOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "pendant-0017",
                    "model": "sos-pendant",
                    "elder_id": 3,
                    "room": "卧室",
                    "install_date": "2026-10-30",
                    "zigbee_name": None,
                    "status": "active",
                    "last_seen_at": "2026-11-22T03:00:20Z",
                    "online": True,
                    "battery": 81.0,
                    "created_at": "2026-10-30T09:12:00Z",
                }
            ]
        },
    )

    id: str
    model: str
    elder_id: int | None
    room: str | None
    install_date: date | None
    zigbee_name: str | None
    status: DeviceStatus
    last_seen_at: datetime | None
    online: bool | None
    battery: float | None
    created_at: datetime


class DevicePage(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None


class ImportProblem(BaseModel):
    line: int
    message: str


class ImportOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rows": 120,
                    "elders_created": 60,
                    "elders_updated": 0,
                    "devices_created": 119,
                    "devices_updated": 0,
                    "contacts_added": 58,
                    "encoding": "gb18030",
                    "errors": [{"line": 14, "message": "unknown model 'sos-pendent'"}],
                    "warnings": [
                        {
                            "line": 31,
                            "message": "contact_relation '表舅' is not a relation anxin knows:"
                            " stored as other, the word kept as written",
                        }
                    ],
                }
            ]
        }
    )

    rows: int
    elders_created: int
    elders_updated: int
    devices_created: int
    devices_updated: int
    contacts_added: int
    encoding: str
    errors: list[ImportProblem]
    # Rows imported with a cosmetic field left out or read differently.
    warnings: list[ImportProblem] = Field(default_factory=list)


@router.get(
    "",
    response_model=DevicePage,
    responses={400: problem("A bad cursor.", "invalid cursor"), 403: role_refused("visitor")},
)
def list_devices(
    session: DbSession,
    user: Staff,
    model: str | None = None,
    status_: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    elder_id: ElderFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> DevicePage:
    query = _scoped(select(DeviceRow), user).order_by(DeviceRow.id)
    if model is not None:
        query = query.where(DeviceRow.model == model)
    if status_ is not None:
        query = query.where(DeviceRow.status == status_.value)
    if elder_id is not None:
        query = query.where(DeviceRow.elder_id == elder_id)
    if cursor is not None:
        query = query.where(DeviceRow.id > decode_cursor(cursor))
    rows = list(session.scalars(query.limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return DevicePage(
        items=[DeviceOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )


@router.post(
    "",
    response_model=DeviceOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: role_refused("dispatcher"),
        409: problem("The id or Zigbee name is taken.", "device pendant-0017 exists"),
    },
)
def create_device(
    body: DeviceIn, session: DbSession, user: DeviceEditor, context: Context
) -> DeviceOut:
    _check_model(context, body.model)
    if session.get(DeviceRow, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"device {body.id} exists")
    _check_elder(session, user, body.elder_id)
    device = DeviceRow(**body.model_dump(exclude={"status"}), status=body.status.value)
    session.add(device)
    detail = body.model_dump(mode="json", exclude_unset=True, exclude={"id"})
    commit_or_conflict(
        session,
        "zigbee_name is already another device's",
        before=lambda: _audit(session, context, user, "device.created", device, detail),
    )
    return DeviceOut.model_validate(device)


@router.post(
    "/import",
    response_model=ImportOut,
    responses={
        400: problem("The file cannot be read as a whole.", "missing column: model"),
        403: role_refused("engineer"),
        413: problem("Over 64 MiB.", "file too large"),
    },
)
async def import_devices(
    file: UploadFile, session: DbSession, user: RegistryAdmin, context: Context
) -> ImportOut:
    """The CSV of `anxin devices import`: bad rows are reported by line, the rest imported."""
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail="file too large")
    try:
        # Seconds of database work for a big file: off the event loop that ingest shares.
        report = await run_in_threadpool(
            _import, session, data, context, user, file.filename or "upload.csv"
        )
    except CsvFormatError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    return ImportOut(
        rows=report.rows,
        elders_created=report.elders_created,
        elders_updated=report.elders_updated,
        devices_created=report.devices_created,
        devices_updated=report.devices_updated,
        contacts_added=report.contacts_added,
        encoding=report.encoding,
        errors=[ImportProblem(line=e.line, message=e.message) for e in report.errors],
        warnings=[ImportProblem(line=w.line, message=w.message) for w in report.warnings],
    )


@router.get(
    "/{device_id}",
    response_model=DeviceOut,
    responses={
        403: role_refused("visitor"),
        404: problem("No such device, or not within your scope.", "device not found"),
    },
)
def read_device(device_id: str, session: DbSession, user: Staff) -> DeviceOut:
    return DeviceOut.model_validate(visible_device(session, user, device_id))


@router.patch(
    "/{device_id}",
    response_model=DeviceOut,
    responses={
        403: role_refused("dispatcher"),
        404: problem("No such device, or not within your scope.", "device not found"),
        409: problem(
            "The Zigbee name is another device's.", "zigbee_name is already another device's"
        ),
    },
)
def update_device(
    device_id: str, body: DevicePatch, session: DbSession, user: DeviceEditor, context: Context
) -> DeviceOut:
    device = visible_device(session, user, device_id)
    changes = body.model_dump(exclude_unset=True)
    refuse_null(changes, "model", "status")
    if changes.get("model") is not None:
        _check_model(context, changes["model"])
    if "elder_id" in changes:
        _check_elder(session, user, changes["elder_id"])
    for name, value in changes.items():
        setattr(device, name, value.value if isinstance(value, DeviceStatus) else value)
    detail = body.model_dump(mode="json", exclude_unset=True)
    commit_or_conflict(
        session,
        "zigbee_name is already another device's",
        before=lambda: _audit(session, context, user, "device.updated", device, detail),
    )
    return DeviceOut.model_validate(device)


def _import(
    session: DbSession, data: bytes, context: Context, user: Principal, filename: str
) -> ImportReport:
    report = import_csv(session, data, context.catalogue.keys(), user.scope)
    record(
        session,
        at=context.clock(),
        actor=user.username,
        action="devices.imported",
        target=f"import:{filename}",
        community=user.scope,
        detail={
            "rows": report.rows,
            "elders_created": report.elders_created,
            "elders_updated": report.elders_updated,
            "devices_created": report.devices_created,
            "devices_updated": report.devices_updated,
            "contacts_added": report.contacts_added,
            "errors": len(report.errors),
        },
    )
    session.commit()
    return report


def _audit(
    session: DbSession,
    context: Context,
    user: Principal,
    action: str,
    device: DeviceRow,
    detail: dict[str, object],
) -> None:
    elder = session.get(ElderRow, device.elder_id) if device.elder_id is not None else None
    record(
        session,
        at=context.clock(),
        actor=user.username,
        action=action,
        target=f"device:{device.id}",
        community=elder.community if elder else None,
        detail=detail,
    )


def _scoped(query: Select[DeviceRow], user: Principal) -> Select[DeviceRow]:
    """A scoped user sees the devices of elders in their communities."""
    if not user.scope:
        return query
    return query.join(ElderRow, ElderRow.id == DeviceRow.elder_id).where(
        within_community(user.scope)
    )


def visible_device(session: DbSession, user: Principal, device_id: str) -> DeviceRow:
    """The device if the user's scope covers it (also for the telemetry route), else 404."""
    device = session.scalars(
        _scoped(select(DeviceRow), user).where(DeviceRow.id == device_id)
    ).first()
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="device not found")
    return device


def _check_model(context: Context, model: str) -> None:
    if model not in context.catalogue:
        known = ", ".join(context.catalogue)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"unknown model {model!r}; known: {known}"
        )


def _check_elder(session: DbSession, user: Principal, elder_id: int | None) -> None:
    if elder_id is None:
        return
    elder = session.get(ElderRow, elder_id)
    if elder is None or not in_scope(elder.community, user.scope):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="no such elder")
