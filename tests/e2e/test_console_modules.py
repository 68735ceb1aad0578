"""The console's modules in the browser that runs them: every name the API sends has a label in
both languages, and the queue keeps its order and never revives a closed alert."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from alerting.model import AlertStatus, AlertType, Category, Outcome, Priority
from devices.elders import ContactRelation, ElderCategory
from devices.payloads import SosTrigger
from tests.support.console import console_page
from tests.support.service import anxin_env, running_anxin

pytestmark = pytest.mark.e2e

# What the timeline's `action` may say (contract.md, "Timeline actions", the system's escalation
# entries included; `door_closed` from the night-door rule).
TIMELINE_ACTIONS = [
    "created",
    "coalesced",
    "restored",
    "cancel_after_window",
    "cancelled",
    "auto_resolved",
    "claimed",
    "released",
    "acknowledged",
    "escalated",
    "resolved",
    "note",
    "device_not_told",
    "door_closed",
    "escalation_reminder",
    "contacts_notifying",
    "contacts_not_notified",
    "notified",
    "notify_failed",
]

NAMES: dict[str, list[str]] = {
    "type": [v.value for v in AlertType],
    "category": [v.value for v in Category],
    "priority": [v.value for v in Priority],
    "status": [v.value for v in AlertStatus],
    "outcome": [v.value for v in Outcome],
    "elder_category": [v.value for v in ElderCategory],
    "relation": [v.value for v in ContactRelation],
    "trigger": [v.value for v in SosTrigger],
    "timeline": TIMELINE_ACTIONS,
}


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    setup = anxin_env(tmp_path_factory.mktemp("console-modules") / "anxin")
    setup.add_user("nobody", "not-signed-in")  # migrates the database for `anxin api`
    with running_anxin(setup, command="api"):
        yield setup.api_url


@pytest.fixture(scope="module")
def page(browser: Browser, api_url: str) -> Iterator[Page]:
    """The console's page, not signed in: its modules are importable from it."""
    with console_page(browser) as opened:
        opened.goto(f"{api_url}/")
        yield opened


def run(page: Page, module: str, body: str, arg: Any = None) -> Any:
    """``body`` in an async function of ``m`` (the module) and ``arg``."""
    return page.evaluate(
        f"async (arg) => {{ const m = await import(new URL('console/js/{module}', location.href));"
        f" {body} }}",
        arg,
    )


def test_both_languages_have_the_same_labels(page: Page) -> None:
    missing = run(
        page,
        "i18n.js",
        "const zh = Object.keys(m.DICTIONARIES.zh), en = Object.keys(m.DICTIONARIES.en);"
        " return [zh.filter((k) => !en.includes(k)), en.filter((k) => !zh.includes(k))];",
    )
    assert missing == [[], []]


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_every_name_the_api_sends_has_a_label(page: Page, kind: str) -> None:
    unlabelled = run(
        page,
        "i18n.js",
        "return ['zh', 'en'].flatMap((lang) => arg.values"
        "  .filter((v) => m.DICTIONARIES[lang][`${arg.kind}.${v}`] === undefined)"
        "  .map((v) => `${lang}:${v}`));",
        {"kind": kind, "values": NAMES[kind]},
    )
    assert unlabelled == []


def test_the_resolve_form_offers_every_outcome_in_the_contract_order(page: Page) -> None:
    assert run(page, "i18n.js", "return m.OUTCOMES;") == [o.value for o in Outcome]
    assert run(page, "i18n.js", "return m.CATEGORIES;") == sorted(
        (c.value for c in Category), key=["emergency", "welfare", "technical", "service"].index
    )


def alert(
    id_: int, priority: str, created: str, updated: str, status: str = "new"
) -> dict[str, Any]:
    return {
        "id": id_,
        "priority": priority,
        "status": status,
        "category": "emergency",
        "created_at": f"2026-11-22T08:{created}Z",
        "updated_at": f"2026-11-22T08:{updated}Z",
    }


def test_most_urgent_first_then_oldest_then_by_id(page: Page) -> None:
    alerts = [
        alert(1, "low", "00:00", "00:00"),
        alert(2, "critical", "05:00", "05:00"),
        alert(3, "high", "01:00", "01:00"),
        alert(4, "critical", "02:00", "02:00"),
        alert(5, "critical", "02:00", "02:00"),
    ]
    order = run(
        page,
        "queue.js",
        "const q = new m.AlertQueue(); q.replace(arg, false); return q.sorted().map((a) => a.id);",
        alerts,
    )
    assert order == [4, 5, 2, 3, 1]


def test_a_snapshot_older_than_the_event_does_not_revive_a_closed_alert(page: Page) -> None:
    """The stream says alert 1 was resolved at 08:03; a queue read that started before that
    answers afterwards, still listing it: it stays closed. A later change reopens nothing
    either, but a newer open state (released) does come back."""
    result = run(
        page,
        "queue.js",
        "const q = new m.AlertQueue();"
        " q.replace([arg.open], false);"
        " const stillOpen = q.apply(arg.resolved);"
        " q.replace([arg.open], false);"
        " const afterStale = q.sorted().map((a) => a.id);"
        " q.apply(arg.older);"
        " const afterOlder = q.sorted().map((a) => a.id);"
        " q.replace([arg.reopened], false);"
        " return [stillOpen, afterStale, afterOlder, q.sorted().map((a) => a.status)];",
        {
            "open": alert(1, "critical", "00:00", "01:00", "claimed"),
            "resolved": alert(1, "critical", "00:00", "03:00", "resolved"),
            "older": alert(1, "critical", "00:00", "02:00", "acknowledged"),
            "reopened": alert(1, "critical", "00:00", "04:00", "new"),
        },
    )
    assert result == [False, [], [], ["new"]]


def test_a_snapshot_answers_only_alerts_it_had_not_seen(page: Page) -> None:
    fresh = run(
        page,
        "queue.js",
        "const q = new m.AlertQueue(); q.replace([arg[0]], false);"
        " return q.replace(arg, false).map((a) => a.id);",
        [alert(1, "critical", "00:00", "00:00"), alert(2, "critical", "01:00", "01:00")],
    )
    assert fresh == [2]


def test_the_page_loads_no_file_from_elsewhere(api_url: str, browser: Browser) -> None:
    requested: list[str] = []
    with console_page(browser) as opened:
        opened.on("request", lambda request: requested.append(request.url))
        opened.goto(f"{api_url}/")
        opened.get_by_label("用户名").wait_for()
    assert len(requested) >= 4  # the page, its style, its modules, its icon
    assert all(url.startswith(api_url) for url in requested), requested
