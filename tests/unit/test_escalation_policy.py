"""Escalation deadlines, notification policy and texts: pure, on a virtual clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting import escalation_policy as policy
from alerting.escalation_rules import EscalationRule, NotifyRule
from alerting.model import AlertType, Priority
from alerting.notifiers import (
    Channel,
    ContactMessage,
    GatewayNotifier,
    Kind,
    Notification,
    PermanentDeliveryError,
    gateway_factory,
    sign,
)
from alerting.rules import RulesError, RuleSet, load_rules

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_the_packaged_defaults_agree_with_the_code() -> None:
    packaged, coded = load_rules(), RuleSet()
    assert packaged.escalation == coded.escalation
    assert packaged.notify == coded.notify
    levels = {p: packaged.escalation.level(p).claim_within_s for p in Priority}
    assert levels == {
        Priority.CRITICAL: 60,
        Priority.HIGH: 180,
        Priority.MEDIUM: 1800,
        Priority.LOW: 0,
    }


def test_a_critical_alert_is_due_at_60_s_not_59() -> None:
    level = EscalationRule().level(Priority.CRITICAL)
    deadline = policy.claim_deadline(level, T0)
    assert deadline == T0 + timedelta(seconds=60)
    due = [s for s in range(0, 120) if deadline <= T0 + timedelta(seconds=s)]
    assert due[0] == 60
    # The SQL form (queued_at <= cutoff) says the same.
    assert policy.cutoff(T0 + timedelta(seconds=59), level.claim_within) < T0
    assert policy.cutoff(T0 + timedelta(seconds=60), level.claim_within) >= T0


def test_low_priority_is_never_escalated_and_zero_turns_a_level_off(tmp_path: Path) -> None:
    assert policy.claim_deadline(EscalationRule().level(Priority.LOW), T0) is None
    assert Priority.LOW not in policy.escalating_priorities(EscalationRule())
    mine = tmp_path / "rules.toml"
    mine.write_text("[escalation.medium]\nclaim_within_s = 0\n[escalation.high]\n"
                    "claim_within_s = 120\n")  # fmt: skip
    rules = load_rules(mine)
    assert policy.escalating_priorities(rules.escalation) == [Priority.CRITICAL, Priority.HIGH]
    assert rules.escalation.high.claim_within_s == 120
    assert rules.escalation.high.remind_every_s == 180  # the rest of the table is kept


def test_reminders_every_interval_until_the_bound() -> None:
    level = EscalationRule().level(Priority.CRITICAL)
    escalated = T0 + timedelta(seconds=60)
    at, reminders, times = escalated, 0, []
    while (due := policy.next_reminder(level, at, reminders)) is not None:
        times.append(due)
        at, reminders = due, reminders + 1
    assert len(times) == level.max_reminders == 10
    assert times[0] == escalated + timedelta(seconds=60)
    assert all(b - a == timedelta(seconds=60) for a, b in itertools.pairwise(times))


def test_contacts_are_told_of_emergencies_after_five_minutes_unclaimed() -> None:
    rule = NotifyRule()
    assert policy.contacts_deadline(rule, AlertType.SOS, Priority.CRITICAL, T0) == T0 + timedelta(
        minutes=5
    )
    assert policy.contacts_deadline(rule, AlertType.LOW_BATTERY, Priority.LOW, T0) is None
    by_priority = NotifyRule.model_validate(
        {"contacts": {"types": [], "priorities": ["high"], "after_unclaimed_s": 600}}
    )
    assert policy.contacts_deadline(by_priority, AlertType.WATER_LEAK, Priority.HIGH, T0) == (
        T0 + timedelta(minutes=10)
    )
    assert policy.contacts_deadline(by_priority, AlertType.SOS, Priority.CRITICAL, T0) is None
    off = NotifyRule.model_validate({"contacts": {"after_unclaimed_s": 0}})
    assert policy.contacts_deadline(off, AlertType.SOS, Priority.CRITICAL, T0) is None


def test_contacts_in_calling_order() -> None:
    contacts = [(3, "c", "3", "neighbour"), (1, "a", "1", "family"), (2, "b", "2", "family")]
    assert [c[0] for c in policy.first_contacts(contacts, 2)] == [1, 2]


def test_a_late_escalation_is_a_catch_up() -> None:
    deadline = T0 + timedelta(seconds=60)
    assert not policy.is_catch_up(deadline, deadline + timedelta(seconds=5))
    assert policy.is_catch_up(deadline, deadline + timedelta(minutes=10))
    assert policy.late_by(deadline, deadline - timedelta(seconds=1)) == timedelta()


def test_texts_are_chinese_and_name_the_alert() -> None:
    text = policy.escalated_text(12, AlertType.SOS, Priority.CRITICAL, 61)
    assert (
        text
        == "【安心】紧急呼叫（紧急）告警 #12 已等待61秒无人认领，已自动升级，请主管立即安排处理。"
    )
    assert "第2次提醒" in policy.reminder_text(12, AlertType.FALL, Priority.CRITICAL, 600, 2)
    assert "10分钟" in policy.reminder_text(12, AlertType.FALL, Priority.CRITICAL, 600, 2)
    contact = policy.contact_text("张秀英", AlertType.SOS, T0)
    # 03:00 UTC is 11:00 in China.
    assert contact.startswith("【安心】您的家人张秀英于11月22日11:00发出紧急呼叫")
    assert "12349" in contact
    assert set(policy.TYPE_ZH) == set(AlertType)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[escalation.critical]\nclaim_within_s = -1\n", "escalation.critical.claim_within_s"),
        ("[escalation.urgent]\nclaim_within_s = 5\n", "escalation.urgent"),
        ("[escalation.high]\nremind_every_s = 1\n", "escalation.high.remind_every_s"),
        ('[notify.contacts]\ntypes = ["explosion"]\n', "notify.contacts.types"),
        ("[notify]\nmax_attempts = 0\n", "notify.max_attempts"),
    ],
)
def test_bad_escalation_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    mine = tmp_path / "rules.toml"
    mine.write_text(text)
    with pytest.raises(RulesError, match=message.replace(".", r"\.")):
        load_rules(mine)


def test_the_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2.
    assert sign(b"Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


class _Gateway:
    def __init__(self) -> None:
        self.messages: list[ContactMessage] = []

    def send(self, message: ContactMessage) -> None:
        self.messages.append(message)


def make_gateway() -> _Gateway:
    return _Gateway()


def test_a_gateway_gets_a_typed_message() -> None:
    gateway = _Gateway()
    notification = Notification(
        delivery_id=7,
        channel=Channel.CONTACTS,
        kind=Kind.CONTACT,
        payload={
            "alert": {
                "id": 3,
                "type": "sos",
                "priority": "critical",
                "created_at": T0.isoformat(),
                "location": {"room": "卧室"},
            },
            "elder": {"id": 5, "name": "张秀英"},
            "contact": {
                "position": 1,
                "of": 2,
                "name": "李明",
                "phone": "13900139000",
                "relation": "family",
            },
            "text": "【安心】…",
        },
    )
    GatewayNotifier(gateway).notify(notification)
    (message,) = gateway.messages
    assert (message.alert_id, message.elder_id, message.contact_phone, message.position) == (
        3,
        5,
        "13900139000",
        1,
    )
    assert message.created_at == T0
    assert message.location == {"room": "卧室"}
    supervisors = Notification(
        delivery_id=8, channel=Channel.SUPERVISORS, kind=Kind.ESCALATED, payload={}
    )
    with pytest.raises(PermanentDeliveryError):
        GatewayNotifier(gateway).notify(supervisors)


def test_a_gateway_is_named_module_colon_factory() -> None:
    assert gateway_factory(f"{__name__}:make_gateway") is make_gateway
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        gateway_factory("nocolon")
    with pytest.raises(ValueError, match="cannot import"):
        gateway_factory("no_such_module_here:make")
    with pytest.raises(ValueError, match="no callable"):
        gateway_factory(f"{__name__}:T0")


def test_a_gateways_own_error_is_reported_by_its_class_only() -> None:
    from alerting.notifiers import DeliveryError
    from alerting.outbox import describe_failure

    assert describe_failure(DeliveryError("HTTP 503")) == "HTTP 503"
    assert describe_failure(ValueError("no such number 13900139001")) == "ValueError"
    assert describe_failure(PermanentDeliveryError("")) == "PermanentDeliveryError"
