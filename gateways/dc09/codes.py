"""Panel codes → what they mean in anxin's contract: the code tables. Pure data.

Contact ID codes are 3 digits with a qualifier (1 new, 3 restore, 6 still present); SIA codes
are 2 letters that say alarm or restore themselves (``FA`` fire alarm, ``FH`` fire restore).
A meaning is ``sos``, ``alive`` (a sign of life, nothing more) or an event type of the
contract; for SIA codes, ``<type>:restore`` marks a restore code. Vendors give codes their own
meanings (Climax/Vesta telecare hubs: 102 is a fall, 641 inactivity): an account chooses a
table (``code_table``) and may override codes one by one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from devices.codec import EVENT_TYPES
from gateways.dc09.blocks import PanelEvent

SOS = "sos"
ALIVE = "alive"


@dataclass(frozen=True, kw_only=True, slots=True)
class Meaning:
    """What a panel event becomes: an SOS, a sign of life, or a contract event."""

    kind: str  # "sos" | "alive" | "event"
    type: str | None = None  # the contract event type, for kind "event"
    restore: bool = False


def meaning_of(text: str) -> Meaning:
    """``sos``, ``alive``, ``smoke``, ``smoke:restore`` → a Meaning; ValueError otherwise."""
    name, _, state = text.partition(":")
    if state not in ("", "restore"):
        raise ValueError(f"{text!r}: the only state is ':restore'")
    restore = state == "restore"
    if name == SOS:
        return Meaning(kind=SOS, restore=restore)
    if name == ALIVE:
        return Meaning(kind=ALIVE)
    if name in EVENT_TYPES:
        return Meaning(kind="event", type=name, restore=restore)
    known = ", ".join(sorted(EVENT_TYPES | {SOS, ALIVE}))
    raise ValueError(f"{text!r} is not one of {known}")


# Contact ID event code → meaning; the qualifier adds the restore.
STANDARD_CID: Mapping[str, str] = MappingProxyType(
    {
        "100": SOS,  # medical
        "101": SOS,  # personal emergency (pendant)
        "120": SOS,  # panic
        "110": "smoke",  # fire
        "111": "smoke",
        "114": "heat",
        "151": "gas",
        "154": "water_leak",
        "158": "heat",  # high temperature
        "159": "cold",  # low temperature
        "162": "co",
        "137": "tamper",
        "383": "tamper",  # sensor tamper
        "301": "power_loss",  # AC loss (restore: 3301)
        "302": "low_battery",  # low system battery
        "384": "low_battery",  # RF low battery
        "601": "test",  # manual test
        "602": "test",  # periodic test
    }
)

# SIA code → meaning (restores included).
STANDARD_SIA: Mapping[str, str] = MappingProxyType(
    {
        "MA": SOS, "MH": "sos:restore", "MR": "sos:restore",  # medical
        "QA": SOS, "QH": "sos:restore", "QR": "sos:restore",  # personal emergency
        "PA": SOS, "PH": "sos:restore", "PR": "sos:restore",  # panic
        "FA": "smoke", "FH": "smoke:restore", "FR": "smoke:restore",
        "KA": "heat", "KH": "heat:restore", "KR": "heat:restore",
        "GA": "gas", "GH": "gas:restore", "GR": "gas:restore",
        "WA": "water_leak", "WH": "water_leak:restore", "WR": "water_leak:restore",
        "YT": "low_battery", "YR": "low_battery:restore",
        "AT": "power_loss", "AR": "power_loss:restore",
        "TA": "tamper", "TR": "tamper:restore",
        "RP": "test", "RX": "test",
    }
)  # fmt: skip

# Climax/Vesta telecare hubs (their "CID table for rules and event filter").
CLIMAX_CID: Mapping[str, str] = MappingProxyType(
    {
        **STANDARD_CID,
        "102": "fall",  # "Fall Detected" (standard 102: fail to report in)
        # "Inactivity Alert": the contract has no inactivity event, so a dispatcher gets a
        # service request (with the cid 1641); 3641 "Inactivity Restore" resolves nothing.
        "641": "service_request",
        "616": "service_request",  # "Call Request"
        "669": "service_request",  # "Green Button Ask Callback"
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CodeTable:
    """A table of meanings; look codes up with :meth:`meaning`."""

    name: str
    cid: Mapping[str, Meaning]
    sia: Mapping[str, Meaning]

    def meaning(self, event: PanelEvent) -> Meaning | None:
        """None for a code the table does not know (the receiver answers DUH)."""
        if event.system == "cid":
            found = self.cid.get(event.code)
            if found is None:
                return None
            if event.restore and found.kind != ALIVE:
                return Meaning(kind=found.kind, type=found.type, restore=True)
            return found
        return self.sia.get(event.code)

    def overridden(self, name: str, codes: Mapping[str, str]) -> CodeTable:
        """A new table with ``codes`` (``"102"``: CID, ``"XY"``: SIA → meaning) over this one."""
        cid, sia = dict(self.cid), dict(self.sia)
        for code, text in codes.items():
            meaning = meaning_of(text)
            if len(code) == 3 and code.isdigit():
                cid[code] = meaning
            elif len(code) == 2 and code.isalpha() and code.isupper():
                sia[code] = meaning
            else:
                raise ValueError(f"{code!r}: a Contact ID code is 3 digits, a SIA code 2 letters")
        return CodeTable(name=name, cid=MappingProxyType(cid), sia=MappingProxyType(sia))


def _table(name: str, cid: Mapping[str, str], sia: Mapping[str, str]) -> CodeTable:
    return CodeTable(
        name=name,
        cid=MappingProxyType({code: meaning_of(text) for code, text in cid.items()}),
        sia=MappingProxyType({code: meaning_of(text) for code, text in sia.items()}),
    )


BUILTIN_TABLES: Mapping[str, CodeTable] = MappingProxyType(
    {
        "standard": _table("standard", STANDARD_CID, STANDARD_SIA),
        "climax": _table("climax", CLIMAX_CID, STANDARD_SIA),
    }
)
