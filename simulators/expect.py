"""Compare the alerts a replay raised with the alerts a scenario expects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from alerting.model import AlertType
from simulators.scenario import ExpectedAlert

Key = tuple[str, AlertType]


def differences(
    expected: Mapping[Key, ExpectedAlert], alerts: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What differs, one line each; empty when the replay raised exactly what was expected.

    Alerts are matched by device and type. ``status`` and ``count``, when expected, are those
    of the device's last alert of the type.
    """
    raised: dict[Key, list[Mapping[str, Any]]] = defaultdict(list)
    for alert in alerts:
        raised[(alert["device_id"], AlertType(alert["type"]))].append(alert)
    found = []
    for key, want in sorted(expected.items()):
        got = raised.get(key, [])
        device, kind = key
        if len(got) != want.alerts:
            found.append(
                f"{device}: expected {want.alerts} {kind.value} alert(s), got {len(got)}"
                + (f" ({_describe(got[-1])})" if got else "")
            )
            continue
        if not got:
            continue
        last = got[-1]
        if want.status is not None and last["status"] != want.status.value:
            found.append(
                f"{device}: {kind.value} is {last['status']}, expected {want.status.value}"
            )
        if want.count is not None and last["count"] != want.count:
            found.append(f"{device}: {kind.value} count {last['count']}, expected {want.count}")
    for key, got in sorted(raised.items()):
        if key not in expected:
            device, kind = key
            found.append(f"{device}: unexpected {kind.value} alert ({_describe(got[-1])})")
    return found


def _describe(alert: Mapping[str, Any]) -> str:
    return f"{alert['status']}, count {alert['count']}, created {alert['created_at']}"
