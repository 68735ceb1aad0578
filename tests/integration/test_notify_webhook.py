"""The webhook notifier and the outbox against a real HTTP server on 127.0.0.1: delivery,
signature, retries after 500s, giving up after the bound with ``notify_failed`` on the
timeline; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerting.escalation_rules import NotifyRule
from alerting.notifiers import (
    DELIVERY_HEADER,
    KIND_HEADER,
    SIGNATURE_HEADER,
    Channel,
    DeliveryError,
    Kind,
    Notification,
    WebhookNotifier,
    sign,
)
from alerting.outbox import DeliveryStatus, OutboxRow, OutboxWorker
from alerting.rules import RuleSet
from tests.support.desk import Desk, add_elder
from tests.support.ports import free_port
from tests.support.webhook import receiver

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SECRET = "a-webhook-secret-of-32-characters"


def webhook(url: str, attempts: int = 2) -> WebhookNotifier:
    # No waiting between the quick retries: the test's clock is virtual.
    return WebhookNotifier(url, secret=SECRET, timeout_s=5, attempts=attempts, wait_s=0)


RULE = NotifyRule(max_attempts=3, backoff_s=10, max_backoff_s=60)


def escalated_desk(sessions: sessionmaker[Session]) -> tuple[Desk, int]:
    desk = Desk(sessions, rules=RuleSet(notify=RULE))
    alert_id = desk.raise_alert("p1")
    desk.at(60)
    return desk, alert_id


def worker(desk: Desk, url: str, attempts: int = 2) -> OutboxWorker:
    notifier = webhook(url, attempts)
    return OutboxWorker(
        sessions=desk.sessions,
        notifiers={Channel.SUPERVISORS: notifier, Channel.CONTACTS: notifier},
        rule=RULE,
        clock=lambda: desk.now,
    )


def test_an_escalation_is_posted_signed(sessions: sessionmaker[Session]) -> None:
    desk, alert_id = escalated_desk(sessions)
    with receiver() as hook:
        worker(desk, hook.url).drain()
    ((headers, body),) = hook.received
    (row,) = desk.outbox()
    assert headers[SIGNATURE_HEADER] == sign(SECRET.encode(), body)
    assert headers[DELIVERY_HEADER] == str(row.id)
    assert headers[KIND_HEADER] == "alert.escalated"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    sent = json.loads(body.decode("utf-8"))
    assert sent["delivery_id"] == row.id
    assert (sent["channel"], sent["kind"], sent["alert_ids"]) == (
        "supervisors",
        "alert.escalated",
        [alert_id],
    )
    assert sent["alert"]["id"] == alert_id
    assert sent["alert"]["waited_s"] == 60
    assert "无人认领" in sent["text"]  # Chinese as is, not \u-escaped
    assert "无人认领".encode() in body
    (notified,) = desk.events(alert_id, "notified")
    assert notified.actor == "system"
    assert notified.detail == {
        "channel": "supervisors",
        "kind": "alert.escalated",
        "delivery": row.id,
        "attempts": 1,
    }
    assert desk.outbox()[0].status == DeliveryStatus.SENT.value


def test_500s_are_retried_later_until_delivered(sessions: sessionmaker[Session]) -> None:
    desk, alert_id = escalated_desk(sessions)
    with receiver() as hook:
        hook.answers = [500, 503, 500]
        outbox = worker(desk, hook.url, attempts=2)
        outbox.drain()  # two quick tries, both 5xx: the outbox tries again in 10 s
        assert len(hook.received) == 2
        (row,) = desk.outbox()
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
        assert row.next_attempt_at == desk.now + timedelta(seconds=10)
        desk.now += timedelta(seconds=9)
        outbox.drain()
        assert len(hook.received) == 2  # not before its time
        desk.now += timedelta(seconds=1)
        outbox.drain()  # 500, then 200
        assert len(hook.received) == 4
    (row,) = desk.outbox()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert [e.detail["attempts"] for e in desk.events(alert_id, "notified")] == [2]
    assert desk.events(alert_id, "notify_failed") == []
    # The same delivery id each time, for the receiver to drop repeats.
    assert {h[DELIVERY_HEADER] for h, _ in hook.received} == {str(row.id)}


def test_it_gives_up_after_the_bound_with_notify_failed(sessions: sessionmaker[Session]) -> None:
    desk, alert_id = escalated_desk(sessions)
    with receiver() as hook:
        hook.answers = [500] * 100
        outbox = worker(desk, hook.url, attempts=2)
        for _ in range(10):
            outbox.drain()
            desk.now += timedelta(seconds=60)
        # 3 outbox attempts (RULE.max_attempts) of 2 quick tries each.
        assert len(hook.received) == 6
    (row,) = desk.outbox()
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 500")
    (failed,) = desk.events(alert_id, "notify_failed")
    assert failed.actor == "system"
    assert failed.detail["error"] == "HTTP 500"
    assert failed.detail["attempts"] == 3
    assert desk.events(alert_id, "notified") == []


def test_a_refusal_is_not_retried(sessions: sessionmaker[Session]) -> None:
    desk, alert_id = escalated_desk(sessions)
    with receiver() as hook:
        hook.answers = [400]
        worker(desk, hook.url).drain()
        desk.now += timedelta(minutes=10)
        worker(desk, hook.url).drain()
        assert len(hook.received) == 1
    (failed,) = desk.events(alert_id, "notify_failed")
    assert (failed.detail["error"], failed.detail["attempts"]) == ("HTTP 400", 1)


def test_a_receiver_that_is_down_is_retried_and_holds_up_nothing_else(
    sessions: sessionmaker[Session],
) -> None:
    """Nobody listens on the port: the delivery waits for its next attempt, and the other
    notifications of that channel are not tried in the same drain (one timeout, not many)."""
    desk = Desk(sessions, rules=RuleSet(notify=RULE))
    for i in range(3):
        desk.raise_alert(f"p{i}")
    desk.at(60)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    outbox = worker(desk, dead, attempts=1)
    outbox.drain()
    rows = desk.outbox()
    assert [(r.status, r.attempts) for r in rows] == [
        ("pending", 1),
        ("pending", 0),
        ("pending", 0),
    ]
    assert rows[0].last_error == "ConnectError"
    with receiver() as hook:
        desk.now += timedelta(seconds=10)
        worker(desk, hook.url).drain()
        assert len(hook.received) == 3
    assert {r.status for r in desk.outbox()} == {"sent"}


def test_contacts_get_their_message_in_calling_order(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions, rules=RuleSet(notify=RULE))
    elder = add_elder(sessions, [(2, "neighbour"), (1, "family")])
    alert_id = desk.raise_alert("p1", elder_id=elder)
    desk.at(300)
    with receiver() as hook:
        worker(desk, hook.url).drain()
    contacts = [json.loads(b) for _, b in hook.received if json.loads(b)["channel"] == "contacts"]
    assert [c["contact"]["position"] for c in contacts] == [1, 2]
    assert contacts[0]["contact"]["phone"] == "13900139001"
    assert contacts[0]["text"].startswith("【安心】您的家人张秀英")
    notified = [
        e.detail for e in desk.events(alert_id, "notified") if e.detail["channel"] == "contacts"
    ]
    # The timeline names the contacts by order and relation, not by name or number.
    assert [(d["position"], d["relation"]) for d in notified] == [(1, "family"), (2, "neighbour")]
    assert not any("phone" in d or "name" in d for d in notified)


def test_the_notifier_raises_after_its_quick_tries() -> None:
    with receiver() as hook:
        hook.answers = [502, 502, 502]
        notifier = webhook(hook.url, attempts=3)
        notification = Notification(
            delivery_id=1, channel=Channel.SUPERVISORS, kind=Kind.ESCALATED, payload={}
        )
        with pytest.raises(DeliveryError, match="HTTP 502"):
            notifier.notify(notification)
        assert len(hook.received) == 3
        notifier.notify(notification)
        assert len(hook.received) == 4


def test_no_personal_data_in_the_outbox_logs(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    desk = Desk(sessions, rules=RuleSet(notify=RULE))
    elder = add_elder(sessions, [(1, "family")])
    desk.raise_alert("p1", elder_id=elder)
    desk.at(300)
    with receiver() as hook:
        hook.answers = [500, 500]
        worker(desk, hook.url, attempts=1).drain()
    rows: list[OutboxRow] = desk.outbox()
    assert any(r.channel == "contacts" for r in rows)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "outbox." in text
    for secret in ("张秀英", "13900139001", "联系人1", "13800138000"):
        assert secret not in text


def test_delivered_rows_are_pruned_after_30_days(sessions: sessionmaker[Session]) -> None:
    desk, _ = escalated_desk(sessions)
    with receiver() as hook:
        outbox = worker(desk, hook.url)
        outbox.drain()
        assert [r.status for r in desk.outbox()] == ["sent"]
        desk.now += timedelta(days=29)
        assert outbox.prune(desk.now) == 0
        desk.now += timedelta(days=1, seconds=1)
        assert outbox.prune(desk.now) == 1
    assert desk.outbox() == []
