"""Contact ID (SIA DC-05) event codes that alarm panels and some pendants send.

``cid`` is four digits: the qualifier (1 new, 3 restore, 6 repeat) and the event code.
"""

from __future__ import annotations

from dataclasses import dataclass

SOS = "sos"

# Event code → the contract's event type; ``sos`` marks a personal emergency.
CODE_TO_TYPE: dict[str, str] = {
    "100": SOS,  # medical emergency
    "101": SOS,  # personal emergency (pendant)
    "111": "smoke",
    "151": "gas",
    "154": "water_leak",
    "158": "heat",
    "159": "cold",
    "162": "co",
    "137": "tamper",
    "383": "tamper",  # sensor tamper
    "301": "power_loss",  # AC loss
    "302": "low_battery",  # low system battery
    "384": "low_battery",  # RF low battery
    "601": "test",  # manual test
    "602": "test",  # periodic test
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ContactIdEvent:
    type: str
    restore: bool
    code: str


def parse_contact_id(cid: str) -> ContactIdEvent | None:
    """``"1101"`` → personal emergency, new; None for a code this table does not know."""
    if len(cid) != 4 or not cid.isdigit() or cid[0] not in "136":
        return None
    event_type = CODE_TO_TYPE.get(cid[1:])
    if event_type is None:
        return None
    return ContactIdEvent(type=event_type, restore=cid[0] == "3", code=cid)
