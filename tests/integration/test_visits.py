"""Home visits over HTTP: made by resolving an alert `visit_needed` and by hand, assigned,
claimed, cancelled and completed, with the timeline on the visit, the elder and the alert, and
`needed_help` raising an alert; on SQLite and PostgreSQL through the ``sessions`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle
from alerting.store import get_alert, get_timeline
from alerting.visits import (
    TRANSITIONS,
    InvalidVisitTransition,
    VisitAction,
    VisitStatus,
    next_status,
)
from tests.support.api_world import ApiWorld, api_world, raise_alert

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: Clock) -> Iterator[ApiWorld]:
    with api_world(sessions, clock) as w:
        yield w


def post(world: ApiWorld, user: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = world.client.post(path, json=body, headers=world.headers(user))
    return response.status_code, response.json()


def get(world: ApiWorld, user: str, path: str) -> tuple[int, Any]:
    response = world.client.get(path, headers=world.headers(user))
    return response.status_code, response.json()


def test_the_table_allows_only_what_it_says() -> None:
    assert TRANSITIONS[VisitAction.COMPLETE] == {
        VisitStatus.OPEN: VisitStatus.DONE,
        VisitStatus.ASSIGNED: VisitStatus.DONE,
    }
    for terminal in (VisitStatus.DONE, VisitStatus.CANCELLED):
        for action in (VisitAction.ASSIGN, VisitAction.COMPLETE, VisitAction.CANCEL):
            with pytest.raises(InvalidVisitTransition):
                next_status(1, action, terminal)


def test_resolving_visit_needed_makes_a_visit_in_the_same_transaction(
    world: ApiWorld, clock: Clock
) -> None:
    assert world.registry is not None
    with world.sessions.begin() as session:
        alert_id = raise_alert(session, "p-zhang", world.registry.zhang, T0)
        lifecycle.claim(session, alert_id, actor="dispatcher", now=T0)
    clock.now = T0 + timedelta(minutes=5)
    status, body = post(
        world,
        "dispatcher",
        f"/api/v1/alerts/{alert_id}/resolve",
        {"outcome": "visit_needed", "note": "电话无人接听"},
    )
    assert status == 200, body
    assert body["outcome"] == "visit_needed"
    status, page = get(world, "visitor", "/api/v1/visits?status=open")
    assert status == 200
    [visit] = page["items"]
    assert (visit["reason"], visit["alert_id"], visit["alert_type"], visit["status"]) == (
        "alert_followup",
        alert_id,
        "sos",
        "open",
    )
    assert visit["due_at"] == "2026-11-23T03:05:00Z"
    assert visit["notes"] == "电话无人接听"
    assert visit["elder"]["key_safe_note"] == "钥匙在门口花盆下"
    assert [c["phone"] for c in visit["elder"]["contacts"]] == ["13900139000", "13700137000"]

    # The visitor claims it and finds the elder well.
    clock.now = T0 + timedelta(hours=2)
    assert post(world, "visitor", f"/api/v1/visits/{visit['id']}/claim")[0] == 200
    status, done = post(
        world, "visitor", f"/api/v1/visits/{visit['id']}/complete", {"outcome": "well"}
    )
    assert status == 200, done
    assert (done["status"], done["outcome"], done["assignee"]) == ("done", "well", "visitor")
    assert [(e["action"], e["actor"]) for e in done["timeline"]] == [
        ("requested", "dispatcher"),
        ("assigned", "visitor"),
        ("done", "visitor"),
    ]
    with world.sessions() as session:
        actions = [e.action for e in get_timeline(session, alert_id)]
    assert actions == [
        "created",
        "claimed",
        "resolved",
        "visit_requested",
        "device_not_told",  # no broker in this test
        "visit_done",
    ]
    status, elder = get(world, "visitor", f"/api/v1/elders/{world.registry.zhang}/visits")
    assert status == 200
    assert [e["action"] for e in elder["timeline"]] == ["requested", "assigned", "done"]
    assert get(world, "visitor", "/api/v1/visits?status=open")[1]["items"] == []


def test_an_alert_without_an_elder_cannot_ask_for_a_visit(world: ApiWorld) -> None:
    with world.sessions.begin() as session:
        alert_id = raise_alert(session, "p-unknown", None, T0)
        lifecycle.claim(session, alert_id, actor="dispatcher", now=T0)
    status, body = post(
        world, "dispatcher", f"/api/v1/alerts/{alert_id}/resolve", {"outcome": "visit_needed"}
    )
    assert (status, body) == (422, {"detail": f"alert {alert_id} has no registered elder to visit"})
    with world.sessions() as session:
        alert = get_alert(session, alert_id)
        assert alert is not None
        assert alert.status == "claimed"  # nothing half-done


def test_by_hand_assigned_and_needed_help_raises_an_alert(world: ApiWorld, clock: Clock) -> None:
    assert world.registry is not None
    zhang = world.registry.zhang
    status, visit = post(
        world,
        "dispatcher",
        "/api/v1/visits",
        {"elder_id": zhang, "due_at": "2026-11-22T18:00:00+08:00", "assignee": "visitor"},
    )
    assert status == 201, visit
    assert (visit["reason"], visit["status"], visit["assignee"]) == (
        "manual",
        "assigned",
        "visitor",
    )
    assert visit["due_at"] == "2026-11-22T10:00:00Z"
    # Someone who may not go, or not there.
    for who, detail in (
        ("engineer", "engineer is an engineer: not one who makes visits"),
        ("chongli_visitor", "chongli_visitor cannot visit outside 张家口市/崇礼区"),
        ("nobody", "no active user nobody"),
    ):
        assert post(
            world, "dispatcher", f"/api/v1/visits/{visit['id']}/assign", {"assignee": who}
        ) == (422, {"detail": detail})
    # Another visitor cannot take it over nor complete it; the dispatcher can record it.
    assert post(world, "chongli_visitor", f"/api/v1/visits/{visit['id']}/complete",
                {"outcome": "well"})[0] == 404  # fmt: skip
    assert get(world, "chongli_visitor", f"/api/v1/visits/{visit['id']}")[0] == 404
    assert get(world, "chongli_visitor", "/api/v1/visits?status=all")[1]["items"] == []
    clock.now = T0 + timedelta(hours=8)
    assert get(world, "visitor", f"/api/v1/visits/{visit['id']}")[1]["overdue"] is True
    status, done = post(
        world,
        "visitor",
        f"/api/v1/visits/{visit['id']}/complete",
        {"outcome": "needed_help", "note": "老人腿脚不便，需要助餐服务"},
    )
    assert status == 200, done
    raised = done["timeline"][-1]["detail"]["raised_alert_id"]
    status, alert = get(world, "dispatcher", f"/api/v1/alerts/{raised}")
    assert (alert["type"], alert["category"], alert["priority"], alert["device_id"]) == (
        "visit_needed_help",
        "welfare",
        "high",
        "p-zhang",
    )
    assert alert["elder_id"] == zhang
    again = post(world, "visitor", f"/api/v1/visits/{visit['id']}/complete", {"outcome": "well"})
    assert again == (
        409,
        {"detail": f"cannot complete visit {visit['id']}: it is done (only from: open, assigned)"},
    )


def test_cancel_and_who_holds_a_visit(world: ApiWorld) -> None:
    assert world.registry is not None
    status, visit = post(world, "supervisor", "/api/v1/visits", {"elder_id": world.registry.zhang})
    assert status == 201
    path = f"/api/v1/visits/{visit['id']}"
    assert visit["due_at"] == "2026-11-23T03:00:00Z"  # a day from now
    assert post(world, "visitor", f"{path}/cancel")[0] == 403
    assert post(world, "visitor", f"{path}/claim")[0] == 200
    status, body = post(world, "dispatcher", f"{path}/cancel", {"reason": "老人已入院"})
    assert status == 200
    assert (body["status"], body["timeline"][-1]["detail"]) == (
        "cancelled",
        {"reason": "老人已入院"},
    )
    assert post(world, "visitor", f"{path}/claim")[0] == 409
    assert post(world, "engineer", "/api/v1/visits", {"elder_id": world.registry.zhang})[0] == 403
    assert post(world, "chongli_visitor", "/api/v1/visits", {"elder_id": world.registry.zhang}) == (
        404,
        {"detail": "elder not found"},
    )
    assert get(world, "visitor", "/api/v1/visits?cursor=nope") == (
        400,
        {"detail": "invalid cursor"},
    )


def test_the_list_pages_soonest_due_first(world: ApiWorld) -> None:
    assert world.registry is not None
    ids = []
    for hours in (30, 10, 20):
        due = (T0 + timedelta(hours=hours)).isoformat()
        ids.append(post(world, "dispatcher", "/api/v1/visits",
                        {"elder_id": world.registry.zhang, "due_at": due})[1]["id"])  # fmt: skip
    seen, cursor = [], None
    while True:
        query = "/api/v1/visits?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = get(world, "visitor", query)[1]
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[1], ids[2], ids[0]]
