"""What a watch said: a :class:`~gateways.watch.frames.Frame` read as a typed message. Pure.

Field layouts are those of docs/watch-gateway.md (from the vendor document and Traccar's
decoder and tests). Reading is lenient: a field that does not parse is left out (None), never
a reason to lose the message, because an alarm frame with one odd field is still an alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from gateways.watch.frames import Frame


class StatusBit(IntEnum):
    """Bits of the status word (field 16 of a position record). High 16: alarms (events),
    low 16: states. Bit 22 is "abnormal heart rate" in the vendor document, "fall" in
    Traccar: see docs/watch-gateway.md, open points."""

    LOW_BATTERY_STATE = 0
    OUT_OF_FENCE_STATE = 1
    IN_FENCE_STATE = 2
    WEAR_STATE = 3
    NOT_MOVING_STATE = 4
    POWER_CUT = 14
    SOS = 16
    LOW_BATTERY = 17
    FENCE_EXIT = 18
    FENCE_ENTER = 19
    REMOVED = 20
    FALL = 21
    HEART_RATE = 22


ALARM_BITS = frozenset(bit for bit in StatusBit if bit >= StatusBit.SOS)


def bits_of(status: int) -> frozenset[int]:
    """Every bit set in ``status`` (not only the first, which is how Traccar loses an SOS
    that comes with low battery)."""
    return frozenset(bit for bit in range(32) if status >> bit & 1)


@dataclass(frozen=True, kw_only=True, slots=True)
class PositionRecord:
    """The record of UD*, UD2, AL*, WT frames (fields in the vendor's order)."""

    time: datetime | None  # UTC, from ddMMyy,HHmmss
    fix: bool  # A: a current GPS fix; V: none (the coordinates are 0 or stale)
    lat: float | None
    lon: float | None
    speed_kmh: float | None = None
    course: float | None = None
    altitude_m: float | None = None
    satellites: int | None = None
    gsm_signal: int | None = None  # 0-100
    battery: int | None = None  # %
    steps: int | None = None  # cumulative, never reset
    rolls: int | None = None
    status: int | None = None  # the status word; None when it does not parse
    accuracy_m: float | None = None

    @property
    def bits(self) -> frozenset[int]:
        return frozenset() if self.status is None else bits_of(self.status)

    @property
    def location(self) -> tuple[float, float] | None:
        """(lat, lon) when the fix is current and the values are coordinates."""
        if not self.fix or self.lat is None or self.lon is None:
            return None
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            return None
        return self.lat, self.lon


@dataclass(frozen=True, kw_only=True, slots=True)
class Link:
    """LK: the keep-alive, with steps, rolls and battery when the watch sends three values."""

    steps: int | None = None
    rolls: int | None = None
    battery: int | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    """UD, UD_LTE, UD_WCDMA, UD3, WT: where the watch is now and its state."""

    record: PositionRecord


@dataclass(frozen=True, kw_only=True, slots=True)
class History:
    """UD2: positions buffered while the watch was offline, uploaded later. Never live."""

    record: PositionRecord


@dataclass(frozen=True, kw_only=True, slots=True)
class Alarm:
    """AL, AL_LTE, ALCUSTOMER1 …: an alarm with a position; the watch repeats it until the
    server answers ``AL``."""

    record: PositionRecord


@dataclass(frozen=True, kw_only=True, slots=True)
class Health:
    """heart / PULSE, bphrt, BLOOD, oxygen, btemp2, TEMP: readings, 0 (or absent) meaning
    none. Height, gender, age and weight of ``bphrt`` are personal data: not read."""

    heart_rate: float | None = None
    bp_systolic: float | None = None
    bp_diastolic: float | None = None
    spo2: float | None = None
    body_temperature_c: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Voice:
    """TK / TK2 (a voice message), JXTK (a chunk of one): acknowledged, not kept."""

    chunked: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Other:
    """Anything else: TKQ, INIT, CONFIG, a bare command echo (CR, UPLOAD …), img, unknown."""

    known: bool


WatchMessage = Link | Position | History | Alarm | Health | Voice | Other

# Types the gateway knows but turns into no uplink: requests it answers, and the watch's
# echoes of downlink commands.
_QUIET = frozenset(
    {
        "TKQ", "TKQ2", "INIT", "CONFIG", "IMG", "CR", "RG", "UPLOAD", "LZ", "SOS", "SOS1",
        "SOS2", "SOS3", "CENTER", "MESSAGE", "VERNO", "TS", "HRTSTART", "APPLOCK", "FIND",
        "RESET", "POWEROFF", "FACTORY", "PW", "CALL", "MONITOR", "SOSSMS", "LOWBAT", "REMOVE",
        "REMOVESMS", "FALLDOWN", "LSSET", "PHB", "PHB2", "PHBX", "WHITELIST1", "WHITELIST2",
        "SILENCETIME", "SILENCETIME2", "REMIND", "TAKEPILLS", "RCAPTURE", "WALKTIME",
        "SLEEPTIME", "PROFILE", "FLOWER", "HEALTHAUTOSET", "BODYTEMP", "BODYTEMP2", "APN",
        "PP", "WIFISEARCH", "WIFISET", "WIFIDEL", "WIFICUR", "WIFIINFOUP", "ACALL",
        "DEVREFUSEPHONESWITCH", "JXTKR",
    }
)  # fmt: skip


def classify(frame: Frame) -> str:
    """The frame's type as counted in metrics: the watch's word, upper case, suffixes of the
    position and alarm families folded (``UD_LTE`` → ``UD``, ``ALCUSTOMER1`` → ``AL``), or
    ``unknown``."""
    word = frame.type.upper()
    if word == "UD2":
        return "UD2"
    if word.startswith("UD") or word == "WT":
        return "UD" if word != "WT" else "WT"
    if word.startswith("AL"):
        return "AL"
    if word in {"LK", "HEART", "PULSE", "BPHRT", "BLOOD", "OXYGEN", "BTEMP2", "TEMP"}:
        return word
    if word in {"TK", "TK2", "JXTK"} or word in _QUIET:
        return word
    return "unknown"


def read_message(frame: Frame) -> WatchMessage:
    """The typed message of a frame; never raises (unreadable fields become None)."""
    kind = classify(frame)
    if kind in {"TK", "TK2", "JXTK"}:
        return Voice(chunked=kind == "JXTK")
    text = frame.content.decode("utf-8", "replace")
    values = text.split(",")[1:]
    if kind == "LK":
        return _link(values)
    if kind in {"UD", "WT"}:
        return Position(record=read_record(values))
    if kind == "UD2":
        return History(record=read_record(values))
    if kind == "AL":
        return Alarm(record=read_record(values))
    if kind in {"HEART", "PULSE"}:
        return Health(heart_rate=_reading(values, 0))
    if kind == "BPHRT":
        return Health(
            bp_systolic=_reading(values, 0),
            bp_diastolic=_reading(values, 1),
            heart_rate=_reading(values, 2),
        )
    if kind == "BLOOD":
        return Health(bp_systolic=_reading(values, 0), bp_diastolic=_reading(values, 1))
    if kind == "OXYGEN":
        return Health(spo2=_reading(values, 1))
    if kind == "BTEMP2":
        # 0 and 1 are the watch's codes for "measured too low / too high" (vendor document),
        # not temperatures.
        temp = _reading(values, 1)
        return Health(body_temperature_c=temp if temp is not None and temp > 1 else None)
    if kind == "TEMP":
        temp = _reading(values, 0)
        return Health(body_temperature_c=temp if temp is not None and temp > 1 else None)
    return Other(known=kind != "unknown")


def _link(values: Sequence[str]) -> Link:
    # LK,steps,rolls,battery; the two-value form (LK,0,100) is of unknown order: kept raw.
    kept = tuple(value.strip() for value in values)
    if len(values) >= 3:
        battery = _int(values, 2)
        return Link(
            steps=_int(values, 0),
            rolls=_int(values, 1),
            battery=battery if battery is not None and 0 <= battery <= 100 else None,
            values=kept,
        )
    return Link(values=kept)


def read_record(values: Sequence[str]) -> PositionRecord:
    """The position record from the values after the type (docs/watch-gateway.md §4)."""
    battery = _int(values, 12)
    return PositionRecord(
        time=_time(_at(values, 0), _at(values, 1)),
        fix=_at(values, 2).strip().upper() == "A",
        lat=_coordinate(_at(values, 3), _at(values, 4), "S"),
        lon=_coordinate(_at(values, 5), _at(values, 6), "W"),
        speed_kmh=_float(values, 7),
        course=_float(values, 8),
        altitude_m=_float(values, 9),
        satellites=_int(values, 10),
        gsm_signal=_int(values, 11),
        battery=battery if battery is not None and 0 <= battery <= 100 else None,
        steps=_int(values, 13),
        rolls=_int(values, 14),
        status=_status(_at(values, 15)),
        accuracy_m=_accuracy(values),
    )


def _at(values: Sequence[str], i: int) -> str:
    return values[i] if i < len(values) else ""


def _float(values: Sequence[str], i: int) -> float | None:
    text = _at(values, i).strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _int(values: Sequence[str], i: int) -> int | None:
    text = _at(values, i).strip()
    # ASCII digits only: str.isdigit() is true of "²" too, which int() refuses (found by the
    # fuzzer: a crash here would have lost the frame, an SOS with it).
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def _reading(values: Sequence[str], i: int) -> float | None:
    """A health reading; 0 (or less) is the watch's "no reading"."""
    value = _float(values, i)
    return value if value is not None and value > 0 else None


def _time(date: str, clock: str) -> datetime | None:
    date, clock = date.strip(), clock.strip()
    if len(date) != 6 or len(clock) != 6 or not (date + clock).isdigit():
        return None
    try:
        return datetime(
            2000 + int(date[4:]),
            int(date[2:4]),
            int(date[:2]),
            int(clock[:2]),
            int(clock[2:4]),
            int(clock[4:]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _coordinate(text: str, hemisphere: str, negative: str) -> float | None:
    # Read with its own sign; S or W forces it negative; N, E or nothing leave it (Traccar).
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if value != value or abs(value) == float("inf"):
        return None
    if hemisphere.strip().upper() == negative:
        value = -abs(value)
    return value


def _status(text: str) -> int | None:
    text = text.strip()
    if not 1 <= len(text) <= 8:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def _accuracy(values: Sequence[str]) -> float | None:
    """The last value, when the record has a block after the status and it reads as a
    non-negative decimal with a point (older firmware ends on a cell or on ``,,00``)."""
    if len(values) <= 17:
        return None
    last = values[-1].strip()
    if "." not in last:
        return None
    try:
        value = float(last)
    except ValueError:
        return None
    return value if 0 <= value < 1e6 else None
