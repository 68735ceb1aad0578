"""Commands to a device: ``POST /api/v1/devices/{device_id}/commands`` → ``{prefix}/{id}/cmd``.

Engineers and admins may send any command to a device within their scope. Dispatchers and
supervisors may only ``locate``, and only a device with an open alert within their scope: they
look for an elder whose call they work, not after the fleet. The command is published (QoS 1,
not retained) and answered 202 with its id; what the device answers comes back on its uplinks.
Nothing is stored: without a broker connection the answer is 503 and nothing was sent.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

import structlog
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from alerting.model import OPEN_STATUSES
from alerting.store import AlertRow
from api.deps import Context, DbSession, Staff
from api.problems import problem
from api.tokens import Principal
from api.users import Role
from devices.elders import ElderRow, in_scope
from devices.payloads import CommandPayload
from devices.registry import DeviceRow

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

# Well inside a downlink payload's 16 KiB (contract §1).
PARAMS_MAX_BYTES = 4096

_FLEET_KEEPERS = frozenset({Role.ENGINEER, Role.ADMIN})

CommandName = Literal["ping", "locate", "configure"]


class CommandIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"command": "locate", "params": {}},
                {"command": "configure", "params": {"heartbeat_interval_s": 300}},
            ]
        },
    )

    command: CommandName
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(params, ensure_ascii=False).encode()) > PARAMS_MAX_BYTES:
            raise ValueError(f"params over {PARAMS_MAX_BYTES} bytes as JSON")
        return params


class CommandOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f6c2a9e8b1d4f70a2c5e9d1b7f04a63",
                    "device_id": "pendant-0017",
                    "command": "locate",
                }
            ]
        }
    )

    id: str
    device_id: str
    command: CommandName


@router.post(
    "/{device_id}/commands",
    response_model=CommandOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: problem(
            "Your role may not send this command to this device.",
            "a dispatcher may only locate a device with an open alert",
        ),
        404: problem("No such device, or not within your scope.", "device not found"),
        503: problem(
            "No broker connection now: nothing was sent.", "no broker connection: not sent"
        ),
    },
)
def send_command(
    device_id: str, body: CommandIn, session: DbSession, user: Staff, context: Context
) -> CommandOut:
    """Publish a Command `{"command", "params", "id"}` to the device on
    `anxin/v1/{device_id}/cmd` (QoS 1, not retained). Engineers and admins: any command.
    Dispatchers and supervisors: `locate`, to a device with an open alert. 202 says the broker
    took it, not that the device has answered."""
    device = session.get(DeviceRow, device_id)
    if device is None or not _device_in_scope(session, device, user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="device not found")
    if user.role not in _FLEET_KEEPERS:
        if body.command != "locate":
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"the {user.role.value} role may only locate"
            )
        if not _has_open_alert(session, device_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"a {user.role.value} may only locate a device with an open alert",
            )
    command = CommandPayload(command=body.command, params=body.params, id=uuid.uuid4().hex)
    if context.downlink is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no broker connection")
    try:
        context.downlink.send_command(device_id, command)
    except Exception as exc:  # any failure of the port: not sent, say so
        log.warning("device.command_not_sent", device_id=device_id, id=command.id, error=repr(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"no broker connection: {exc}"[:200]
        ) from exc
    log.info(
        "device.command_sent",
        device_id=device_id,
        command=command.command,
        id=command.id,
        role=user.role.value,
    )
    return CommandOut(id=command.id, device_id=device_id, command=body.command)


def _device_in_scope(session: DbSession, device: DeviceRow, user: Principal) -> bool:
    """As ``GET /devices`` sees it: a scoped user sees the devices of elders in scope."""
    if not user.scope:
        return True
    elder = session.get(ElderRow, device.elder_id) if device.elder_id is not None else None
    return elder is not None and in_scope(elder.community, user.scope)


def _has_open_alert(session: DbSession, device_id: str) -> bool:
    query = select(AlertRow.id).where(
        AlertRow.device_id == device_id,
        AlertRow.status.in_([s.value for s in OPEN_STATUSES]),
    )
    return session.scalars(query.limit(1)).first() is not None
